"""Lazy re-exports for package ``__init__`` modules (PEP 562), so that importing a package -- which Python
does before any of its submodules, e.g. for the light parser-building code of the ``amd`` command -- does not
import torch or ART.

A package lists each re-exported name with the submodule that defines it and installs the pair of functions
from :func:`lazy_exports` as its module-level ``__getattr__`` and ``__dir__``; the first access to a name
imports its submodule and caches the value in the package. The same names are imported under
``if TYPE_CHECKING:`` for type checkers and documentation tools. No re-exported name may equal a submodule's
name: Python sets the submodule as an attribute of the package when it is imported, which would hide the
re-exported value.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], *, submodules: bool = False
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for package ``package`` re-exporting ``name`` from submodule
    ``exports[name]`` (relative to the package, e.g. ``".checkpoint"``); with ``submodules=True`` any other
    name that is a submodule is imported and returned (``package.trainer`` works before anything imported it).
    """

    def __getattr__(name: str) -> Any:
        source = exports.get(name)
        if source is None:
            if submodules:
                try:
                    return importlib.import_module(f".{name}", package)
                except ModuleNotFoundError as exc:
                    if exc.name != f"{package}.{name}":
                        raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
