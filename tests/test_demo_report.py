"""The demo's report from saved results: accuracy against epsilon of every model, the comparison table, the
readings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from art_manifold_defenses import cli
from art_manifold_defenses.evaluation.report import (
    DEMO_FIGURE,
    DEMO_FORMAT,
    comparison_grid,
    comparison_table,
    plot_accuracy_vs_epsilon,
    read_against_baseline,
    wilson_interval,
)


def _attack(
    attack: str, norm: str, eps: float | None, correct: list[int], error: str | None = None
) -> dict[str, Any]:
    return {
        "library": "art",
        "attack": attack,
        "norm": norm,
        "eps": eps,
        "params": {},
        "label": f"{attack} {eps}",
        "accuracy": sum(correct) / len(correct),
        "correct": correct,
        "error": error,
        "seconds": 1.0,
        "median_norm": None,
        "violations": 0,
    }


def _record(
    name: str, clean: list[int], attacks: list[dict[str, Any]], flags: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "format": "art-manifold-defenses/results/1",
        "model": name,
        "dataset": "toy",
        "n": len(clean),
        "seed": 0,
        "clean_accuracy": sum(clean) / len(clean),
        "robust_accuracy": 0.0,
        "attacks": attacks,
        "per_point": {"clean_correct": clean, "robust_correct": [0] * len(clean)},
        "audit": {
            "flags": [{"code": c, "message": f"{c} raised", "evidence": {}, "reference": ""} for c in flags]
        },
        "versions": {},
        "settings": {},
    }


#: Five points each. ``base``: point 4 wrong clean; l-inf PGD 0.1 breaks #2, APGD 0.2 breaks #1, PGD 0.3
#: breaks #0; l2 PGD 1.0 breaks #3. ``defended``: l-inf attacks at 0.1 and 0.3 only (no 0.2 of its own), a
#: failed attack at 0.25 and a large-eps sanity check at 0.6 (neither is on the grid), no l2 attack.
BASE = _record(
    "base",
    [1, 1, 1, 1, 0],
    [
        _attack("pgd", "linf", 0.1, [1, 1, 0, 1, 0]),
        _attack("apgd-dlr", "linf", 0.2, [1, 0, 1, 1, 0]),
        _attack("pgd", "linf", 0.3, [0, 1, 1, 1, 0]),
        _attack("pgd", "l2", 1.0, [1, 1, 1, 0, 0]),
    ],
)
DEFENDED = _record(
    "defended",
    [1, 1, 1, 1, 1],
    [
        _attack("pgd", "linf", 0.1, [1, 1, 1, 1, 0]),
        _attack("pgd", "linf", 0.3, [1, 0, 0, 1, 0]),
        _attack("apgd-ce", "linf", 0.25, [0, 0, 0, 0, 0], error="RuntimeError: boom"),
        _attack("pgd", "linf", 0.6, [0, 0, 0, 0, 0]),
    ],
    flags=("zero_gradients",),
)
#: ``late``: attacked at l-inf 0.3 only, so it has no point at 0.1 and 0.2 (no attack measured them).
LATE = _record("late", [1, 1, 1, 0, 1], [_attack("pgd", "linf", 0.3, [1, 0, 1, 0, 0])])
#: The per-point worst cases worked out by hand from the lists above: (x, y) per model and norm.
EXPECTED = {
    ("base", "linf"): ([0.0, 0.1, 0.2, 0.3], [4 / 5, 3 / 5, 2 / 5, 1 / 5]),
    ("defended", "linf"): (
        [0.0, 0.1, 0.2, 0.3],
        [5 / 5, 4 / 5, 4 / 5, 2 / 5],
    ),  # at 0.2 only its 0.1 attack applies
    ("late", "linf"): ([0.0, 0.3], [4 / 5, 2 / 5]),
    ("base", "l2"): ([0.0, 1.0], [4 / 5, 3 / 5]),  # "defended" and "late": no l2 attack, no l2 line
}


def test_wilson_interval_matches_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(0, 10), (5, 10), (10, 10), (37, 50), (1, 100)]:
        assert wilson_interval(k, n) == pytest.approx(
            proportion_confint(k, n, alpha=0.05, method="wilson"), abs=1e-9
        )
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_comparison_grid_is_the_union_of_the_reported_budgets() -> None:
    assert comparison_grid([BASE, DEFENDED], "linf") == pytest.approx(
        [0.0, 0.1, 0.2, 0.3]
    )  # not 0.25 nor 0.6
    assert comparison_grid([DEFENDED], "linf") == pytest.approx([0.0, 0.1, 0.3])
    assert comparison_grid([BASE, DEFENDED], "l2") == pytest.approx([0.0, 1.0])
    assert comparison_grid([BASE, DEFENDED], "l1") == []


def test_accuracy_vs_epsilon_plots_every_models_worst_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    figures: list[Any] = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to inspect it
    models = [("base", BASE), ("defended", DEFENDED), ("late", LATE)]
    path = plot_accuracy_vs_epsilon(models, tmp_path / "eps.png", baseline="base")
    monkeypatch.undo()
    (figure,) = figures
    assert path.is_file() and path.stat().st_size > 1000
    panels = {ax.get_title(): ax for ax in figure.axes}
    assert set(panels) == {"l-inf", "l2"}  # the suite also ran l2: a second panel
    lines = {
        (str(line.get_label()), norm): line
        for norm, title in (("linf", "l-inf"), ("l2", "l2"))
        for line in panels[title].get_lines()
    }
    assert set(lines) == set(EXPECTED)
    for (name, _), (xs, ys) in EXPECTED.items():
        line = lines[name, _]
        assert list(line.get_xdata()) == pytest.approx(xs) and list(line.get_ydata()) == pytest.approx(ys)
        assert (line.get_color() == "black" and line.get_linestyle() == "--") == (name == "base")
    # one legend of every model, right of the last panel, outside the data
    figure.canvas.draw()
    legend = figure.axes[-1].get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["base", "defended", "late"]
    renderer = figure.canvas.get_renderer()
    assert legend.get_window_extent(renderer).x0 >= figure.axes[-1].get_window_extent(renderer).x1
    plt.close(figure)


_N = 50


def _read(
    worst: list[float],
    base: list[float],
    *,
    clean: float = 0.95,
    base_clean: float = 0.95,
    flags: tuple[str, ...] = (),
    is_baseline: bool = False,
) -> str:
    grid = [0.1, 0.2, 0.3]
    return read_against_baseline(
        list(zip(grid, worst, strict=True)),
        list(zip(grid, base, strict=True)),
        n=_N,
        baseline_n=_N,
        clean_accuracy=clean,
        baseline_clean_accuracy=base_clean,
        flags=flags,
        is_baseline=is_baseline,
    )


def test_reading_of_the_baseline_itself() -> None:
    assert _read([0.6, 0.1, 0.0], [0.6, 0.1, 0.0], is_baseline=True) == "the reference"
    assert (
        _read([0.6, 0.1, 0.0], [0.6, 0.1, 0.0], is_baseline=True, flags=("x",)) == "flagged: x; the reference"
    )


def test_reading_no_robustness_beyond_the_baseline() -> None:
    # 0.64 and 0.08 lie inside the baseline's intervals (0.60 on 50: [0.46, 0.72]; 0.10: [0.04, 0.21])
    assert _read([0.64, 0.08, 0.0], [0.60, 0.10, 0.0]) == "no robustness beyond the baseline"


def test_reading_more_robust_where_the_intervals_separate() -> None:
    # 0.90 on 50: [0.79, 0.96] lies above 0.60's [0.46, 0.72]; 0.40 [0.28, 0.54] above 0.10's [0.04, 0.21]
    assert _read([0.90, 0.40, 0.0], [0.60, 0.10, 0.0]) == "more robust than the baseline at eps 0.1, 0.2"


def test_reading_possibly_more_robust_where_the_intervals_overlap() -> None:
    # 0.24 is above 0.10's interval [0.04, 0.21] but its own interval [0.14, 0.37] overlaps it
    assert wilson_interval(12, _N)[0] < wilson_interval(5, _N)[1] < 0.24
    assert _read([0.60, 0.24, 0.0], [0.60, 0.10, 0.0]) == (
        "possibly more robust than the baseline at eps 0.2 (the 95% intervals overlap)"
    )


def test_reading_less_robust_where_its_interval_lies_below() -> None:
    assert (
        _read([0.10, 0.08, 0.0], [0.60, 0.10, 0.0])
        == "no robustness beyond the baseline (less robust at eps 0.1)"
    )
    assert _read([0.10, 0.40, 0.0], [0.60, 0.10, 0.0]) == (
        "more robust than the baseline at eps 0.2; less robust than the baseline at eps 0.1"
    )


def test_reading_flags_come_first() -> None:
    assert _read(
        [0.90, 0.40, 0.0], [0.60, 0.10, 0.0], flags=("zero_gradients", "unbounded_attack_not_zero")
    ) == ("flagged: zero_gradients, unbounded_attack_not_zero; more robust than the baseline at eps 0.1, 0.2")


def test_reading_clean_accuracy_beyond_five_points() -> None:
    assert _read([0.6, 0.1, 0.0], [0.6, 0.1, 0.0], clean=0.823, base_clean=0.95) == (
        "no robustness beyond the baseline; less accurate than the baseline on clean data (-12.7 points)"
    )
    assert (
        _read([0.6, 0.1, 0.0], [0.6, 0.1, 0.0], clean=0.91, base_clean=0.95)
        == "no robustness beyond the baseline"
    )
    assert _read([0.6, 0.1, 0.0], [0.6, 0.1, 0.0], clean=0.95, base_clean=0.80).endswith(
        "; more accurate than the baseline on clean data (+15.0 points)"
    )


def test_reading_skips_epsilons_the_baseline_lacks() -> None:
    text = read_against_baseline(
        [(0.1, 0.9), (0.2, 0.9)],
        [(0.1, 0.9)],
        n=_N,
        baseline_n=_N,
        clean_accuracy=0.9,
        baseline_clean_accuracy=0.9,
    )
    assert text == "no robustness beyond the baseline"


def test_comparison_table_rows(tmp_path: Path) -> None:
    rows = [
        {
            "name": "base",
            "record": BASE,
            "test_accuracy": 0.95,
            "train_seconds": 12.4,
            "attack_seconds": 30.6,
        },
        {
            "name": "defended",
            "record": DEFENDED,
            "test_accuracy": 0.81,
            "train_seconds": 100.0,
            "attack_seconds": 5.0,
            "certify_seconds": 20.2,
        },
    ]
    lines = comparison_table(rows).splitlines()
    assert lines[0] == (
        "| model | test accuracy | clean (attacked) | l-inf 0.1 | l-inf 0.2 | l-inf 0.3 | l2 1 | train s | "
        "attack s | certify s | reading |"
    )
    low, high = wilson_interval(3, 5)
    assert lines[2].startswith(
        f"| base | 0.950 | 0.80 [{wilson_interval(4, 5)[0]:.2f}, {wilson_interval(4, 5)[1]:.2f}] | "
        f"0.60 [{low:.2f}, {high:.2f}] | 0.40 "
    )
    assert lines[2].endswith("| 12 | 31 |  | l-inf: the reference / l2: the reference |")
    defended = lines[3].split(" | ")
    assert defended[-4:-1] == ["100", "5", "20"]
    # five points give wide intervals: 0.8 at l-inf 0.2 is above the baseline's 0.4 [0.12, 0.77], the
    # intervals overlapping; the clean accuracy is 14 points under the baseline's; no l2 attack ran on it
    assert wilson_interval(2, 5)[1] < 0.8 and wilson_interval(4, 5)[0] < wilson_interval(2, 5)[1]
    assert defended[-5] == "not attacked"  # its l2 cell
    assert defended[-1] == (
        "l-inf: flagged: zero_gradients; possibly more robust than the baseline at eps 0.2 (the 95% "
        "intervals overlap); "
        "less accurate than the baseline on clean data (-14.0 points) / l2: not attacked |"
    )
    late = (
        comparison_table([rows[0], {"name": "late", "record": LATE, "test_accuracy": 0.93}])
        .splitlines()[3]
        .split(" | ")
    )
    assert late[3:6] == [
        "not attacked",
        "not attacked",
        (f"0.40 [{wilson_interval(2, 5)[0]:.2f}, {wilson_interval(2, 5)[1]:.2f}]"),
    ]
    assert late[-1] == "l-inf: no robustness beyond the baseline / l2: not attacked |"
    # without a baseline: the flags only
    assert comparison_table(rows, None).splitlines()[3].endswith("| flagged: zero_gradients |")
    assert comparison_table(rows, None).splitlines()[2].endswith("| no baseline in this run |")


def _demo_folder(out: Path, *, version: int = 3) -> None:
    entries = []
    for name, record, defence in (("base", BASE, None), ("defended", DEFENDED, "stn")):
        (out / name).mkdir(parents=True)
        (out / name / "results.json").write_text(json.dumps(record))
        entry = {
            "name": name,
            "description": f"the {name} model",
            "results": f"{name}/results.json",
            "test_accuracy_full": 0.9,
            "train_seconds": 3.0,
            "evaluation_seconds": 4.0,
            "certified": None,
        }
        if version == 3:
            entry.update({"defence": defence, "certify_seconds": None})
        entries.append(entry)
    certified = {
        "images": 5,
        "n": 100,
        "radii": [0.25, 0.5],
        "certified_accuracy": {"cohen": {"0.25": 0.8, "0.5": 0.4}},
    }
    entries[1].update(
        {"certified": certified, "certify_seconds": 7.0} if version == 3 else {"certified": certified}
    )
    (out / "defended" / "certified_accuracy.png").write_bytes(b"png")
    summary = {
        "format": DEMO_FORMAT if version == 3 else "art-manifold-defenses/demo/2",
        "seconds": 123.4,
        "entries": entries,
    }
    if version == 3:
        summary["settings"] = {
            "command": "amd demo --out x --n 5",
            "epochs": 2,
            "suite": "quick",
            "n": 5,
            "seed": 0,
        }
    (out / "results.json").write_text(json.dumps(summary))


@pytest.mark.parametrize("version", [3, 2])
def test_demo_report_renders_from_saved_results(tmp_path: Path, version: int) -> None:
    _demo_folder(tmp_path, version=version)
    assert cli.main(["demo", "--out", str(tmp_path), "--render-only"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert (
        tmp_path / DEMO_FIGURE
    ).is_file() and f"![accuracy against epsilon, every model]({DEMO_FIGURE})" in report
    # version 2 files record no defence: only an entry named "baseline" is the baseline
    assert (
        comparison_table(
            [
                {
                    "name": "base",
                    "record": BASE,
                    "test_accuracy": 0.9,
                    "train_seconds": 3.0,
                    "attack_seconds": 4.0,
                },
                {
                    "name": "defended",
                    "record": DEFENDED,
                    "test_accuracy": 0.9,
                    "train_seconds": 3.0,
                    "attack_seconds": 4.0,
                    "certify_seconds": 7.0 if version == 3 else None,
                },
            ],
            0 if version == 3 else None,
        )
        in report
    )
    assert "![certified accuracy of defended](defended/certified_accuracy.png)" in report
    assert "| cohen | 0.800 | 0.400 |" in report and "123 s in all" in report
    assert ("`amd demo --out x --n 5`" in report) == (version == 3)
    assert (
        "## base" in report
        and "## defended" in report
        and "![robustness curves](defended/curves.png)" in report
    )


def test_render_only_without_a_run_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--out", str(tmp_path), "--render-only"]) == 2
    assert "results.json does not exist" in capsys.readouterr().err
