"""The shape every defence has: a :class:`Defence` record, a ``Config`` dataclass, and the glue that turns a
``Config`` into ``amd train`` flags and back.

Each defence folder has a ``defence.py`` exporting ``DEFENCE = Defence(...)``;
:mod:`art_manifold_defenses.defences` lists them. This module and every ``defence.py`` import neither torch
nor ART at module level (the record, the ``Config`` dataclass and functions that import what they need when
called), so ``amd train --help`` can list every defence's flags without loading a network library.

A ``Config`` is a dataclass deriving from :class:`TrainingConfig`. Its fields are the paper's defaults,
variants as explicit fields, and each field's ``metadata`` describes its ``amd train`` flag:

- ``help`` (required): the flag's help text;
- ``flag``: the flag, when it is not ``--<prefix>-<field name with dashes>`` (e.g. STN's ``--sigma``);
- ``type``: the name of an ``argparse`` type in :mod:`art_manifold_defenses.utils` (``"positive_int_arg"``),
  looked up when a value is parsed; otherwise the field's annotation gives it (``int``, ``float``, ``str``,
  ``X | None``), a ``Literal[...]`` annotation gives the choices and ``bool`` (default ``False``) is a switch;
- ``shared``: the field is one of ``amd train``'s own flags (``--epochs``, ``--batch-size``, ``--lr``,
  ``--dataset``, ``--model``) with the same destination, not a flag of the defence.

The argparse destination of a field is ``<prefix>_<name>`` (``name`` for shared fields), so a namespace parsed
from the generated flags is the one the hand-written flags gave.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "Defence",
    "DefenceBuilder",
    "DefenceTrainer",
    "TrainingConfig",
    "add_defence_arguments",
    "config_dest",
    "config_from_namespace",
    "num_classes",
    "train_from_namespace",
    "validation_data",
]

#: ``build(base_model, params) -> defended model``: ``params`` is the ``defence.params`` mapping of a
#: checkpoint sidecar (what ``train`` returned); the saved state dict is then loaded into the result.
DefenceBuilder = Callable[["nn.Module", dict[str, Any]], "nn.Module"]
#: ``train(base_model, data, config, *, device, seed, verbose, checkpoint_dir) -> (model, defence metadata)``;
#: the metadata is ``{"name": <defence name>, "params": {...}, ...}``, the ``defence`` entry of a checkpoint.
DefenceTrainer = Callable[..., tuple["nn.Module", dict[str, Any]]]


@dataclass
class TrainingConfig:
    """The training settings every defence shares: ``amd train``'s ``--epochs``, ``--batch-size`` and
    ``--lr``."""

    epochs: int = field(default=10, metadata={"shared": True, "help": "number of epochs"})
    batch_size: int = field(default=128, metadata={"shared": True, "help": "batch size"})
    lr: float = field(
        default=1e-3, metadata={"shared": True, "help": "learning rate of the defence's optimizer"}
    )


@dataclass(frozen=True)
class Defence:
    """One defence, as ``amd train``, ``amd demo``, ``amd reproduce`` and checkpoint loading see it.

    Args:
        name: the canonical name (``amd train --defense NAME``, ``defence.name`` in checkpoints).
        paper: the paper's title line, e.g. ``"RBF-CNN (Nandy, Hsu & Lee 2020)"``.
        paper_id: the project's paper number, e.g. ``"000"``.
        package: the defence's folder as a module path (its ART-facing classes live there).
        config: the ``Config`` dataclass (a :class:`TrainingConfig`); its defaults are the paper's.
        build: rebuilds the defended model of a checkpoint (:data:`DefenceBuilder`).
        train: trains the defence on a base model (:data:`DefenceTrainer`).
        flag_prefix: the prefix of the defence's ``amd train`` flags, ``""`` for none.
    """

    name: str
    paper: str
    paper_id: str
    package: str
    config: type[TrainingConfig]
    build: DefenceBuilder
    train: DefenceTrainer
    flag_prefix: str = ""

    def default_config(self, **changes: Any) -> TrainingConfig:
        """The paper's configuration, with ``changes`` (field names of :attr:`config`)."""
        return self.config(**changes)


def config_dest(defence: Defence, item: dataclasses.Field[Any]) -> str:
    """The argparse destination of a ``Config`` field: ``<prefix>_<name>``, or ``name`` for a shared field."""
    if item.metadata.get("shared") or not defence.flag_prefix:
        return item.name
    return f"{defence.flag_prefix}_{item.name}"


