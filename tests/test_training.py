"""The shared training loop: loss decreases, exact resume, schedulers, custom steps, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.training import TrainContext, evaluate_accuracy, train


def _net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))


def test_loss_decreases(mnist_small: tuple[np.ndarray, ...]) -> None:
    x, y, xt, yt = mnist_small
    torch.manual_seed(0)
    model = _net()
    history = train(model, x, y, epochs=3, batch_size=50, verbose=False, validation_data=(xt, yt))
    assert history[-1]["loss"] < history[0]["loss"] * 0.8
    assert history[-1]["val_accuracy"] > 0.7
    assert len(history) == 3 and all("seconds" in h for h in history)


def test_interrupted_training_resumes_to_the_same_result(mnist_small: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    x, y, _, _ = mnist_small
    x, y = x[:400], y[:400]

    def make() -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
        torch.manual_seed(3)
        model = _net()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    model_a, opt_a, sched_a = make()
    full = train(model_a, x, y, epochs=3, batch_size=64, optimizer=opt_a, scheduler=sched_a, seed=11, verbose=False)

    model_b, opt_b, sched_b = make()
    train(model_b, x, y, epochs=1, batch_size=64, optimizer=opt_b, scheduler=sched_b, seed=11, verbose=False,
          checkpoint_dir=tmp_path)  # "interrupted" after one epoch
    model_c, opt_c, sched_c = make()  # a fresh process: new objects, state comes from disk
    resumed = train(model_c, x, y, epochs=3, batch_size=64, optimizer=opt_c, scheduler=sched_c, seed=11, verbose=False,
                    checkpoint_dir=tmp_path)
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
    history = train(_net(), x[:200], y[:200], epochs=2, batch_size=100, step_fn=step, scheduler=sched,
                    scheduler_interval="batch", verbose=False)
    assert sched.calls == 4
    assert seen == [0.0, 0.5, 1.0, 1.5]
    assert history[0]["custom"] == 1.0


def test_a_value_logged_by_some_batches_is_averaged_over_those_batches(mnist_small: tuple[np.ndarray, ...]) -> None:
    x, y, _, _ = mnist_small

    def step(ctx: TrainContext, xb: torch.Tensor, yb: torch.Tensor) -> dict[str, float]:
        loss = nn.functional.cross_entropy(ctx.model(xb), yb)
        ctx.backward_and_step(loss)
        logs = {"loss": float(loss.detach()), "batch": float(ctx.batch_index)}
        if ctx.batch_index % 2 == 1:
            logs["odd_only"] = 10.0 * ctx.batch_index  # e.g. a value only the second phase of a trainer produces
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
