"""``amd demo``: its entries train through the ``amd train --defense`` modules, and the report covers every
entry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from art_manifold_defenses import cli, demo
from art_manifold_defenses.evaluation import AttackSpec, register_suite
from art_manifold_defenses.evaluation.report import DEMO_FIGURE, DEMO_FORMAT, comparison_table, load_results


def _tiny_suite(norm: str = "linf", eps: float = 0.3) -> list[AttackSpec]:
    return [AttackSpec("art", "fgsm", norm, eps), AttackSpec("art", "pgd", norm, eps, {"max_iter": 2})]


register_suite("test-demo-tiny", _tiny_suite, norms=("linf",), overwrite=True)


def test_entries_are_the_baseline_and_the_five_defences() -> None:
    names = demo.demo_entry_names()
    assert names[0] == "baseline" and demo.DEMO_ENTRIES[0].defence is None
    assert {e.defence for e in demo.DEMO_ENTRIES[1:]} == {
        "rbf-cnn",
        "radial-mapping",
        "fpd",
        "manifold-reg",
        "stn",
    }
    assert [e.name for e in demo.DEMO_ENTRIES if e.certify] == ["stn"]
    assert set(demo._TRAINERS) <= set(cli.DEFENCE_TRAINERS)  # the same modules as `amd train --defense`


@pytest.mark.parametrize("entry", demo.DEMO_ENTRIES, ids=lambda e: e.name)
def test_entry_options_are_flags_of_its_defence(entry: demo.DemoEntry, tmp_path: Path) -> None:
    args = argparse.Namespace(data_root=None, device="cpu", seed=3, quiet=True)
    namespace = demo._train_namespace(entry, args, tmp_path, epochs=2)
    assert namespace.epochs == 2 and namespace.seed == 3 and namespace.model == entry.model["name"]
    for key, value in entry.options.items():
        assert getattr(namespace, key) == value


def test_unknown_option_is_a_clear_error(tmp_path: Path) -> None:
    entry = demo.DemoEntry("bad", "typo in an option", {"name": "wong_small"}, "stn", {"sigmaa": 0.5})
    args = argparse.Namespace(data_root=None, device="cpu", seed=0, quiet=True)
    with pytest.raises(ValueError, match="sigmaa"):
        demo._train_namespace(entry, args, tmp_path, epochs=1)


def test_demo_trains_evaluates_certifies_and_reports(
    monkeypatch: pytest.MonkeyPatch, data_root: str, tmp_path: Path
) -> None:
    entries = [
        demo.DemoEntry("plain", "wong_small, plain training", {"name": "wong_small"}, epochs_scale=0.5),
        demo.DemoEntry(
            "smoothed",
            "wong_small with STN",
            {"name": "wong_small"},
            "stn",
            {"sigma": 0.25},
            evaluation={"eot_samples": 2, "votes": 3, "repeats": 1},
            certify=True,
        ),
    ]
    monkeypatch.setattr(demo, "DEMO_ENTRIES", entries)
    out = tmp_path / "demo"
    argv = [
        "demo",
        "--out",
        str(out),
        "--n",
        "8",
        "--epochs",
        "1",
        "--certify-n",
        "30",
        "--suite",
        "test-demo-tiny",
        "--data-root",
        data_root,
        "--quiet",
    ]
    assert cli.main(argv) == 0
    report = (out / "report.md").read_text()
    assert (
        "| plain |" in report and "| smoothed |" in report and "Certified l2 accuracy of `smoothed`" in report
    )
    summary = json.loads((out / "results.json").read_text())
    assert [e["name"] for e in summary["entries"]] == ["plain", "smoothed"]
    # the new parts: one accuracy-against-epsilon figure of every model, the comparison table with costs and
    # readings against the undefended entry, the certified-accuracy curve embedded
    assert (
        summary["format"] == DEMO_FORMAT
        and summary["settings"]["n"] == 8
        and summary["settings"]["suite"] == "test-demo-tiny"
    )
    assert (out / DEMO_FIGURE).is_file() and f"]({DEMO_FIGURE})" in report
    records = [load_results(out / name / "results.json") for name in ("plain", "smoothed")]
    rows = [
        {
            "name": e["name"],
            "record": r,
            "test_accuracy": e["test_accuracy_full"],
            "train_seconds": e["train_seconds"],
            "attack_seconds": e["evaluation_seconds"],
            "certify_seconds": e["certify_seconds"],
        }
        for e, r in zip(summary["entries"], records, strict=True)
    ]
    table = comparison_table(rows, 0)
    assert table in report and "| l-inf 0.3 |" in table and "| certify s |" in table
    # the tiny suite has no margin-loss attack: the audit flags it on both rows, before their readings
    assert table.splitlines()[2].endswith("| flagged: cross_entropy_only_at_eps; the reference |")
    assert table.splitlines()[3].split(" | ")[-1].startswith("flagged: cross_entropy_only_at_eps; ")
    assert "the baseline" in table.splitlines()[3].split(" | ")[-1]
    assert summary["entries"][0]["certify_seconds"] is None and summary["entries"][1]["certify_seconds"] > 0
    assert "![certified accuracy of smoothed](smoothed/certified_accuracy.png)" in report
    # rendering again from the saved files gives the same report
    (out / "report.md").unlink()
    assert cli.main(["demo", "--out", str(out), "--render-only"]) == 0
    assert (out / "report.md").read_text() == report
    smoothed = summary["entries"][1]
    assert smoothed["certified"]["images"] == 8 and set(smoothed["certified"]["certified_accuracy"]) == {
        "renyi",
        "cohen",
        "pixeldp",
    }
    assert summary["entries"][0]["certified"] is None
    for name in ("plain", "smoothed"):
        assert (out / name / "model.pt").is_file() and (out / name / "curves.png").is_file()
        assert load_results(out / name / "results.json")["n"] == 8
    assert (out / "smoothed" / "certified_accuracy.png").is_file() and (
        out / "smoothed" / "certify.tsv"
    ).is_file()
    assert json.loads((out / "smoothed" / "model.json").read_text())["defence"]["name"] == "stn"
    assert load_results(out / "smoothed" / "results.json")["settings"]["stochastic"]
    # a rerun with another seed into the same folder is refused (its files belong to another run); --overwrite
    # restarts
    assert cli.main([*argv, "--seed", "1"]) == 2
    assert cli.main([*argv, "--seed", "1", "--overwrite"]) == 0
    assert json.loads((out / "plain" / "model.json").read_text())["extra"]["seed"] == 1


def test_bad_counts_are_rejected(data_root: str, tmp_path: Path) -> None:
    assert cli.main(["demo", "--out", str(tmp_path), "--n", "0", "--data-root", data_root, "--quiet"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["demo", "--out", str(tmp_path), "--only", "no-such-entry"])
