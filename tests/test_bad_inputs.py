"""Bad inputs and faults through the Python API and the ``amd`` command (issue 20).

Every case gives a clear error: the exact exception type and a message that names the argument (Python), or
exit status 2 with one ``amd <command>: error: ...`` line naming the flag or file and no traceback (CLI). A
folder holding another run's results is refused with what differs, and ``--overwrite`` starts afresh; nothing
is ever mixed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses import cli
from art_manifold_defenses.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from art_manifold_defenses.evaluation import register_suite
from art_manifold_defenses.fingerprint import FingerprintMismatchError, read_tsv
from art_manifold_defenses.models import build_model
from art_manifold_defenses.training import train

ARCH = {"name": "wong_small", "in_channels": 1, "num_classes": 10, "input_size": 28}


# ------------------------------------------------------------------------------------------------------
# helpers
def amd(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """Run ``amd`` in-process: ``(exit status, stdout, stderr)`` (argparse's own exits included)."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_cli_error(result: tuple[int, str, str], command: str, *fragments: str) -> str:
    """Exit status 2, exactly one ``amd <command>: error:`` line holding every fragment, no traceback."""
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"amd {command}: error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _trained(x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("wong_small")
    train(model, x[:256], y[:256], epochs=1, batch_size=64, verbose=False, seed=seed)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(
    tmp_path_factory: pytest.TempPathFactory, mnist_small: tuple[np.ndarray, ...]
) -> dict[str, Path]:
    """Two wong_small checkpoints (trained briefly from different seeds) and a copy of the first."""
    x_train, y_train, _, _ = mnist_small
    root = tmp_path_factory.mktemp("bad-inputs-ckpt")
    paths = {}
    for name, seed in (("a", 0), ("b", 1)):
        paths[name] = save_checkpoint(
            _trained(x_train, y_train, seed),
            root / name / "model.pt",
            architecture=ARCH,
            dataset="mnist-embedded",
        )
    return paths


def _copy_checkpoint(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(source.read_bytes())
    (folder / "model.json").write_text(source.with_suffix(".json").read_text())
    return folder / "model.pt"


# ------------------------------------------------------------------------------------------------------ 1, 2.
# resume
def _one_step(*, norm: str, eps: float) -> list:  # noqa: ANN202 - a suite factory
    from art_manifold_defenses.evaluation import AttackSpec

    return [AttackSpec("art", "fgsm", norm, eps)]


register_suite("test-bad-inputs-fgsm", _one_step, norms=("linf",), overwrite=True)

#: Small, fast and deterministic settings of each command (later flags override earlier ones).
FAST = {
    "verify": [
        "--eps",
        "0.003",
        "--n",
        "3",
        "--bounds",
        "crown",
        "--time-limit",
        "10",
        "--attack-steps",
        "0",
        "--pgd-steps",
        "2",
        "--pgd-restarts",
        "1",
    ],
    "certify": ["--n", "3", "--sigma", "0.25", "--samples", "20", "--n0", "5", "--batch-size", "100"],
    "evaluate": ["--n", "8", "--suite", "test-bad-inputs-fgsm", "--eps", "0.1"],
}
RESULT_FILE = {"verify": "verification.tsv", "certify": "certify.tsv", "evaluate": "results.json"}
TIMING = {"seconds", "bounds_seconds", "milp_seconds", "created", "evaluation_seconds"}


def _run(
    capsys: pytest.CaptureFixture[str],
    command: str,
    checkpoint: Path,
    out: Path,
    data_root: str,
    *extra: object,
) -> tuple[int, str, str]:
    return amd(
        capsys,
        command,
        "--checkpoint",
        checkpoint,
        "--out",
        out,
        "--data-root",
        data_root,
        "--quiet",
        *FAST[command],
        *extra,
    )


def _without_timing(path: Path) -> object:
    """The rows of a TSV, or the per-point results of a results.json, without what timing changes."""
    if path.suffix == ".tsv":
        return [{k: v for k, v in row.items() if k not in TIMING} for row in read_tsv(path)[2]]
    record = json.loads(path.read_text())
    return (
        record["per_point"],
        [attack["correct"] for attack in record["attacks"]],
        record["settings"]["fingerprint"],
    )


@pytest.mark.parametrize(
    ("command", "other_setting", "difference"),
    [
        ("verify", ["--eps", "0.006"], "eps: 0.003 -> 0.006"),
        (
            "certify",
            ["--samples", "30"],
            "n: 20 -> 30",
        ),  # no sidecar to lose: the sample count is in certify.tsv
        ("evaluate", ["--eps", "0.2"], '"eps": 0.1, "library": "art",... -> ...": "fgsm", "eps": 0.2,'),
        ("evaluate", ["--n", "6"], "data:"),
    ],
)
def test_a_rerun_into_another_runs_folder_is_refused_and_overwrite_starts_afresh(
    command: str,
    other_setting: list[str],
    difference: str,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    data_root: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / command
    result = out / RESULT_FILE[command]
    assert _run(capsys, command, checkpoints["a"], out, data_root)[0] == 0
    before = result.read_text()
    assert_cli_error(
        _run(capsys, command, checkpoints["b"], out, data_root),
        command,
        "another run",
        "what differs",
        "model:",
        "--overwrite",
    )
    assert_cli_error(
        _run(capsys, command, checkpoints["a"], out, data_root, *other_setting), command, difference
    )
    assert result.read_text() == before  # nothing appended, nothing replaced
    assert not list(out.glob("*.settings.json"))
    assert _run(capsys, command, checkpoints["a"], out, data_root)[0] == 0  # the same run resumes
    assert _run(capsys, command, checkpoints["b"], out, data_root, "--overwrite")[0] == 0
    fresh = tmp_path / "fresh"
    assert _run(capsys, command, checkpoints["b"], fresh, data_root)[0] == 0
    assert _without_timing(result) == _without_timing(fresh / RESULT_FILE[command])


def test_certify_resumes_with_a_copy_of_the_checkpoint_and_extends(
    checkpoints: dict[str, Path], tmp_path: Path, data_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "certify"
    assert _run(capsys, "certify", checkpoints["a"], out, data_root)[0] == 0
    copy = _copy_checkpoint(checkpoints["a"], tmp_path / "copy")  # the same weights elsewhere: the same model
    assert _run(capsys, "certify", copy, out, data_root, "--n", "4")[0] == 0
    assert [r["idx"] for r in read_tsv(out / "certify.tsv")[2]] == ["0", "1", "2", "3"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["n"] == 20 and summary["images"] == 4


def test_verify_refuses_rows_of_other_images(
    checkpoints: dict[str, Path], tmp_path: Path, data_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "verify"
    assert _run(capsys, "verify", checkpoints["a"], out, data_root)[0] == 0
    _, columns, rows = read_tsv(out / "verification.tsv")
    rows[1]["image_hash"] = "0" * 16  # as if row 1 had been verified on another data set
    text = (out / "verification.tsv").read_text().splitlines()
    text[3] = "\t".join(rows[1][c] for c in columns)
    (out / "verification.tsv").write_text("\n".join(text) + "\n")
    assert_cli_error(
        _run(capsys, "verify", checkpoints["a"], out, data_root), "verify", "image 1", "another image"
    )


# ------------------------------------------------------------------------------------------------------ 5.
# torn verify line
def test_verify_resumes_after_a_torn_last_line(
    checkpoints: dict[str, Path], tmp_path: Path, data_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "reference"
    assert _run(capsys, "verify", checkpoints["a"], reference, data_root)[0] == 0
    out = tmp_path / "torn"
    assert _run(capsys, "verify", checkpoints["a"], out, data_root, "--n", "2")[0] == 0
    with (out / "verification.tsv").open("a") as handle:
        handle.write("2\t1\t1\tverif")  # the row being written when the process died
    assert _run(capsys, "verify", checkpoints["a"], out, data_root)[0] == 0
    assert _run(capsys, "verify", checkpoints["a"], out, data_root)[0] == 0  # and every later rerun works too
    assert _without_timing(out / "verification.tsv") == _without_timing(reference / "verification.tsv")
    assert "verif\n" not in (out / "verification.tsv").read_text()


# ------------------------------------------------------------------------------------------------------ 2.
# certify (API)
def test_certify_api_refuses_rows_of_other_images_and_files_without_fingerprint(
    checkpoints: dict[str, Path], tmp_path: Path, mnist_small: tuple[np.ndarray, ...]
) -> None:
    from art_manifold_defenses.smoothing import (
        RenyiSmoothingPyTorch,
        certify_to_tsv,
        read_certify_fingerprint,
        read_certify_tsv,
    )

    _, _, x, y = mnist_small
    model, _ = load_checkpoint(checkpoints["a"])
    est = RenyiSmoothingPyTorch(
        model,
        nn.CrossEntropyLoss(),
        (1, 28, 28),
        10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
        scale=0.25,
        alpha=0.05,
    )
    options = {"n": 20, "n0": 5, "alpha": 0.05, "batch_size": 100, "seed": 1, "verbose": False}
    path = certify_to_tsv(est, x[:3], y[:3], tmp_path / "c.tsv", **options)
    stored = read_certify_fingerprint(path)
    assert (
        stored is not None
        and stored["n"] == 20
        and stored["nb_classes"] == 10
        and len(read_certify_tsv(path)) == 3
    )
    with pytest.raises(FingerprintMismatchError, match="image 0 was computed on another image"):
        certify_to_tsv(est, x[10:13], y[10:13], path, **options)  # another slice, same indices 0..2
    other, _ = load_checkpoint(checkpoints["b"])
    est_b = RenyiSmoothingPyTorch(
        other,
        nn.CrossEntropyLoss(),
        (1, 28, 28),
        10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
        scale=0.25,
        alpha=0.05,
    )
    with pytest.raises(FingerprintMismatchError, match=r"what differs .*model: .*resume=False"):
        certify_to_tsv(est_b, x[:3], y[:3], path, **options)
    # a file of an earlier version (no fingerprint line) is refused, not relabelled
    legacy = tmp_path / "legacy.tsv"
    legacy.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(FingerprintMismatchError, match="has no fingerprint"):
        certify_to_tsv(est, x[:3], y[:3], legacy, **options)
    assert (
        len(certify_to_tsv(est, x[:3], y[:3], legacy, resume=False, **options).read_text().splitlines()) == 5
    )


# ------------------------------------------------------------------------------------------------------ 3.
# nb_classes
def test_smoothing_nb_classes_must_equal_the_models_outputs(trained_tiny: nn.Module) -> None:
    from art_manifold_defenses.smoothing import RenyiSmoothingPyTorch

    for wrong in (5, 12):
        with pytest.raises(
            ValueError, match=f"nb_classes={wrong} does not match the model, which returns 10 logits"
        ):
            RenyiSmoothingPyTorch(
                trained_tiny,
                nn.CrossEntropyLoss(),
                (1, 28, 28),
                wrong,
                clip_values=(0.0, 1.0),
                device_type="cpu",
                scale=0.25,
            )
    with pytest.raises(ValueError, match="nb_classes must be"):
        RenyiSmoothingPyTorch(
            trained_tiny, nn.CrossEntropyLoss(), (1, 28, 28), True, device_type="cpu", scale=0.25
        )


def test_vote_counts_refuse_logits_wider_than_num_classes() -> None:
    from art_manifold_defenses.smoothing.sampling import vote_counts

    def classify(batch: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(batch), 10)
        logits[:, 7] = 1.0  # class 7 would land in the next image's slot 2 with num_classes=5
        return logits

    with pytest.raises(ValueError, match=r"num_classes=5 does not match the classifier.*\(batch, 5\)"):
        vote_counts(
            classify, torch.rand(2, 1, 4, 4), (3,), sigma=0.1, num_classes=5, batch_size=4, seeds=[0, 1]
        )


def test_estimator_with_preprocessing_checks_nb_classes_on_use(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...]
) -> None:
    from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

    from art_manifold_defenses.smoothing import RenyiSmoothingPyTorch

    class Identity(PreprocessorPyTorch):
        def __init__(self) -> None:
            super().__init__(device_type="cpu", apply_fit=True, apply_predict=True)

        def forward(self, x: torch.Tensor, y: object = None) -> tuple[torch.Tensor, object]:
            return x, y

    est = RenyiSmoothingPyTorch(
        trained_tiny,
        nn.CrossEntropyLoss(),
        (1, 28, 28),
        5,
        clip_values=(0.0, 1.0),
        device_type="cpu",
        scale=0.25,
        preprocessing_defences=[Identity()],
    )
    with pytest.raises(ValueError, match="nb_classes=5 does not match the model"):
        est.certify(mnist_small[2][:2], n=10, n0=2, bound="cohen")


# ------------------------------------------------------------------------------------------------------ 4.
# train resume
def _train_cli(
    capsys: pytest.CaptureFixture[str], out: Path, data_root: str, *extra: object
) -> tuple[int, str, str]:
    return amd(
        capsys,
        "train",
        "--model",
        "wong_small",
        "--data-root",
        data_root,
        "--train-limit",
        "128",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--out",
        out,
        "--quiet",
        *extra,
    )


@pytest.mark.filterwarnings(
    "ignore::art_manifold_defenses.training.TrainingCollapseWarning"
)  # 128 images, 1 epoch
def test_train_refuses_another_runs_state_and_overwrite_starts_afresh(
    tmp_path: Path, data_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _train_cli(capsys, out, data_root)[0] == 0
    assert (out / "train_state" / "train_state.pt").is_file()
    assert_cli_error(
        _train_cli(capsys, out, data_root, "--lr", "0.01"), "train", "lr: 0.001 -> 0.01", "--overwrite"
    )
    assert_cli_error(
        _train_cli(capsys, out, data_root, "--seed", "3", "--epochs", "2"),
        "train",
        "epochs: 1 -> 2",
        "seed: 0 -> 3",
    )
    assert json.loads((out / "model.json").read_text())["extra"]["lr"] == 0.001  # the old run is untouched
    assert _train_cli(capsys, out, data_root)[0] == 0  # the same run resumes
    assert _train_cli(capsys, out, data_root, "--lr", "0.01", "--overwrite")[0] == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["extra"]["lr"] == 0.01 and meta["extra"]["fingerprint"]["lr"] == 0.01


@pytest.mark.filterwarnings("ignore::art_manifold_defenses.training.TrainingCollapseWarning")
def test_train_refuses_state_without_fingerprint_and_unreadable_or_pickled_state(
    tmp_path: Path, data_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = tmp_path / "legacy"
    (legacy / "train_state").mkdir(parents=True)
    torch.save(
        {"epoch": 1}, legacy / "train_state" / "train_state.pt"
    )  # an earlier version's state: no fingerprint
    assert_cli_error(_train_cli(capsys, legacy, data_root), "train", "has no fingerprint", "--overwrite")

    out = tmp_path / "run"
    assert _train_cli(capsys, out, data_root)[0] == 0
    state = out / "train_state" / "train_state.pt"
    state.write_bytes(state.read_bytes()[:100])  # cut by a crash
    assert_cli_error(_train_cli(capsys, out, data_root), "train", str(state), "not a readable training state")

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("this would run on load",))

    torch.save({"epoch": Payload()}, state)
    code, out_text, err = _train_cli(capsys, out, data_root)
    assert "this would run on load" not in out_text + err
    assert_cli_error((code, out_text, err), "train", str(state), "refusing")


# ------------------------------------------------------------------------------------------------------ 6.
# checkpoints
def _saved(tmp_path: Path, model: nn.Module | None = None) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(
        model or build_model("wong_small"), tmp_path / "ck" / "model.pt", architecture=dict(ARCH)
    )


def test_sidecar_activation_must_match_the_saved_network(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["activations"] == {"ReLU": 3}
    meta["architecture"]["activation"] = "elu"
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"activations \{'ReLU': 3\}.*\{'ELU': 3\}.*does not belong"):
        load_checkpoint(path)


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    model = build_model("wong_small")
    with torch.no_grad():
        next(model.parameters())[0, 0, 0, 0] = float("nan")
    path = _saved(tmp_path, model)
    with pytest.raises(CheckpointError, match=r"model.pt holds non-finite weights \(NaN or Inf\) in "):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("empty", "is not a readable torch checkpoint"),
        ("truncated", "is not a readable torch checkpoint"),
        ("text", "holds more than tensors"),
    ],
)
def test_unreadable_weights_are_one_error_naming_the_file(tmp_path: Path, damage: str, match: str) -> None:
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "text": b"not a checkpoint"}[damage])
    with pytest.raises(CheckpointError, match=f"{path} {match}"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("sidecar", "match"),
    [
        ("{not json", "model.json is not readable JSON"),
        ('{"architecture": {"name": 3}}', "must name its zoo model"),
        ('{"architecture": {"name": "wong_small"}, "defence": "stn"}', "'defence' must be null or"),
        (
            '{"architecture": {"name": "wong_small", "num_classes": "ten"}}',
            "cannot rebuild the model that .*model.json",
        ),
    ],
)
def test_malformed_sidecars_name_the_file(tmp_path: Path, sidecar: str, match: str) -> None:
    path = _saved(tmp_path)
    path.with_suffix(".json").write_text(sidecar)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


# ------------------------------------------------------------------------------------------------------ 7/9.
# validators
def test_unfitted_filter_bank_refuses_to_run() -> None:
    from art_manifold_defenses.rbf_reconstruction.filter_bank import RBFFilterBank

    bank = RBFFilterBank(num_filters=3)
    with pytest.raises(ValueError, match="RBF filter bank is not fitted"):
        bank(torch.rand(1, 1, 8, 8))
    fitted = RBFFilterBank(torch.rand(3, 9), torch.ones(3))
    bank.load_state_dict(fitted.state_dict())
    assert bank(torch.rand(1, 1, 8, 8)).shape == (1, 3, 6, 6)


def test_labels_must_be_integer_classes_of_the_model(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...]
) -> None:
    from art_manifold_defenses.evaluation import AttackSpec, evaluate

    _, _, x, y = mnist_small
    spec = [AttackSpec("art", "fgsm", "linf", 0.1)]
    with pytest.raises(TypeError, match="y must hold integer class indices"):
        evaluate(
            trained_tiny, x[:4], np.array([True, False, True, False]), spec, verbose=False, run_audit=False
        )
    with pytest.raises(ValueError, match=r"y must lie in \[0, 9\]"):
        evaluate(trained_tiny, x[:4], np.array([0, 1, 10, 3]), spec, verbose=False, run_audit=False)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (lambda x: x.transpose(0, 2, 3, 1), ValueError, "channels-last"),
        (lambda x: np.repeat(x, 3, axis=1), ValueError, "x must have 1 channel"),
        (lambda x: x * 255.0, ValueError, r"x must lie in \[0.0, 1.0\]"),
        (
            lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x),
            ValueError,
            "x contains NaN",
        ),
        (lambda x: x > 0.5, TypeError, "x must be a real numeric array"),
    ],
)
def test_bad_images_name_the_argument(
    trained_tiny: nn.Module, mnist_small: tuple[np.ndarray, ...], images, error, match
) -> None:  # noqa: ANN001
    from art_manifold_defenses.evaluation import AttackSpec, evaluate
    from art_manifold_defenses.smoothing import RenyiSmoothingPyTorch

    _, _, x, y = mnist_small
    bad = images(x[:4])
    with pytest.raises(error, match=match):
        evaluate(
            trained_tiny, bad, y[:4], [AttackSpec("art", "fgsm", "linf", 0.1)], verbose=False, run_audit=False
        )
    est = RenyiSmoothingPyTorch(
        trained_tiny,
        nn.CrossEntropyLoss(),
        (1, 28, 28),
        10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
        scale=0.25,
    )
    with pytest.raises(error, match=match.replace("1 channel", "per-image shape")):
        est.certify(bad, n=10, n0=2)


