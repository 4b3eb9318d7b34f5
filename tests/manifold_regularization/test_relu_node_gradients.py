"""The Hamming gradient added inside the ReLUs' backward (``outputs_in_loss=True``) equals the general
path's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from art_manifold_defenses.manifold_regularization import _fused
from art_manifold_defenses.manifold_regularization.manifold_regularizer import ManifoldRegularizer


class _Net(nn.Module):
    """conv -> ReLU -> conv -> ReLU -> linear, optionally with in-place ReLUs and a ReLU branch that never
    reaches the output (its Hamming term must still get its gradient, through the general path)."""

    def __init__(self, *, inplace: bool = False, dead_branch: bool = False) -> None:
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(1, 4, 3), nn.ReLU(inplace=inplace)
        self.conv2, self.relu2 = nn.Conv2d(4, 4, 3), nn.ReLU(inplace=inplace)
        self.side, self.side_relu = nn.Conv2d(4, 2, 1), nn.ReLU()
        self.head = nn.Linear(4 * 4 * 4, 3)
        self.dead_branch = dead_branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu1(self.conv1(x))
        if self.dead_branch:
            self.side_relu(self.side(h))  # recorded, but f(x) does not depend on it
        return self.head(self.relu2(self.conv2(h)).flatten(1))


def _gradients(
    model: nn.Module, *, fast: bool, intrinsic: str | None = "sparse", backward_twice: bool = False
):
    torch.manual_seed(3)
    x = torch.rand(5, 1, 8, 8)
    rho = (torch.rand_like(x) * 2 - 1) * 0.3
    model.zero_grad(set_to_none=True)
    regularizer = ManifoldRegularizer(eps=0.3, batching="separate", intrinsic=intrinsic)
    out = regularizer(model, x, perturbation=rho, outputs_in_loss=fast)
    loss = nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 0, 1])) + 0.7 * out.hamming
    if intrinsic is not None:
        loss = (
            loss + 0.0 * out.intrinsic
        )  # weight 0: f(x+), f(x-) stay in the graph, as in the trainer's warm-up
    loss.backward(retain_graph=backward_twice)
    if backward_twice:
        loss.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("backward_twice", [False, True])
def test_relu_node_path_gives_the_general_paths_gradient_and_is_taken(monkeypatch, inplace, backward_twice):
    torch.manual_seed(0)
    model = _Net(inplace=inplace)
    calls = []
    apply = _fused._HammingThroughReLUNodes.apply
    monkeypatch.setattr(_fused._HammingThroughReLUNodes, "apply", lambda *a: calls.append(1) or apply(*a))
    fast = _gradients(model, fast=True, backward_twice=backward_twice)
    assert len(calls) == 2  # both ReLU layers took the fast path
    general = _gradients(model, fast=False, backward_twice=backward_twice)
    assert len(calls) == 2  # outputs_in_loss=False never takes it
    for a, b in zip(fast, general, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert any(float(g.abs().max()) > 0 for g in fast)


def test_a_relu_outside_the_output_graph_takes_the_general_path(monkeypatch):
    torch.manual_seed(0)
    model = _Net(dead_branch=True)
    calls = []
    apply = _fused._HammingThroughReLUNodes.apply
    monkeypatch.setattr(_fused._HammingThroughReLUNodes, "apply", lambda *a: calls.append(1) or apply(*a))
    fast = _gradients(model, fast=True)
    assert len(calls) == 2  # relu1 and relu2; side_relu does not reach f and goes the general way
    general = _gradients(model, fast=False)
    for a, b in zip(fast, general, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert (
        float(model.side.weight.grad.abs().max()) > 0
    )  # the dead branch's Hamming term still has its gradient


def test_the_trainer_step_promises_outputs_in_loss_only_with_the_intrinsic_term(monkeypatch):
    seen = []
    original = ManifoldRegularizer.__call__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("outputs_in_loss", False))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ManifoldRegularizer, "__call__", spy)
    from art_manifold_defenses.manifold_regularization.schedules import constant_schedule
    from art_manifold_defenses.manifold_regularization.trainer import manifold_regularization_step
    from art_manifold_defenses.training import train

    x, y = torch.rand(8, 1, 8, 8).numpy(), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]).numpy()
    for intrinsic, expected in (("sparse", True), (None, False)):
        seen.clear()
        torch.manual_seed(0)
        model = _Net()
        regularizer = ManifoldRegularizer(eps=0.1, batching="separate", intrinsic=intrinsic)
        schedule = constant_schedule(epsilon=0.1, gamma_intrinsic=0.1, gamma_hamming=0.1)
        train(
            model,
            x,
            y,
            epochs=1,
            batch_size=8,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
            step_fn=manifold_regularization_step(regularizer, schedule),
            verbose=False,
            collapse_check=False,
        )
        assert seen == [expected]
