"""The papers ``amd reproduce`` runs: one :class:`Reproduction` each (its ``examples/`` script and how that
script is called so that its table, ``summary.json`` and work files land in one folder), in
:data:`REPRODUCTIONS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .defences import DEFENCES


@dataclass(frozen=True)
class Reproduction:
    """One paper's reproduction script and how ``amd reproduce`` calls it.

    ``arguments(folder, scale, data_root, seed, device)`` gives the script's command-line arguments so that
    its detailed table, its ``summary.json`` and its work files (models, cached attack results) all land in
    ``folder``.
    """

    key: str
    paper: str
    title: str
    script: str
    arguments: Callable[[Path, str, str, int, str], list[str]]


def _out_work(folder: Path, scale: str, data_root: str, seed: int, device: str) -> list[str]:
    """Scripts taking ``--out`` (the table) and ``--work`` (models and caches)."""
    return [
        "--scale",
        scale,
        "--out",
        str(folder),
        "--work",
        str(folder / "work"),
        "--data-root",
        data_root,
        "--seed",
        str(seed),
        "--device",
        device,
    ]


def _results_out(name: str, *, takes_device: bool = True) -> Callable[[Path, str, str, int, str], list[str]]:
    """Scripts taking ``--results`` (the table's path) and ``--out`` (models and caches);
    ``takes_device=False`` for a CPU-only script without ``--device``."""

    def arguments(folder: Path, scale: str, data_root: str, seed: int, device: str) -> list[str]:
        args = [
            "--scale",
            scale,
            "--results",
            str(folder / name),
            "--out",
            str(folder / "work"),
            "--data-root",
            data_root,
            "--seed",
            str(seed),
        ]
        return [*args, "--device", device] if takes_device else args

    return arguments


def _defence(
    name: str, script: str, arguments: Callable[[Path, str, str, int, str], list[str]]
) -> Reproduction:
    """The reproduction of a listed defence: its key, paper number and title come from its record in
    :data:`art_manifold_defenses.defences.DEFENCES`."""
    defence = DEFENCES[name]
    return Reproduction(defence.name, defence.paper_id, defence.paper, script, arguments)


#: The reproductions, in the order ``amd reproduce all`` runs them (cheapest first).
REPRODUCTIONS: dict[str, Reproduction] = {
    r.key: r
    for r in (
        _defence("stn", "reproduce_stn.py", _out_work),
        Reproduction(
            "verification",
            "003",
            "Exact verification of manifold regularization (Jin & Rinard 2020, Table 2)",
            "reproduce_verification.py",
            _results_out("verification.md", takes_device=False),
        ),
        _defence("radial-mapping", "reproduce_radial_mapping.py", _out_work),
        _defence("manifold-reg", "reproduce_manifold_regularization.py", _out_work),
        _defence("rbf-cnn", "reproduce_rbf_cnn.py", _out_work),
        _defence("fpd", "reproduce_fpd.py", _results_out("fpd.md")),
    )
}
