"""The recipe pages ``docs/use_from_art.md`` and ``docs/use_from_foolbox.md`` run top to bottom (tiny
settings).

Each page's ```python blocks are executed in order in one fresh namespace, with one torch thread, and the
numbers they compute are checked: accuracies are fractions, and no attack's robust accuracy exceeds the clean
accuracy on the same points.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"
CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
DEFENCES = ("rbf-cnn", "radial-mapping", "fpd", "manifold-reg", "smoothing")


def _run_page(name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Execute the python blocks of ``docs/<name>`` in order in one namespace and return it."""
    page = DOCS / name
    blocks = CODE_BLOCK.findall(page.read_text(encoding="utf-8"))
    assert len(blocks) >= 6, f"{name}: expected a block per defence, found {len(blocks)} blocks"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    try:
        for index, block in enumerate(blocks):
            exec(compile(block, f"{page}[python block {index}]", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    return namespace


def _is_fraction(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0


@pytest.mark.slow
def test_use_from_art_page_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    namespace = _run_page("use_from_art.md", monkeypatch)
    results = namespace["results"]
    assert set(results) == set(DEFENCES)
    for name, (clean, robust) in results.items():
        assert _is_fraction(clean) and _is_fraction(robust), (name, clean, robust)
        assert robust <= clean, (name, clean, robust)
    # the summary block printed one line per defence
    printed = capsys.readouterr().out
    for name in DEFENCES:
        assert re.search(rf"^{re.escape(name)}\s+clean \d\.\d\d\s+robust", printed, flags=re.MULTILINE), name
    # certification: one certified-accuracy curve per bound, fractions that do not grow with the radius
    certified = namespace["certified"]
    assert set(certified) == {"renyi", "cohen", "pixeldp"}
    for bound, curve in certified.items():
        assert all(_is_fraction(v) for v in curve.values()), (bound, curve)
        assert curve[0.5] <= curve[0.25], (bound, curve)
    assert certified["renyi"][0.5] <= certified["cohen"][0.5]  # the Rényi radius is never above Cohen's
    assert namespace["rbf_cnn"].stochastic and namespace["bank"].num_filters >= 1


@pytest.mark.slow
def test_use_from_foolbox_page_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = _run_page("use_from_foolbox.md", monkeypatch)
    results = namespace["results"]
    assert set(results) == {*DEFENCES, "rbf-one-vote"}
    for name, row in results.items():
        assert set(row) == {"clean", "foolbox_linf", "foolbox_l2", "art_linf"}, name
        assert all(_is_fraction(v) for v in row.values()), (name, row)
        # Foolbox and ART attacked the same points: neither robust accuracy exceeds the clean accuracy
        assert row["foolbox_linf"] <= row["clean"] and row["art_linf"] <= row["clean"], (name, row)
        assert row["foolbox_l2"] <= row["clean"], (name, row)
    # the reconstruction reached as a plain nn.Module: images in, images in [0, 1] out
    xs = namespace["xs"]
    reconstructed, surrogate = namespace["reconstructed"], namespace["surrogate"]
    assert isinstance(namespace["reconstruction"], torch.nn.Module)
    assert reconstructed.shape == xs.shape and surrogate.shape == xs.shape
    assert float(reconstructed.min()) >= 0.0 and float(reconstructed.max()) <= 1.0
    assert isinstance(namespace["rbf_cnn"].reconstruction, torch.nn.Module)
