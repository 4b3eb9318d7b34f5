"""Scale-out with torchrun (Gloo on CPU): sharding helpers, certify/evaluate with 2 processes give the files
of a single-process run, kill-and-resume does not recompute finished images, DDP training matches
single-process training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from art_manifold_defenses import cli, distributed
from art_manifold_defenses.checkpoint import save_checkpoint
from art_manifold_defenses.evaluation import AttackSpec, register_suite
from art_manifold_defenses.models import build_model
from art_manifold_defenses.smoothing import read_certify_tsv
from art_manifold_defenses.training import train

ARCH = {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}
TIMING = {"seconds", "seconds_per_image", "created", "evaluation_seconds"}


TINY_SUITE_ENTRY = """import sys
from art_manifold_defenses import cli
from art_manifold_defenses.evaluation import AttackSpec, register_suite


def tiny(*, norm, eps):
    return [AttackSpec("art", "fgsm", norm, eps), AttackSpec("cleverhans", "pgd", norm, eps, {"nb_iter": 3}),
            AttackSpec("foolbox", "pgd", norm, eps, {"steps": 3})]


register_suite("test-dist-tiny", tiny, norms=("linf",), overwrite=True)
sys.exit(cli.main(sys.argv[1:]))
"""


def _tiny(*, norm: str, eps: float) -> list[AttackSpec]:
    return [
        AttackSpec("art", "fgsm", norm, eps),
        AttackSpec("cleverhans", "pgd", norm, eps, {"nb_iter": 3}),
        AttackSpec("foolbox", "pgd", norm, eps, {"steps": 3}),
    ]


register_suite("test-dist-tiny", _tiny, norms=("linf",), overwrite=True)


def _torchrun(
    args: list[str], *, nproc: int = 2, timeout: float = 240, script: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AMD_TEST_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    target = [str(script)] if script is not None else ["-m", "art_manifold_defenses"]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        *target,
        *args,
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).parents[1]
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _strip(value: object) -> object:
    """A JSON value without its timing fields (the only things allowed to differ between runs)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _rows(path: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_certify_tsv(path)]


