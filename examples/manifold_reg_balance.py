"""How the manifold-regularization terms compare at initialisation (paper 003, App. B's calibration rule).

Jin & Rinard chose gamma_H / gamma_I "such that the corresponding losses were roughly equal for a randomly
initialized, untrained network" (App. B, on PreActResNet18 / CIFAR-10) and reuse the same weights for the
MNIST CNN. This script measures, for an untrained model, the cross-entropy, ``gamma_I * intrinsic`` and
``gamma_H * Hamming`` (eq. 15) and the norms of their parameter gradients, so one can see whether that rule
holds for another model. ``--hamming-form unsquared --intrinsic-scale 1`` gives the reading of earlier
versions of this package (the Hamming distance not squared, no 1/2 on the intrinsic term), under which C&W's
MNIST net collapsed.

    OMP_NUM_THREADS=1 python examples/manifold_reg_balance.py --model cw_mnist_paper --seeds 0 1 --eps 0.075
    0.3
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from art_manifold_defenses.data import load_dataset
from art_manifold_defenses.manifold_regularization import HAMMING_FORMS, ManifoldRegularizer
from art_manifold_defenses.models import build_model


def gradient_norm(loss: torch.Tensor, model: torch.nn.Module) -> float:
    """l2 norm of d loss / d parameters (parameters the loss does not reach count as 0)."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum(((g**2).sum() for g in grads if g is not None), torch.tensor(0.0))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cw_mnist_paper")
    parser.add_argument("--dataset", default="mnist-embedded")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--eps", type=float, nargs="+", default=[0.075, 0.3], help="0.075 = the MNIST schedule's start"
    )
    parser.add_argument("--gamma-intrinsic", type=float, default=0.8, help="App. B starting weight")
    parser.add_argument("--gamma-hamming", type=float, default=2400.0, help="App. B starting weight")
    parser.add_argument(
        "--hamming-form", default="squared", choices=list(HAMMING_FORMS), help="eq. 13: squared (default)"
    )
    parser.add_argument("--intrinsic-scale", type=float, default=0.5, help="eq. 11's constant: 0.5 (default)")
    args = parser.parse_args()
    x, y = load_dataset(args.dataset, "train", root=args.data_root)
    xb, yb = torch.from_numpy(x[: args.batch]), torch.from_numpy(y[: args.batch]).long()
    print(
        f"{args.model}, batch {args.batch}, Hamming {args.hamming_form}, intrinsic scale "
        f"{args.intrinsic_scale:g}"
    )
    print(
        "| seed | eps | CE | gamma_I * intrinsic | gamma_H * Hamming | ratio H/I | grad CE | grad gamma_I*I "
        "| grad gamma_H*H "
        "| grad CE / grad gamma_H*H |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = build_model(args.model, in_channels=xb.shape[1], input_size=xb.shape[2]).train()
        for eps in args.eps:
            torch.manual_seed(seed)
            regularizer = ManifoldRegularizer(
                hamming_form=args.hamming_form, intrinsic_scale=args.intrinsic_scale
            )
            out = regularizer(model, xb, eps=eps)
            assert out.logits is not None
            ce = F.cross_entropy(out.logits, yb)
            reg_i, reg_h = args.gamma_intrinsic * out.intrinsic, args.gamma_hamming * out.hamming
            value_i, value_h = reg_i.item(), reg_h.item()
            grad_ce, grad_h = gradient_norm(ce, model), gradient_norm(reg_h, model)
            print(
                f"| {seed} | {eps:g} | {ce.item():.4f} | {value_i:.3e} | {value_h:.3e} | "
                f"{value_h / max(value_i, 1e-30):.3g} | "
                f"{grad_ce:.3e} | {gradient_norm(reg_i, model):.3e} | {grad_h:.3e} | "
                f"{grad_ce / max(grad_h, 1e-30):.3g} |"
            )


if __name__ == "__main__":
    main()
