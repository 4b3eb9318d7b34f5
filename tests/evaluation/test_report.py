"""Reports: the results.json schema, recomputing the worst case from it, Markdown and PNG curves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.evaluation import (
    AttackSpec,
    evaluate,
    load_results,
    recompute_robust_accuracy,
    write_report,
)
from art_manifold_defenses.evaluation.report import (
    combined_markdown,
    markdown_table,
    plot_robustness_curves,
    worst_case_curve,
)


class Threshold(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, 0, 0, 0]
        return torch.stack([0.5 - v, v - 0.5], dim=1) * 10


def _data(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((n, 1, 4, 4), dtype=np.float32)
    y = np.arange(n) % 2
    x[:, 0, 0, 0] = np.where(y == 1, 0.6, 0.4)
    x[:, 0, 1, 1] = np.arange(n) / 100
    return x, y.astype(np.int64)


def _fake(spec, model, x, y, **kwargs):  # noqa: ANN001, ANN003
    """Breaks points by id: attack at eps e breaks ids < 10 * e (so a sweep is monotone); unbounded C&W breaks
    all."""
    ids = np.rint(x[:, 0, 1, 1] * 100).astype(int)
    limit = len(ids) + 100 if spec.eps is None else 10 * spec.eps
    adv = x.copy()
    hit = ids < limit
    adv[hit, 0, 0, 0] += np.where(x[hit, 0, 0, 0] > 0.5, -0.15, 0.15)
    return adv


SUITE = [
    AttackSpec("art", "pgd", "linf", 0.1),
    AttackSpec("art", "pgd", "linf", 0.3),
    AttackSpec("autoattack", "standard", "linf", 0.3),
    AttackSpec("art", "cw", "l2", None),
]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("report")
    x, y = _data()
    result = evaluate(
        Threshold(),
        x,
        y,
        SUITE,
        attack_fn=_fake,
        out_dir=out,
        verbose=False,
        model_name="toy",
        dataset="toy-set",
        reported=55.0,
    )
    return result, out


def test_results_json_schema(evaluated) -> None:  # noqa: ANN001
    result, out = evaluated
    record = load_results(out / "results.json")
    for key in (
        "model",
        "dataset",
        "n",
        "clean_accuracy",
        "robust_accuracy",
        "attacks",
        "audit",
        "versions",
        "seed",
        "clean_acc",
        "robust_acc",
        "autoattack_acc",
        "reported",
        "settings",
        "per_point",
        "threat_model",
    ):
        assert key in record, key
    assert (
        record["model"] == "toy"
        and record["dataset"] == "toy-set"
        and record["n"] == 10
        and record["seed"] == 0
    )
    for key in ("torch", "art", "foolbox", "cleverhans", "torchattacks", "art_manifold_defenses"):
        assert key in record["versions"]
    assert set(record["audit"]) >= {"flags"}
    for attack in record["attacks"]:
        for key in ("library", "attack", "norm", "eps", "params", "accuracy", "seconds", "correct", "label"):
            assert key in attack
        assert len(attack["correct"]) == 10
    assert record["clean_acc"] == pytest.approx(100 * record["clean_accuracy"])
    assert record["autoattack_acc"] == pytest.approx(100 * result.autoattack_accuracy)
    assert record["reported"] == 55.0 and record["threat_model"] == "mixed"
    assert record["robust_accuracy"] == pytest.approx(result.robust_accuracy)


def test_robust_accuracy_in_json_equals_recomputed_worst_case(evaluated) -> None:  # noqa: ANN001
    _, out = evaluated
    record = load_results(out / "results.json")
    assert record["robust_accuracy"] == pytest.approx(recompute_robust_accuracy(record))
    # the unbounded C&W breaks everything, so the worst case is 0 while the best single attack is not
    assert record["robust_accuracy"] == 0.0
    assert max(a["accuracy"] for a in record["attacks"]) > 0
    # tamper with one attack's per-point result: the recomputed value follows the per-point data
    record["attacks"] = [a for a in record["attacks"] if a["eps"] is not None]
    assert recompute_robust_accuracy(record) == pytest.approx(min(a["accuracy"] for a in record["attacks"]))


def test_markdown_and_curves(evaluated) -> None:  # noqa: ANN001
    _, out = evaluated
    md = (out / "results.md").read_text()
    assert "| attack | library | norm | eps | accuracy |" in md
    for spec in SUITE:
        assert spec.label in md
    assert "unbounded" in md and "robust accuracy" in md and "![robustness curves](curves.png)" in md
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_report_is_rendered_from_a_loaded_record(evaluated, tmp_path) -> None:  # noqa: ANN001
    _, out = evaluated
    record = load_results(out / "results.json")
    paths = write_report(record, tmp_path / "again", title="Re-rendered")
    assert json.loads(paths["json"].read_text())["robust_accuracy"] == record["robust_accuracy"]
    assert paths["markdown"].read_text().startswith("# Re-rendered")
    assert plot_robustness_curves(record, tmp_path / "c.png").is_file()
    text = markdown_table(record)
    assert text.count("\n| ") == 1 + len(record["attacks"])  # header + one row per attack


def test_audit_flags_appear_in_markdown() -> None:
    record = {
        "model": "m",
        "dataset": None,
        "n": 1,
        "seed": 0,
        "clean_accuracy": 1.0,
        "robust_accuracy": 1.0,
        "attacks": [],
        "per_point": {"clean_correct": [1], "robust_correct": [1]},
        "audit": {
            "flags": [
                {"code": "zero_gradients", "message": "grads are zero", "evidence": {}, "reference": ""}
            ]
        },
    }
    assert "**zero_gradients**: grads are zero" in markdown_table(record)
    combined = combined_markdown([("first", record, "first/curves.png")], title="Demo")
    assert (
        "| first | 100.00% | 100.00% | n/a | zero_gradients |" in combined and "first/curves.png" in combined
    )


def test_load_results_rejects_other_json(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not an art-manifold-defenses results record"):
        load_results(path)


def _attack(
    attack: str, norm: str, eps: float | None, correct: list[int], **extra: object
) -> dict[str, object]:
    return {
        "library": "art",
        "attack": attack,
        "norm": norm,
        "eps": eps,
        "params": {},
        "label": f"{attack} {eps}",
        "accuracy": float(np.mean(correct)),
        "correct": correct,
        "error": None,
        **extra,
    }


#: Six points; point 5 is wrong clean. Each attack breaks one point: the per-point worst case at eps counts
#: every fixed-budget attack with a budget <= eps and every minimisation attack's norms <= eps.
HAND_MADE = {
    "model": "hand-made",
    "n": 6,
    "clean_accuracy": 5 / 6,
    "robust_accuracy": 0.0,
    "per_point": {"clean_correct": [1, 1, 1, 1, 1, 0], "robust_correct": [0] * 6},
    "attacks": [
        _attack("pgd", "linf", 0.1, [1, 1, 1, 0, 1, 0]),
        _attack("apgd-dlr", "linf", 0.2, [1, 1, 0, 1, 1, 0]),
        _attack("pgd", "linf", 0.3, [1, 0, 1, 1, 1, 0]),
        _attack(
            "cw",
            "linf",
            0.3,
            [1, 1, 1, 1, 0, 0],
            minimisation=True,
            norms=[None, None, None, None, 0.15, None],
        ),
        {**_attack("apgd-ce", "linf", 0.1, [0] * 6), "error": "RuntimeError: boom"},  # failed: skipped
        _attack("pgd", "l2", 1.0, [0, 1, 1, 1, 1, 0]),  # another panel
        _attack(
            "cw", "l1", None, [0, 0, 1, 1, 1, 0], minimisation=True, norms=[2.0, 4.0, None, None, None, None]
        ),
    ],
}


def test_worst_case_curve_of_a_hand_made_record() -> None:
    xs, ys = worst_case_curve(HAND_MADE, "linf")
    assert xs == pytest.approx([0.0, 0.1, 0.2, 0.3])
    # 0: clean; 0.1: PGD breaks #3; 0.2: APGD-DLR #2 and C&W (norm 0.15) #4; 0.3: PGD #1
    assert ys == pytest.approx([5 / 6, 4 / 6, 2 / 6, 1 / 6])
    assert worst_case_curve(HAND_MADE, "linf", [0.15, 0.149])[1] == pytest.approx([3 / 6, 4 / 6])
    assert worst_case_curve(HAND_MADE, "l2") == ([0.0, 1.0], pytest.approx([5 / 6, 4 / 6]))
    l1_x, l1_y = worst_case_curve(HAND_MADE, "l1")  # only an unbounded attack: a grid up to its largest norm
    assert l1_x[0] == 0.0 and l1_x[-1] == pytest.approx(4.2) and len(l1_x) == 50
    assert l1_y[0] == pytest.approx(5 / 6) and l1_y[-1] == pytest.approx(3 / 6)
    assert all(a >= b for a, b in zip(l1_y, l1_y[1:], strict=False))  # never increases with eps
    # at each budget, never above any single attack of that budget
    for attack in HAND_MADE["attacks"]:
        if attack["norm"] == "linf" and attack["error"] is None:
            assert ys[xs.index(pytest.approx(attack["eps"]))] <= attack["accuracy"] + 1e-12


def test_curves_plot_the_per_point_worst_case(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to inspect it
    plot_robustness_curves(HAND_MADE, tmp_path / "c.png")
    (figure,) = figures
    panels = {ax.get_title().split(" -- ")[-1]: ax for ax in figure.axes}
    assert set(panels) == {"l1", "l2", "linf"}
    for norm, ax in panels.items():
        (line,) = [line for line in ax.get_lines() if line.get_label() == "per-point worst case"]
        xs, ys = worst_case_curve(HAND_MADE, norm)
        assert list(line.get_xdata()) == pytest.approx(xs) and list(line.get_ydata()) == pytest.approx(ys)
        assert line.get_color() == "black"
    monkeypatch.undo()
    plt.close(figure)


def test_curve_legends_sit_beside_the_panels_not_over_the_data(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The legends used to sit inside each panel (upper right), over the curves' points."""
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot_robustness_curves(HAND_MADE, tmp_path / "c.png")
    (figure,) = figures
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes:
        legend, box = ax.get_legend(), ax.get_window_extent(renderer)
        assert legend is not None and legend.get_window_extent(renderer).x0 >= box.x1 - 1e-6
        assert legend.get_window_extent(renderer).x1 <= figure.bbox.x1 + 1.0  # and inside the image
    monkeypatch.undo()
    plt.close(figure)