@pytest.fixture(scope="module")
def checkpoint(mnist_small, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    x_train, y_train, _, _ = mnist_small
    torch.manual_seed(0)
    arch = dict(ARCH)
    model = build_model(arch.pop("name"), **arch)
    train(model, x_train[:500], y_train[:500], epochs=1, batch_size=64, verbose=False)
    path = tmp_path_factory.mktemp("dist-ckpt") / "model.pt"
    save_checkpoint(model.eval(), path, architecture=ARCH, dataset="mnist-embedded")
    return path


# ------------------------------------------------------------------------------------------------------
# helpers
def test_shard_is_a_deterministic_partition() -> None:
    for size in (1, 2, 3, 5):
        for block in (1, 4):
            parts = [distributed.shard(23, rank_index=r, size=size, block=block) for r in range(size)]
            assert sorted(np.concatenate(parts).tolist()) == list(range(23))
            assert np.array_equal(parts[0], distributed.shard(23, rank_index=0, size=size, block=block))
    np.testing.assert_array_equal(distributed.shard(10, rank_index=1, size=2, block=3), [3, 4, 5, 9])
    np.testing.assert_array_equal(distributed.shard(7, rank_index=1, size=3), [1, 4])
    with pytest.raises(ValueError, match="rank"):
        distributed.shard(5, rank_index=2, size=2)
    with pytest.raises(ValueError, match="block"):
        distributed.shard(5, block=0)


def test_single_process_helpers_are_the_identity() -> None:
    assert distributed.world_size() == 1 and distributed.rank() == 0 and not distributed.is_distributed()
    info = distributed.init_distributed("cpu")
    assert (
        info.world_size == 1 and info.backend is None and info.device == torch.device("cpu") and info.is_main
    )
    assert distributed.gather_objects({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object(3) == 3 and distributed.all_reduce_sum([1.5, 2]) == [1.5, 2.0]
    distributed.barrier()
    distributed.destroy_distributed(info)
    with pytest.raises(ValueError, match="backend"):
        distributed.init_distributed("cpu", backend="mpi")


def test_derive_seed_depends_on_every_part() -> None:
    assert distributed.derive_seed(0, 5) == distributed.derive_seed(0, 5)
    seeds = {distributed.derive_seed(s, i) for s in (0, 1) for i in range(50)}
    assert len(seeds) == 100 and all(0 <= s < 2**62 for s in seeds)
    with pytest.raises(TypeError, match="seed"):
        distributed.derive_seed("0", 1)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------
# certify
def _certify_args(checkpoint: Path, data_root: str, out: Path, *extra: str) -> list[str]:
    return [
        "certify",
        "--checkpoint",
        str(checkpoint),
        "--data-root",
        data_root,
        "--num-images",
        "7",
        "--samples",
        "60",
        "--n0",
        "10",
        "--sigma",
        "0.25",
        "--batch-size",
        "140",
        "--seed",
        "5",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_torchrun_certify_matches_single_process_and_resumes(
    checkpoint: Path, data_root: str, tmp_path: Path
) -> None:
    single = tmp_path / "single"
    assert cli.main(_certify_args(checkpoint, data_root, single)) == 0
    reference = _rows(single / "certify.tsv")
    assert [int(r["idx"]) for r in reference] == list(range(7))
    assert any(float(r["radius_cohen"]) > 0 for r in reference)  # a real certificate, not all abstentions

    multi = tmp_path / "multi"
    _torchrun(_certify_args(checkpoint, data_root, multi))
    assert _rows(multi / "certify.tsv") == reference
    summary = json.loads((multi / "summary.json").read_text())
    assert _strip(summary) == _strip(json.loads((single / "summary.json").read_text()))
    assert sorted(p.name for p in multi.iterdir()) == sorted(
        p.name for p in single.iterdir()
    )  # no rank files left

    # a budgeted 2-process run stops each rank after 2 images; the rerun (1 process) certifies only the rest
    part = tmp_path / "part"
    _torchrun(_certify_args(checkpoint, data_root, part, "--max-images", "2"))
    first = {r["idx"]: r["seconds"] for r in read_certify_tsv(part / "certify.tsv")}
    assert sorted(map(int, first)) == [0, 1, 2, 3]  # round-robin: rank 0 has 0, 2; rank 1 has 1, 3
    assert cli.main(_certify_args(checkpoint, data_root, part)) == 0
    final = read_certify_tsv(part / "certify.tsv")
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in final] == reference
    assert {
        r["idx"]: r["seconds"] for r in final if r["idx"] in first
    } == first  # finished rows not recomputed


def test_crashed_rank_files_are_resumed_without_recomputing(
    checkpoint: Path, data_root: str, tmp_path: Path
) -> None:
    """A killed 2-process job leaves ``certify.rank{r}.tsv`` (one cut line included); a 1-process rerun reuses
    them."""
    from art_manifold_defenses.checkpoint import load_checkpoint
    from art_manifold_defenses.data import load_dataset
    from art_manifold_defenses.smoothing import RenyiSmoothingPyTorch, certify_to_tsv
    from art_manifold_defenses.smoothing.choices import (
        DEFAULT_ALPHA,  # what `amd certify` uses without --alpha
    )

    reference_dir = tmp_path / "ref"
    assert cli.main(_certify_args(checkpoint, data_root, reference_dir)) == 0
    model, _ = load_checkpoint(checkpoint)
    x, y = load_dataset("mnist-embedded", "test", root=data_root)
    est = RenyiSmoothingPyTorch(
        model,
        torch.nn.CrossEntropyLoss(),
        (1, 28, 28),
        10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
        scale=0.25,
        alpha=DEFAULT_ALPHA,
    )
    out = tmp_path / "crashed"
    rank1 = certify_to_tsv(
        est,
        x[[1, 3]],
        y[[1, 3]],
        out / "certify.rank1.tsv",
        n=60,
        n0=10,
        alpha=DEFAULT_ALPHA,
        batch_size=140,
        seed=5,
        indices=[1, 3],
        verbose=False,
    )
    with rank1.open("a") as handle:
        handle.write("5\t1\t1\t0.3")  # the row being written when the rank was killed
    kept = {r["idx"]: r["seconds"] for r in read_certify_tsv(rank1)}
    assert cli.main(_certify_args(checkpoint, data_root, out)) == 0
    final = read_certify_tsv(out / "certify.tsv")
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in final] == _rows(
        reference_dir / "certify.tsv"
    )
    assert {r["idx"]: r["seconds"] for r in final if r["idx"] in kept} == kept
    assert not list(out.glob("certify.rank*"))


# ------------------------------------------------------------------------------------------------------
# evaluate
def test_torchrun_evaluate_matches_single_process(checkpoint: Path, data_root: str, tmp_path: Path) -> None:
    def args(out: Path) -> list[str]:
        return [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--data-root",
            data_root,
            "--num-images",
            "30",
            "--suite",
            "test-dist-tiny",
            "--eps",
            "0.2",
            "--batch-size",
            "8",
            "--seed",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]

    single, multi = tmp_path / "single", tmp_path / "multi"
    assert cli.main(args(single)) == 0
    entry = (
        tmp_path / "entry.py"
    )  # `amd evaluate` with a tiny suite registered (the suite registry is per process)
    entry.write_text(TINY_SUITE_ENTRY)
    _torchrun(args(multi), script=entry)
    a = json.loads((single / "results.json").read_text())
    b = json.loads((multi / "results.json").read_text())
    assert _strip(a) == _strip(b)
    assert len(a["attacks"]) >= 2 and a["n"] == 30
    assert sorted(p.name for p in (multi / "attacks").iterdir()) == sorted(
        p.name for p in (single / "attacks").iterdir()
    )
    for p in (single / "attacks").glob("*.json"):
        assert _strip(json.loads(p.read_text())) == _strip(
            json.loads((multi / "attacks" / p.name).read_text())
        )


# ------------------------------------------------------------------------------------------------------
# training
def test_ddp_training_matches_single_process(data_root: str, tmp_path: Path) -> None:
    def args(out: Path) -> list[str]:
        return [
            "train",
            "--model",
            "wong_small",
            "--data-root",
            data_root,
            "--train-limit",
            "1024",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--seed",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]

    single, multi = tmp_path / "single", tmp_path / "multi"
    assert cli.main(args(single)) == 0
    _torchrun(args(multi))
    acc_single = json.loads((single / "model.json").read_text())["extra"]["test_accuracy"]
    acc_multi = json.loads((multi / "model.json").read_text())["extra"]["test_accuracy"]
    assert acc_single > 0.5 and acc_multi > 0.5  # both learned (16 steps on 1,024 images)
    assert (
        abs(acc_single - acc_multi) < 0.05
    )  # the same SGD (global batch 64 split 32 + 32), up to float rounding
    state = torch.load(multi / "train_state" / "train_state.pt", weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 1
