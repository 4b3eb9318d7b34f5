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
from art_manifold_defenses.evaluation.report import combined_markdown, markdown_table, plot_robustness_curves


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
    """Breaks points by id: attack at eps e breaks ids < 10 * e (so a sweep is monotone); unbounded C&W breaks all."""
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
    result = evaluate(Threshold(), x, y, SUITE, attack_fn=_fake, out_dir=out, verbose=False, model_name="toy",
                      dataset="toy-set", reported=55.0)  # fmt: skip
    return result, out


def test_results_json_schema(evaluated) -> None:  # noqa: ANN001
    result, out = evaluated
    record = load_results(out / "results.json")
    for key in ("model", "dataset", "n", "clean_accuracy", "robust_accuracy", "attacks", "audit", "versions", "seed",
                "clean_acc", "robust_acc", "autoattack_acc", "reported", "settings", "per_point", "threat_model"):
        assert key in record, key
    assert record["model"] == "toy" and record["dataset"] == "toy-set" and record["n"] == 10 and record["seed"] == 0
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
        "model": "m", "dataset": None, "n": 1, "seed": 0, "clean_accuracy": 1.0, "robust_accuracy": 1.0,
        "attacks": [], "per_point": {"clean_correct": [1], "robust_correct": [1]},
        "audit": {"flags": [{"code": "zero_gradients", "message": "grads are zero", "evidence": {}, "reference": ""}]},
    }  # fmt: skip
    assert "**zero_gradients**: grads are zero" in markdown_table(record)
    combined = combined_markdown([("first", record, "first/curves.png")], title="Demo")
    assert "| first | 100.00% | 100.00% | n/a | zero_gradients |" in combined and "first/curves.png" in combined


def test_load_results_rejects_other_json(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not an art-manifold-defenses results record"):
        load_results(path)