def test_module_forwards_refuse_nan_and_unscaled_images(trained_tiny: nn.Module) -> None:
    from art_manifold_defenses.radial_mapping.block import RadialBasisMapping
    from art_manifold_defenses.smoothing import SmoothedClassifier

    smoothed = SmoothedClassifier(trained_tiny, 0.25)
    with pytest.raises(ValueError, match=r"x must lie in \[0.0, 1.0\]"):
        smoothed(torch.rand(2, 1, 28, 28) * 255)
    nan = torch.rand(2, 1, 28, 28)
    nan[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        smoothed.predict_vote(nan, n=3)
    block = RadialBasisMapping(4)
    features = torch.randn(2, 4, 5, 5)
    features[1, 2, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        block(features)


def test_negative_or_fractional_vote_counts_are_refused() -> None:
    from art_manifold_defenses.smoothing.certification import certify_batch, certify_from_counts
    from art_manifold_defenses.smoothing.confidence import top_two_bounds

    with pytest.raises(ValueError, match="counts must be non-negative integer vote counts"):
        certify_from_counts([3, 0, 0], [40, -3, 10], sigma=0.5, alpha=0.05)
    with pytest.raises(ValueError, match="selection_counts must be non-negative"):
        certify_batch(np.array([[3, -1]]), np.array([[40, 2]]), sigma=0.5, alpha=0.05)
    with pytest.raises(ValueError, match="counts must be non-negative"):
        top_two_bounds([40.5, 2.0], 0.05)


# ------------------------------------------------------------------------------------------------------ 8.
# CLI errors
@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["certify", "--checkpoint", "m.pt", "--out", "o", "--radii", "0.5,abc"], "argument --radii"),
        (["certify", "--checkpoint", "m.pt", "--out", "o", "--samples", "0"], "argument --samples"),
        (["certify", "--checkpoint", "m.pt", "--out", "o", "--alpha", "1.5"], "argument --alpha"),
        (["train", "--out", "o", "--train-limit", "0"], "argument --train-limit"),
        (["train", "--out", "o", "--train-limit", "-5"], "argument --train-limit"),
        (["train", "--out", "o", "--epochs", "two"], "argument --epochs"),
        (["evaluate", "--checkpoint", "m.pt", "--out", "o", "--n", "0"], "argument --n"),
        (["evaluate", "--checkpoint", "m.pt", "--out", "o", "--eps", "nan"], "argument --eps"),
        (["verify", "--checkpoint", "m.pt", "--out", "o", "--eps", "-0.1"], "argument --eps"),
        (
            ["verify", "--checkpoint", "m.pt", "--out", "o", "--eps", "0.1", "--start", "-1"],
            "argument --start",
        ),
    ],
)
def test_bad_flag_values_are_refused_when_parsed(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_cli_error(amd(capsys, *argv), argv[0], flag)


def test_n_beyond_the_data_set_is_an_error(
    checkpoints: dict[str, Path], tmp_path: Path, data_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_cli_error(
        _run(capsys, "certify", checkpoints["a"], tmp_path / "c", data_root, "--n", "5000"),
        "certify",
        "--n 5000",
    )
    assert_cli_error(
        _run(capsys, "verify", checkpoints["a"], tmp_path / "v", data_root, "--n", "5000"),
        "verify",
        "--n 5000",
    )
    assert_cli_error(
        amd(
            capsys,
            "evaluate",
            "--checkpoint",
            checkpoints["a"],
            "--data-root",
            data_root,
            "--n",
            "5000",
            "--out",
            tmp_path / "e",
        ),
        "evaluate",
        "--n 5000",
    )
    assert_cli_error(
        _train_cli(capsys, tmp_path / "t", data_root, "--train-limit", "90000"),
        "train",
        "--train-limit 90000",
    )


def test_damaged_checkpoints_and_bad_outputs_are_one_error_line(
    checkpoints: dict[str, Path], tmp_path: Path, data_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def evaluate(checkpoint: Path, out: Path) -> tuple[int, str, str]:
        return amd(
            capsys,
            "evaluate",
            "--checkpoint",
            checkpoint,
            "--data-root",
            data_root,
            "--n",
            "4",
            "--out",
            out,
            "--quiet",
        )

    empty = _copy_checkpoint(checkpoints["a"], tmp_path / "empty")
    empty.write_bytes(b"")
    assert_cli_error(
        evaluate(empty, tmp_path / "o1"), "evaluate", str(empty), "not a readable torch checkpoint"
    )
    bad_json = _copy_checkpoint(checkpoints["a"], tmp_path / "json")
    bad_json.with_suffix(".json").write_text("{")
    assert_cli_error(evaluate(bad_json, tmp_path / "o2"), "evaluate", str(bad_json.with_suffix(".json")))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_cli_error(evaluate(checkpoints["a"], blocker / "out"), "evaluate", "--out", str(blocker / "out"))
    for command in ("certify", "verify"):
        assert_cli_error(
            _run(capsys, command, checkpoints["a"], blocker / "out", data_root),
            command,
            "--out",
            "cannot be used as an output folder",
        )
        assert_cli_error(
            _run(capsys, command, checkpoints["a"], blocker, data_root), command, f"--out {blocker} "
        )
    assert_cli_error(_train_cli(capsys, blocker / "out", data_root), "train", "--out")
    torch.manual_seed(0)
    colour = save_checkpoint(
        build_model("wong_small", in_channels=3, input_size=32),
        tmp_path / "rgb" / "model.pt",
        architecture={**ARCH, "in_channels": 3, "input_size": 32},
    )
    assert_cli_error(
        evaluate(colour, tmp_path / "o3"), "evaluate", str(colour), "3-channel 32x32", "'mnist-embedded'"
    )
    assert_cli_error(
        _run(capsys, "certify", colour, tmp_path / "o4", data_root), "certify", "3-channel 32x32"
    )


def test_unexpected_exceptions_keep_their_traceback_and_say_it_is_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise RuntimeError("an internal failure")

    monkeypatch.setitem(cli.COMMANDS, "info", broken)
    code, _, err = amd(capsys, "info")
    assert (
        code == 1
        and "Traceback" in err
        and "RuntimeError: an internal failure" in err
        and "this is a bug" in err
    )


# ------------------------------------------------------------------------------------------------------
# train() / predict
def test_predict_logits_and_train_refuse_nan_unscaled_or_channels_last_images(
    mnist_small: tuple[np.ndarray, ...],
) -> None:
    from art_manifold_defenses.training import predict_logits

    x, y = mnist_small[0][:8], mnist_small[1][:8]
    model = build_model("wong_small")
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan
    for bad, match in (
        (nan, "x contains NaN"),
        (x * 255, r"x must lie in \[0.0, 1.0\]"),
        (x.transpose(0, 2, 3, 1), "channels-last"),
    ):
        with pytest.raises(ValueError, match=match):
            predict_logits(model, bad)
        with pytest.raises(ValueError, match=match):
            train(model, bad, y, epochs=1, verbose=False)


def test_train_checks_labels_against_the_models_outputs(mnist_small: tuple[np.ndarray, ...]) -> None:
    x, y = mnist_small[0][:8], mnist_small[1][:8].copy()
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 5))  # 5 classes
    with pytest.raises(ValueError, match=r"y must lie in \[0, 4\]"):
        train(model, x, y, epochs=1, verbose=False)
    with pytest.raises(TypeError, match="y must hold integer class indices"):
        train(model, x, y > 4, epochs=1, verbose=False)


def test_train_state_of_another_run_is_refused_and_resume_false_starts_afresh(
    tmp_path: Path, mnist_small: tuple[np.ndarray, ...]
) -> None:
    x, y = mnist_small[0][:64], mnist_small[1][:64]

    def run(lr: float, **kwargs: object) -> list[dict[str, float]]:
        torch.manual_seed(0)
        model = build_model("wong_small")
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        return train(
            model,
            x,
            y,
            epochs=1,
            batch_size=32,
            optimizer=optimizer,
            checkpoint_dir=tmp_path,
            verbose=False,
            collapse_check=False,
            **kwargs,
        )  # type: ignore[arg-type]

    run(1e-3)
    with pytest.raises(
        FingerprintMismatchError,
        match=r"train_state.pt holds the results of another run.*optimizer.lr: 0.001 -> 0.01",
    ):
        run(1e-2)
    with pytest.raises(FingerprintMismatchError, match=r"seed: 0 -> 4"):
        run(1e-3, seed=4)
    assert len(run(1e-2, resume=False)) == 1
    state = tmp_path / "train_state.pt"
    legacy = torch.load(state, weights_only=True)
    del legacy["fingerprint"]  # as written by an earlier version
    torch.save(legacy, state)
    with pytest.raises(FingerprintMismatchError, match="has no fingerprint"):
        run(1e-2)
    state.write_bytes(b"")
    with pytest.raises(ValueError, match=f"{state} is not a readable training state"):
        run(1e-2)


def test_verify_names_a_channels_last_batch_and_an_input_shape_the_model_rejects(
    checkpoints: dict[str, Path], mnist_small: tuple[np.ndarray, ...]
) -> None:
    from art_manifold_defenses.verification import Verifier, verify

    model, _ = load_checkpoint(checkpoints["a"])
    x, y = mnist_small[2][:2], mnist_small[3][:2]
    with pytest.raises(ValueError, match="channels-last"):
        verify(model, x.transpose(0, 2, 3, 1), y, eps=0.01, time_limit=2, verbose=False)
    with pytest.raises(ValueError, match=r"input_shape=\(3, 28, 28\) does not fit the model"):
        Verifier(model, input_shape=(3, 28, 28), eps=0.01)


def test_to_art_classifier_checks_nb_classes_without_touching_the_random_streams(
    trained_tiny: nn.Module,
) -> None:
    from art_manifold_defenses import to_art_classifier
    from art_manifold_defenses.smoothing import SmoothedClassifier

    with pytest.raises(ValueError, match="nb_classes=5 does not match the model, which returns 10 logits"):
        to_art_classifier(trained_tiny, input_shape=(1, 28, 28), nb_classes=5)
    with pytest.raises(ValueError, match=r"input_shape must have 1 channel\(s\) in NCHW layout"):
        to_art_classifier(trained_tiny, input_shape=(3, 28, 28), nb_classes=10)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    to_art_classifier(
        SmoothedClassifier(trained_tiny, 0.5), input_shape=(1, 28, 28), nb_classes=10
    )  # draws noise
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("command", ["train", "evaluate", "certify", "verify", "demo", "reproduce"])
def test_device_flag_is_checked_when_parsed(capsys: pytest.CaptureFixture[str], command: str) -> None:
    """``--device`` is validated by argparse on every command and the error names the flag (it said
    ``device=`` before)."""
    line = assert_cli_error(amd(capsys, command, "--device", "gpu"), command, "--device", "'gpu'")
    assert "cuda:N" in line
    if not torch.cuda.is_available():
        assert_cli_error(
            amd(capsys, command, "--device", "cuda"), command, "--device", "CUDA is not available"
        )


def test_defence_spelling_is_accepted_as_well_as_defense() -> None:
    """The docs write --defence; the flag was only --defense."""
    parser = cli._build_parser()
    args = parser.parse_args(["train", "--defence", "stn", "--out", "x"])
    assert args.defense == "stn"
    assert parser.parse_args(["train", "--defense", "fpd", "--out", "x"]).defense == "fpd"
