"""The paper suites are data of the evaluation harness: ``get_suite("paper-fpd")`` works in plain Python,
without the ``amd`` command (or the defence) imported first, and gives what ``amd evaluate --suite paper-fpd``
uses."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from art_manifold_defenses.evaluation import AttackSpec, get_suite, register_suite, suite_names
from art_manifold_defenses.evaluation.suites import PAPER_SUITES, register_paper_suite

#: The names ``amd evaluate --suite`` accepts for the papers' suites.
PAPER_SUITE_NAMES = ("paper-fpd", "paper-manifold-reg", "paper-radial-mapping", "paper-rbf-cnn")

#: Prints the suite ``NAME`` as resolved by plain ``get_suite`` in a fresh interpreter, and whether the CLI or
#: the defence's suite module had been imported before the call.
_FRESH = """
import json, sys
name = sys.argv[1]
defence_module = {modules!r}[name].split(":")[0]
before = [m for m in ("art_manifold_defenses.cli", defence_module) if m in sys.modules]
from art_manifold_defenses.evaluation import get_suite
specs = get_suite(name)
print(json.dumps({{"imported_before": before, "cli_imported": "art_manifold_defenses.cli" in sys.modules,
                  "specs": [s.to_dict() for s in specs]}}))
"""

#: Prints every paper suite as the ``amd evaluate`` code path resolves it (register, then ``get_suite`` with
#: the command's default ``--norm``/``--eps`` of None), in one fresh interpreter.
_CLI = """
import json
from art_manifold_defenses import cli
from art_manifold_defenses.evaluation import get_suite
out = {}
for name in cli.PAPER_SUITES:
    cli.register_paper_suite(name)
    out[name] = [s.to_dict() for s in get_suite(name, norm=None, eps=None)]
print(json.dumps(out))
"""


def _run(code: str, *args: str) -> Any:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cli_suites() -> dict[str, list[dict[str, Any]]]:
    return _run(_CLI)


def test_the_paper_suites_are_the_ones_the_cli_accepts() -> None:
    from art_manifold_defenses import cli

    assert tuple(sorted(PAPER_SUITES)) == PAPER_SUITE_NAMES
    assert cli.PAPER_SUITES is PAPER_SUITES and cli.register_paper_suite is register_paper_suite  # one table


@pytest.mark.parametrize("name", PAPER_SUITE_NAMES)
def test_get_suite_resolves_a_paper_suite_in_a_fresh_interpreter(
    name: str, cli_suites: dict[str, list[dict[str, Any]]]
) -> None:
    fresh = _run(_FRESH.format(modules=dict(PAPER_SUITES)), name)
    assert fresh["imported_before"] == []  # nothing of the CLI or the defence was imported before get_suite
    assert fresh["cli_imported"] is False  # and get_suite did not need the CLI
    assert fresh["specs"], name
    assert (
        fresh["specs"] == cli_suites[name]
    )  # the same attacks, parameters and names as `amd evaluate --suite`
    specs = [AttackSpec.from_dict(d) for d in fresh["specs"]]
    assert len({s.label for s in specs}) == len(specs)  # the runner needs unique labels


def test_an_unknown_name_raises_a_value_error_listing_the_known_names() -> None:
    with pytest.raises(ValueError, match="unknown suite 'paper-nope'") as info:
        get_suite("paper-nope")
    message = str(info.value)
    for name in (*PAPER_SUITE_NAMES, "quick", "linf", "l2", "l1", "autoattack", "full"):
        assert repr(name) in message, name
    register_paper_suite("paper-nope")  # not a paper suite: no-op
    assert "paper-nope" not in suite_names()


def test_a_registered_paper_suite_is_used_as_registered() -> None:
    """``get_suite`` registers a paper suite only when the name is not registered: a caller's override
    stands."""
    from art_manifold_defenses.fpd.suite import paper_fpd_suite

    override = [AttackSpec("art", "fgsm", "linf", 0.1, name="override")]
    register_suite("paper-fpd", lambda **kw: override, norms=None, overwrite=True)
    try:
        assert [s.name for s in get_suite("paper-fpd")] == ["override"]
        register_paper_suite(
            "paper-fpd"
        )  # what `amd evaluate --suite paper-fpd` does first: the paper's settings
        assert [s.to_dict() for s in get_suite("paper-fpd")] == [s.to_dict() for s in paper_fpd_suite()]
    finally:
        register_paper_suite("paper-fpd")
