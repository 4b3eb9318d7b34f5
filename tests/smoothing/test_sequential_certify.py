"""The decision and adaptive modes on a network: per-image noise streams, agreement with fixed-n CERTIFY where
they must agree exactly, resumable fingerprinted TSVs with the samples spent,
``amd certify --radius / --adaptive`` and torchrun sharding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses import cli
from art_manifold_defenses.checkpoint import save_checkpoint
from art_manifold_defenses.fingerprint import FingerprintMismatchError
from art_manifold_defenses.models import build_model
from art_manifold_defenses.smoothing import (
    RenyiSmoothingPyTorch,
    SmoothedClassifier,
    certify_to_tsv,
    read_certify_tsv,
    summarize_certification,
)
from art_manifold_defenses.smoothing.outputs import certify_sharded
from art_manifold_defenses.smoothing.sampling import VoteStreams, image_seeds
from art_manifold_defenses.smoothing.sequential import DECISIONS
from art_manifold_defenses.training import train

ARCH: dict[str, Any] = {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}


def estimator(net: nn.Module, sigma: float = 0.25) -> RenyiSmoothingPyTorch:
    return RenyiSmoothingPyTorch(
        net.eval(),
        nn.CrossEntropyLoss(),
        (1, 28, 28),
        10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
        scale=sigma,
        alpha=0.001,
    )


def test_vote_streams_in_installments_equal_one_fixed_run(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...]
) -> None:
    x = mnist_small[2][:5]
    est = estimator(trained_tiny, sigma=0.5)
    selection, counts = est.certify_counts(x, 1500, 700, n0=50, seed=3, indices=[5, 6, 7, 8, 9])
    streams = VoteStreams(
        trained_tiny,
        torch.from_numpy(x),
        sigma=0.5,
        num_classes=10,
        batch_size=333,
        seeds=image_seeds(3, [5, 6, 7, 8, 9]),
        per_image=1550,
    )
    assert np.array_equal(streams.sample(range(5), [50] * 5).numpy(), selection)
    a = streams.sample([0, 2, 4], [400] * 3).numpy()
    b = streams.sample([1, 3], [1500] * 2).numpy()
    c = streams.sample([4, 0, 2], [1100] * 3).numpy()
    together = np.zeros_like(counts)
    together[[0, 2, 4]] = a + c[[1, 2, 0]]
    together[[1, 3]] = b
    assert np.array_equal(together, counts)
    with pytest.raises(ValueError, match="per_image"):
        streams.sample([0], [1])


def test_decision_with_one_round_is_fixed_certify(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...]
) -> None:
    """One round (first_round = n) tests at level alpha exactly: certified at r <=> CERTIFY's radius > r
    (Cohen, and Rényi on the Bonferroni pair)."""
    x = mnist_small[2][:16]
    est = estimator(trained_tiny)
    _, radii = est.certify(x, 1000, 2200, n0=100, bound="all", seed=4)
    for bound in ("cohen", "renyi"):
        radius = radii[bound]
        for r in (0.0, 0.25, 0.5):
            res = est.certify(x, 1000, 2200, n0=100, seed=4, radius=r, bound=bound, first_round=1000)
            np.testing.assert_array_equal(res.certified, radius > r)
            np.testing.assert_allclose(res.radius, radius, rtol=1e-9)
            assert (res.samples == 1100).all() and (res.rounds == 1).all()
        # the radii straddle the tested ones (the comparison is not vacuous)
        assert 0 < (radius > 0.25).sum() < 16


def test_decision_mode_answers(trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...]) -> None:
    _, _, x_test, y_test = mnist_small
    x = x_test[:16]
    est = estimator(trained_tiny)
    res = est.certify(x, 10_000, 2000, radius=0.25, seed=1)
    assert set(res.decision) <= set(DECISIONS) and len(res.decision) == 16
    assert ((res.prediction == -1) == (res.decision == "abstain")).all()
    # most images are decided long before the cap
    assert (res.samples <= 10_100).all() and res.samples.mean() < 3000
    assert (res.radius[res.certified] > 0.25).all() and (res.radius[~res.certified] <= 0.25).all()
    _, fixed = est.certify(x, 10_000, 2000, bound="cohen", seed=1)
    assert abs(int(res.certified.sum()) - int((fixed > 0.25).sum())) <= 2  # the same answer on nearly all
    # same seed: the decision mode's votes are a prefix of the fixed run's
    assert (res.count_top <= res.samples - 100).all()
    with pytest.raises(ValueError, match="radius"):
        est.certify(x[:2], 1000, radius=-0.5)
    with pytest.raises(ValueError, match="two different modes"):
        est.certify(x[:2], 1000, radius=0.5, samples="adaptive")
    with pytest.raises(ValueError, match="interval"):
        est.certify(x[:2], 1000, radius=0.5, interval="sison-glaz")
    with pytest.raises(ValueError, match="n0"):
        est.certify(x[:2], 1000, radius=0.5, n0=0)
    with pytest.raises(ValueError, match="bound"):
        est.certify(x[:2], 1000, radius=0.5, bound="all")
    with pytest.raises(ValueError, match="samples"):
        est.certify(x[:2], 1000, samples="sequential")


def test_adaptive_mode_prefix_and_samples(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...]
) -> None:
    x = mnist_small[2][:12]
    est = estimator(trained_tiny)
    pred, fixed, spent_fixed = est.certify(x, 8000, 2000, bound="cohen", seed=2, return_samples=True)
    assert (spent_fixed == 8100).all()
    pred_a, adaptive, spent = est.certify(
        x, 8000, 2000, bound="cohen", seed=2, samples="adaptive", return_samples=True
    )
    assert spent.mean() < 8100 and (spent <= 8100).all() and (spent >= 200).all()
    # images given the whole budget get exactly the fixed run's counts (same stream prefix)
    full = spent == 8100
    np.testing.assert_allclose(adaptive[full], fixed[full], rtol=1e-12)
    assert (adaptive <= fixed + 0.15).all()  # fewer samples never buy much more radius
    # max_radius_loss = 0: no image may give up radius, so every certified image keeps the whole budget
    _, exact, spent_exact = est.certify(
        x, 8000, 2000, bound="cohen", seed=2, samples="adaptive", max_radius_loss=0.0, return_samples=True
    )
    np.testing.assert_allclose(exact[spent_exact == 8100], fixed[spent_exact == 8100], rtol=1e-12)
    assert (spent_exact >= spent).all()
    with pytest.raises(ValueError, match="n0"):
        est.certify(x[:2], 1000, samples="adaptive", n0=0)
    with pytest.raises(ValueError, match="max_radius_loss"):
        est.certify(x[:2], 1000, samples="adaptive", max_radius_loss=-1.0)


def _strip(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_decision_tsv_resumes_and_refuses_other_settings(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    _, _, x_test, y_test = mnist_small
    x, y = x_test[:10], y_test[:10]
    est = estimator(trained_tiny)
    kwargs = {
        "n": 5000,
        "n0": 50,
        "alpha": 0.01,
        "batch_size": 400,
        "seed": 7,
        "verbose": False,
        "radius": 0.25,
    }
    full = certify_to_tsv(est, x, y, tmp_path / "a" / "certify.tsv", **kwargs)  # type: ignore[arg-type]
    rows = read_certify_tsv(full)
    assert [int(r["idx"]) for r in rows] == list(range(10))
    assert list(rows[0]) == [
        "idx",
        "label",
        "prediction",
        "decision",
        "radius_cohen",
        "correct",
        "seconds",
        "samples",
        "rounds",
        "count_top",
        "count_second",
        "p_lower",
        "p_upper",
        "image_hash",
    ]
    assert {r["decision"] for r in rows} <= set(DECISIONS)
    part = tmp_path / "b" / "certify.tsv"
    certify_to_tsv(est, x[:3], y[:3], part, **kwargs)  # type: ignore[arg-type]
    with part.open("a") as handle:
        handle.write("3\t5\t5\tcertif")  # a row cut by a kill
    certify_to_tsv(est, x, y, part, **kwargs)  # type: ignore[arg-type]
    assert _strip(read_certify_tsv(part)) == _strip(rows)
    with pytest.raises(FingerprintMismatchError, match=r"radius: 0.25 -> 0.5"):
        certify_to_tsv(est, x, y, part, **{**kwargs, "radius": 0.5})  # type: ignore[arg-type]
    with pytest.raises(FingerprintMismatchError, match="mode"):
        certify_to_tsv(est, x, y, part, **{**kwargs, "radius": None})  # type: ignore[arg-type]

    summary = summarize_certification(full, radii=[0.0, 0.25])
    samples = np.array([int(r["samples"]) for r in rows])
    assert summary["mode"] == "decision" and summary["samples_per_image"] == pytest.approx(samples.mean())
    assert summary["fixed_samples_per_image"] == 5050 and samples.mean() < 5050
    certified = np.array([r["decision"] == "certified" and r["correct"] == "1" for r in rows])
    assert summary["decision"]["radius"] == 0.25
    assert summary["decision"]["certified_accuracy"] == pytest.approx(certified.mean())
    assert summary["certified_accuracy"]["cohen"]["0.25"] == pytest.approx(certified.mean())


def test_adaptive_and_fixed_tsv_columns(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    _, _, x_test, y_test = mnist_small
    x, y = x_test[:6], y_test[:6]
    est = estimator(trained_tiny)
    kwargs = {
        "n": 3000,
        "n0": 50,
        "alpha": 0.01,
        "batch_size": 400,
        "seed": 7,
        "verbose": False,
        "bound": "cohen",
    }
    fixed = certify_to_tsv(est, x, y, tmp_path / "f.tsv", **kwargs)  # type: ignore[arg-type]
    # the fixed mode's file format is unchanged (its old files resume)
    assert "samples" not in read_certify_tsv(fixed)[0]
    assert summarize_certification(fixed)["samples_per_image"] == 3050
    adaptive = certify_to_tsv(est, x, y, tmp_path / "ad.tsv", samples="adaptive", **kwargs)  # type: ignore[arg-type]
    rows = read_certify_tsv(adaptive)
    assert list(rows[0])[-2:] == ["samples", "image_hash"]
    summary = summarize_certification(adaptive)
    assert summary["mode"] == "adaptive" and summary["settings"]["max_radius_loss"] == 0.05
    assert summary["samples_per_image"] == pytest.approx(np.mean([int(r["samples"]) for r in rows]))
    with pytest.raises(FingerprintMismatchError, match="max_radius_loss"):
        certify_to_tsv(est, x, y, adaptive, samples="adaptive", max_radius_loss=0.1, **kwargs)  # type: ignore[arg-type]
    # one process of certify_sharded writes the same rows as certify_to_tsv
    sharded = certify_sharded(est, x, y, tmp_path / "sh", samples="adaptive", **kwargs)  # type: ignore[arg-type]
    assert _strip(read_certify_tsv(sharded)) == _strip(rows)


@pytest.fixture(scope="module")
def checkpoint(mnist_small: tuple[np.ndarray, ...], tmp_path_factory: pytest.TempPathFactory) -> Path:
    x_train, y_train, _, _ = mnist_small
    torch.manual_seed(0)
    arch = dict(ARCH)
    base = build_model(arch.pop("name"), **arch)
    train(base, x_train[:500], y_train[:500], epochs=1, batch_size=64, verbose=False)
    path = tmp_path_factory.mktemp("seq-ckpt") / "model.pt"
    save_checkpoint(
        SmoothedClassifier(base.eval(), 0.25),
        path,
        architecture=ARCH,
        defence={"name": "stn", "params": {"sigma": 0.25}},
        dataset="mnist-embedded",
    )
    return path


def _certify_args(checkpoint: Path, data_root: str, out: Path, *extra: str) -> list[str]:
    return [
        "certify",
        "--checkpoint",
        str(checkpoint),
        "--data-root",
        data_root,
        "--num-images",
        "6",
        "--samples",
        "3000",
        "--n0",
        "20",
        "--batch-size",
        "400",
        "--seed",
        "5",
        "--alpha",
        "0.01",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_cli_radius_and_adaptive(
    checkpoint: Path, data_root: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(_certify_args(checkpoint, data_root, tmp_path / "d", "--radius", "0.25")) == 0
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["mode"] == "decision" and summary["settings"]["bounds"] == ["cohen"]
    assert summary["decision"]["radius"] == 0.25 and summary["samples_per_image"] < 3020
    assert '"samples_per_image"' in capsys.readouterr().out
    assert cli.main(_certify_args(checkpoint, data_root, tmp_path / "d", "--radius", "0.25")) == 0  # resumes
    capsys.readouterr()
    # another radius: refused, saying what differs
    assert cli.main(_certify_args(checkpoint, data_root, tmp_path / "d", "--radius", "0.5")) != 0
    assert "radius: 0.25 -> 0.5" in capsys.readouterr().err
    assert (
        cli.main(_certify_args(checkpoint, data_root, tmp_path / "a", "--adaptive", "--bound", "cohen")) == 0
    )
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["mode"] == "adaptive"
    with pytest.raises(SystemExit):
        cli.main(_certify_args(checkpoint, data_root, tmp_path / "x", "--radius", "0.25", "--adaptive"))
    assert (
        cli.main(_certify_args(checkpoint, data_root, tmp_path / "y", "--radius", "0.25", "--bound", "all"))
        != 0
    )
    assert "one bound" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("mode", [("--radius", "0.25"), ("--adaptive",)])
def test_torchrun_sequential_modes_match_single_process(
    checkpoint: Path, data_root: str, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    """Both modes shard under torchrun (2 CPU processes) into the rows of a single process (same per-image
    seeds)."""
    single = tmp_path / "single"
    assert cli.main(_certify_args(checkpoint, data_root, single, *mode)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AMD_TEST_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    multi = tmp_path / "multi"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "art_manifold_defenses",
        *_certify_args(checkpoint, data_root, multi, *mode),
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _strip(read_certify_tsv(multi / "certify.tsv")) == _strip(read_certify_tsv(single / "certify.tsv"))
