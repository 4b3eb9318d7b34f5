"""The shared l-inf PGD loop (art_manifold_defenses.pgd)."""

from __future__ import annotations

import torch
from torch import nn

from art_manifold_defenses.pgd import linf_ball, linf_pgd


def test_pgd_ascends_the_loss_and_stays_in_the_ball_and_the_box() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(6, 1, 4, 4)
    x[0] = 0.0  # on the box's edge: the ball is cut by clip_values
    y = torch.randint(0, 3, (6,))
    adv = linf_pgd(model, x, y, eps=0.1, step_size=0.03, steps=10)
    low, high = linf_ball(x, 0.1)
    assert bool(((adv >= low) & (adv <= high)).all()) and float(adv.min()) >= 0.0
    assert float((adv - x).abs().max()) <= 0.1 + 1e-7
    loss = nn.functional.cross_entropy
    assert float(loss(model(adv), y)) > float(loss(model(x), y))


def test_one_step_on_a_linear_model_is_the_signed_gradient_step_from_the_start() -> None:
    model = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]))
    x, y = (
        torch.full((1, 3), 0.5),
        torch.tensor([1]),
    )  # ascending CE of class 1 raises the other logit: +sign(w0)
    start = torch.tensor([[0.45, 0.5, 0.5]])
    adv = linf_pgd(model, x, y, eps=0.2, step_size=0.1, steps=1, start=start)
    torch.testing.assert_close(adv, torch.tensor([[0.55, 0.4, 0.5]]))
    assert (
        float(linf_pgd(model, x, y, eps=0.2, step_size=0.1, steps=0, start=start).sub(start).abs().max())
        == 0.0
    )
