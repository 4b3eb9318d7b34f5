"""The shared training loop: loss decreases, exact resume, schedulers, custom steps, bad input, collapse
warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import art_manifold_defenses
from art_manifold_defenses.training import (
    COLLAPSE_CHECK_IMAGES,
    TrainContext,
    TrainingCollapseWarning,
    _check_collapse,
    collapse_statistics,
    evaluate_accuracy,
    train,
)


def _net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))


def test_loss_decreases(mnist_small: tuple[np.ndarray, ...]) -> None:
    x, y, xt, yt = mnist_small
    torch.manual_seed(0)
    model = _net()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train(model, x, y, epochs=3, batch_size=50, verbose=False, validation_data=(xt, yt))
    assert history[-1]["loss"] < history[0]["loss"] * 0.8
    assert history[-1]["val_accuracy"] > 0.7
    assert len(history) == 3 and all("seconds" in h for h in history)
    # a healthy run: the collapse check records its numbers and stays silent
    assert not [w for w in caught if issubclass(w.category, TrainingCollapseWarning)]
    assert history[-1]["predicted_classes"] == 10.0 and history[-1]["train_subset_accuracy"] > 0.7


def test_interrupted_training_resumes_to_the_same_result(
    mnist_small: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    x, y, _, _ = mnist_small
    x, y = x[:400], y[:400]

    def make() -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
        torch.manual_seed(3)
        model = _net()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    model_a, opt_a, sched_a = make()
    full = train(
        model_a, x, y, epochs=3, batch_size=64, optimizer=opt_a, scheduler=sched_a, seed=11, verbose=False
    )

    model_b, opt_b, sched_b = make()
    train(
        model_b,
        x,
        y,
        epochs=1,
        batch_size=64,
        optimizer=opt_b,
        scheduler=sched_b,
        seed=11,
        verbose=False,
        checkpoint_dir=tmp_path,
    )  # "interrupted" after one epoch
    model_c, opt_c, sched_c = make()  # a fresh process: new objects, state comes from disk
    resumed = train(
        model_c,
        x,
        y,
        epochs=3,
        batch_size=64,
        optimizer=opt_c,
        scheduler=sched_c,
        seed=11,
        verbose=False,
        checkpoint_dir=tmp_path,
    )
    assert [h["epoch"] for h in resumed] == [1.0, 2.0, 3.0]
    for key in ("loss", "lr"):
        np.testing.assert_allclose([h[key] for h in resumed], [h[key] for h in full], rtol=1e-5)
    for (name, pa), pc in zip(model_a.state_dict().items(), model_c.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pc, msg=f"parameter {name} differs after resume")


def test_custom_step_function_and_batch_scheduler(mnist_small: tuple[np.ndarray, ...]) -> None:
    x, y, _, _ = mnist_small
    seen: list[float] = []

    class CountingScheduler:
        def __init__(self) -> None:
            self.calls = 0

        def step(self) -> None:
            self.calls += 1

    def step(ctx: TrainContext, xb: torch.Tensor, yb: torch.Tensor) -> dict[str, float]:
        seen.append(ctx.progress)
        loss = nn.functional.cross_entropy(ctx.model(xb), yb)
        ctx.backward_and_step(loss)
        return {"loss": float(loss.detach()), "custom": 1.0}

    sched = CountingScheduler()
    history = train(
        _net(),
        x[:200],
        y[:200],
        epochs=2,
        batch_size=100,
        step_fn=step,
        scheduler=sched,
        scheduler_interval="batch",
        verbose=False,
    )
    assert sched.calls == 4
    assert seen == [0.0, 0.5, 1.0, 1.5]
    assert history[0]["custom"] == 1.0


def test_a_value_logged_by_some_batches_is_averaged_over_those_batches(
    mnist_small: tuple[np.ndarray, ...],
) -> None:
    x, y, _, _ = mnist_small

    def step(ctx: TrainContext, xb: torch.Tensor, yb: torch.Tensor) -> dict[str, float]:
        loss = nn.functional.cross_entropy(ctx.model(xb), yb)
        ctx.backward_and_step(loss)
        logs = {"loss": float(loss.detach()), "batch": float(ctx.batch_index)}
        if ctx.batch_index % 2 == 1:
            logs["odd_only"] = (
                10.0 * ctx.batch_index
            )  # e.g. a value only the second phase of a trainer produces
        return logs

    history = train(_net(), x[:400], y[:400], epochs=1, batch_size=100, step_fn=step, verbose=False)
    assert history[0]["batch"] == pytest.approx(1.5)  # (0 + 1 + 2 + 3) / 4
    assert history[0]["odd_only"] == pytest.approx(20.0)  # (10 + 30) / 2, not / 4


def test_training_bad_input(mnist_small: tuple[np.ndarray, ...]) -> None:
    x, y, _, _ = mnist_small
    model = _net()
    with pytest.raises(ValueError, match="x contains NaN"):
        bad = x[:10].copy()
        bad[0, 0, 0, 0] = np.nan
        train(model, bad, y[:10], epochs=1, verbose=False)
    with pytest.raises(ValueError, match="dimensions"):
        train(model, x[:10, 0], y[:10], epochs=1, verbose=False)
    with pytest.raises(ValueError, match="labels for"):
        train(model, x[:10], y[:9], epochs=1, verbose=False)
    with pytest.raises(ValueError, match="y must lie in"):
        labels = y[:10].copy()
        labels[0] = -1
        train(model, x[:10], labels, epochs=1, verbose=False)
    with pytest.raises(ValueError, match="empty batch"):
        train(model, x[:0], y[:0], epochs=1, verbose=False)
    with pytest.raises(TypeError, match="step"):
        train(model, x[:10], y[:10], epochs=1, scheduler=object(), verbose=False)


def test_evaluate_accuracy_of_a_perfect_and_a_constant_model() -> None:
    x = torch.rand(20, 1, 4, 4)
    y = np.arange(20) % 2

    class Oracle(nn.Module):
        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(torch.as_tensor(y[: len(inp)]), 2).float()

    assert evaluate_accuracy(Oracle(), x, y) == 1.0


class _Constant(nn.Module):
    """A network forced to predict one class: its input is ignored (weights zero), its bias picks
    ``label``."""

    def __init__(self, label: int, num_classes: int = 10) -> None:
        super().__init__()
        self.linear = nn.Linear(784, num_classes)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()
            self.linear.bias[label] = 5.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def _collapse_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, TrainingCollapseWarning)]


def test_a_collapsed_network_warns_with_the_numbers(mnist_small: tuple[np.ndarray, ...]) -> None:
    x, y, _, _ = mnist_small  # 1,000 images: the check predicts a seeded subset of 512
    model = _Constant(label=3)
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    with pytest.warns(TrainingCollapseWarning) as caught:
        history = train(model, x, y, epochs=2, batch_size=100, optimizer=frozen, verbose=False, seed=5)
    messages = _collapse_warnings(list(caught))
    assert len(messages) == 2 and "epoch 1/2" in messages[0] and "epoch 2/2" in messages[1]
    record = history[-1]
    assert record["predicted_classes"] == 1.0
    subset = np.sort(
        np.random.default_rng(art_manifold_defenses.training._epoch_seed(5, -1)).choice(
            len(x), COLLAPSE_CHECK_IMAGES, replace=False
        )
    )
    share_of_threes = float((y[subset] == 3).mean())
    assert record["train_subset_accuracy"] == pytest.approx(share_of_threes)
    assert f"accuracy {share_of_threes:.1%} on 512 training images" in messages[1]
    assert "class 3 takes 100.0% of the predictions" in messages[1] and "1 distinct classes" in messages[1]
    assert "chance 10.0%" in messages[1]
    assert issubclass(art_manifold_defenses.TrainingCollapseWarning, UserWarning)


def test_collapse_check_runs_after_on_epoch_end_and_can_be_switched_off(
    mnist_small: tuple[np.ndarray, ...],
) -> None:
    x, y, _, _ = mnist_small
    x, y = x[:200], y[:200]

    def break_the_model(
        ctx: TrainContext, record: dict[str, float]
    ) -> None:  # e.g. a re-calibration gone wrong
        with torch.no_grad():
            for module in ctx.model.modules():
                if isinstance(module, nn.Linear):
                    module.weight.zero_()
                    module.bias.zero_()
            ctx.model[-1].bias[7] = 1.0

    torch.manual_seed(0)
    with pytest.warns(TrainingCollapseWarning, match="class 7 takes 100.0%"):
        history = train(_net(), x, y, epochs=1, batch_size=50, verbose=False, on_epoch_end=break_the_model)
    assert history[0]["predicted_classes"] == 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train(
            _Constant(label=1), x, y, epochs=1, batch_size=50, verbose=False, collapse_check=False
        )
    assert not _collapse_warnings(caught)
    assert "train_subset_accuracy" not in history[0] and "predicted_classes" not in history[0]
    with pytest.raises(TypeError, match="collapse_check"):
        train(_net(), x, y, epochs=1, verbose=False, collapse_check="yes")  # type: ignore[arg-type]


def test_only_the_warning_rank_warns() -> None:
    """Under torch.distributed ``train`` passes ``warn=rank == 0``: the other ranks record the numbers
    silently."""
    x = np.random.default_rng(0).random((20, 1, 28, 28), dtype=np.float32)
    y = np.arange(20) % 10
    for warn in (False, True):
        record: dict[str, float] = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _check_collapse(
                _Constant(label=0), x, y, record, epoch=0, epochs=1, device=torch.device("cpu"), warn=warn
            )
        assert record == {"train_subset_accuracy": 0.1, "predicted_classes": 1.0}
        assert len(_collapse_warnings(caught)) == int(warn)


def test_collapse_statistics_by_hand() -> None:
    # 4 predictions, all class 3; labels 3, 1, 2, 0: accuracy 1/4 (above the 15% chance threshold for 10
    # classes) but one class takes 100% of the predictions
    stats = collapse_statistics([3, 3, 3, 3], [3, 1, 2, 0], 10)
    assert (
        stats["accuracy"],
        stats["predicted_classes"],
        stats["dominant_class"],
        stats["dominant_share"],
    ) == (0.25, 1, 3, 1.0)
    assert stats["one_class"] and not stats["at_chance"] and stats["collapsed"]
    # varied predictions, 1 of 10 right: at chance (<= min(1.5 / 10, 1 / 10 + 0.1) = 15%)
    stats = collapse_statistics(np.arange(10), [1, 2, 3, 4, 4, 6, 7, 8, 9, 0], 10)  # only the fifth is right
    assert (
        stats["accuracy"] == 0.1
        and stats["predicted_classes"] == 10
        and stats["at_chance"]
        and not stats["one_class"]
    )
    assert stats["chance_threshold"] == pytest.approx(0.15)
    # labels that are themselves one class: predicting it is no collapse
    assert not collapse_statistics([2] * 10, [2] * 10, 10)["collapsed"]
    # two classes: chance threshold min(0.75, 0.6) = 0.6
    assert collapse_statistics([0, 1, 0, 1, 0], [0, 1, 1, 0, 0], 2)["chance_threshold"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="same length"):
        collapse_statistics([1, 2], [1], 10)
    with pytest.raises(ValueError, match="num_classes"):
        collapse_statistics([1], [1], 1)


def test_time_estimate_after_the_first_batches(
    mnist_small: tuple[np.ndarray, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22 item 2: after a warm-up batch and ``ESTIMATE_AFTER_BATCHES`` timed batches the loop prints the
    epoch and total time they imply (the clock is replaced: every reading is 10 s after the previous one, so
    batches 2 to 6 take 10 s, 2 s each, and 10 batches x 2 epochs come to 40 s); quiet runs print nothing."""
    from itertools import count

    from art_manifold_defenses import costs
    from art_manifold_defenses.training import ESTIMATE_AFTER_BATCHES, train

    assert ESTIMATE_AFTER_BATCHES == 5
    ticks = count(0.0, 10.0)
    monkeypatch.setattr(costs, "clock", lambda: next(ticks))
    x, y = mnist_small[0][:640], mnist_small[1][:640]
    train(_tiny(), x, y, epochs=2, batch_size=64, verbose=True, seed=0, collapse_check=False)
    printed = capsys.readouterr()
    assert (
        "estimate: 2 epochs of 10 batches: about 40 s on this machine (batches 2 to 6 took 2 s each: 20 s "
        "per "
        "epoch"
    ) in printed.out + printed.err
    train(_tiny(), x, y, epochs=1, batch_size=64, verbose=False, seed=0, collapse_check=False)
    printed = capsys.readouterr()
    assert "estimate:" not in printed.out + printed.err


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