def _utils_type(name: str) -> Callable[[str], Any]:
    """The argparse type ``art_manifold_defenses.utils.<name>``, imported when a value is parsed (not for
    ``--help``)."""

    def parse(text: str) -> Any:
        from . import utils

        return getattr(utils, name)(text)

    parse.__name__ = name  # what argparse names in "invalid <type> value"
    return parse


def _flag_options(item: dataclasses.Field[Any], annotation: Any) -> dict[str, Any]:
    """``add_argument`` keyword arguments (besides ``dest``, ``default`` and ``help``) for a field's
    annotation."""
    if annotation is bool:
        if item.default is not False:
            raise TypeError(f"Config field {item.name!r}: a bool field is a switch and must default to False")
        return {"action": "store_true"}
    options: dict[str, Any] = {}
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is Literal:
        options["choices"] = list(typing.get_args(annotation))
    elif len(args) == 1 and typing.get_origin(args[0]) is Literal:  # Literal[...] | None
        options["choices"] = list(typing.get_args(args[0]))
    else:
        kind = args[0] if len(args) == 1 else annotation
        if kind in (int, float):
            options["type"] = kind
        elif kind is not str:
            raise TypeError(f"Config field {item.name!r}: no flag for annotation {annotation!r}")
    if "type" in item.metadata:
        options["type"] = _utils_type(str(item.metadata["type"]))
    return options


def _config_fields(config: type[TrainingConfig]) -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(config)
    return [(item, hints[item.name]) for item in dataclasses.fields(config)]


def add_defence_arguments(group: argparse._ActionsContainer, defence: Defence) -> None:
    """Add the ``amd train`` flags of ``defence``, one per non-shared field of its ``Config`` (see the module
    docstring), to an argparse parser or argument group.
    """
    for item, annotation in _config_fields(defence.config):
        if item.metadata.get("shared"):
            continue
        if "help" not in item.metadata:
            raise TypeError(f"{defence.config.__name__}.{item.name} has no metadata['help'] for its flag")
        dest = config_dest(defence, item)
        flag = item.metadata.get("flag") or "--" + dest.replace("_", "-")
        group.add_argument(
            flag,
            dest=dest,
            default=item.default,
            help=item.metadata["help"],
            **_flag_options(item, annotation),
        )


def config_from_namespace(
    defence: Defence, args: argparse.Namespace, overrides: Mapping[str, Any] | None = None
) -> TrainingConfig:
    """The ``Config`` that parsed ``amd train`` flags describe (a missing destination keeps the field's
    default), with ``overrides`` (field names) on top -- e.g. those of an alias such as ``rbf-cnn-plus``.
    """
    values = {}
    for item in dataclasses.fields(defence.config):
        dest = config_dest(defence, item)
        if hasattr(args, dest):
            values[item.name] = getattr(args, dest)
    values.update(overrides or {})
    return defence.config(**values)


def train_from_namespace(
    defence: Defence,
    args: argparse.Namespace,
    data: Mapping[str, Any],
    device: Any,
    architecture: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """``amd train --defense NAME`` (and ``amd demo``): build the zoo model ``architecture`` and run
    ``defence.train`` with the ``Config`` of ``args``; checkpoints of the training itself go to
    ``args.out/train_state``.
    """
    from .models import build_model

    arch = dict(architecture)
    base = build_model(arch.pop("name"), **arch)
    config = config_from_namespace(defence, args, overrides)
    out = getattr(args, "out", None)
    return defence.train(
        base,
        dict(data),
        config,
        device=device,
        seed=int(getattr(args, "seed", 0)),
        verbose=not getattr(args, "quiet", False),
        checkpoint_dir=Path(out) / "train_state" if out else None,
    )


def validation_data(data: Mapping[str, Any]) -> tuple[Any, Any] | None:
    """``(x_test, y_test)`` of a ``data`` mapping, or ``None`` when it has no test split."""
    if data.get("x_test") is None or data.get("y_test") is None:
        return None
    return data["x_test"], data["y_test"]


def num_classes(base_model: nn.Module, data: Mapping[str, Any]) -> int:
    """The number of outputs of ``base_model`` on ``data["x_train"]``'s image shape (side-effect free
    probe)."""
    from .utils import model_output_width

    device = next((p.device for p in base_model.parameters()), "cpu")
    return model_output_width(base_model, tuple(data["x_train"].shape[1:]), device=device)
