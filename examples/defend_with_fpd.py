"""Defend your own PyTorch model with the Feature Pyramid Decoder (paper 002, G. Li et al., CVPR 2020,
https://arxiv.org/abs/2005.02552).

What it shows, in the order an ART user would write it:

1. write *your* CNN so that it exposes ``stem``, ``stages`` (an ``nn.ModuleList``) and ``head`` -- the small
   protocol of :mod:`art_manifold_defenses.fpd.backbone` -- and enhance it with ``FeaturePyramidDecoder``
   (inner/middle non-local denoising layers, image restoration module, Lipschitz-constrained tanh classifier,
   ReLU -> ELU);
2. wrap it as an ART ``PyTorchClassifier`` and train it with ``FPDTrainer(classifier).fit`` (Algorithm 1: the
   two-phase reconstruction / classification training, an ART ``Trainer``);
3. run ART's PGD on it (the network is deterministic and differentiable: no BPDA or EoT; but its tanh logits
   saturate cross-entropy gradients, so the suite also has AutoAttack's margin-loss APGD outside quick mode);
4. ``art_manifold_defenses.evaluation.evaluate`` with a small suite, printing clean/robust accuracy and the
   gradient-masking audit flags.

``--quick`` (the default) uses tiny settings (2,000 training images, 2 epochs, a narrow pyramid, 30 test
points, 20 PGD steps) so that it finishes in about two minutes on one CPU core: its numbers show that the
pipeline runs, they are NOT meaningful robustness figures. ``--no-quick`` trains on the whole embedded set for
longer with the authors' pyramid width (256) and attacks 200 points (``--epochs`` / ``--n`` override either
mode).

    OMP_NUM_THREADS=1 python examples/defend_with_fpd.py            # quick
    python examples/defend_with_fpd.py --no-quick --epochs 30 --n 500 --device cuda
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent
from torch import nn

from art_manifold_defenses import to_art_classifier
from art_manifold_defenses.evaluation import AttackSpec, evaluate
from art_manifold_defenses.fpd import FeaturePyramidDecoder, FPDTrainer

from _common import example_parser, mnist, setup, summarize  # examples/_common.py


def conv_block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class MyBlockCNN(nn.Module):
    """Stands for *your* model: a block-based CNN exposing ``stem``, ``stages`` and ``head`` (logits out)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = conv_block(1, width, 1)  # 28x28
        self.stages = nn.ModuleList(
            [conv_block(width, 2 * width, 2), conv_block(2 * width, 4 * width, 2)]
        )  # 14, 7
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def main() -> int:
    parser = example_parser(
        __doc__,
        epochs_help="training epochs (quick: 2, else 30)",
        n_help="test points attacked (quick: 30, else 200)",
    )
    args = parser.parse_args()
    device = setup(args)
    verbose = not args.quiet
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 30)
    n = args.n if args.n is not None else (30 if args.quick else 200)
    train_limit = 2000 if args.quick else None
    fpn_channels = 32 if args.quick else 256
    pgd_steps = 20 if args.quick else 100

    x_train, y_train, x, y = mnist(train_limit, n)

    # 1. enhance your CNN with the Feature Pyramid Decoder
    torch.manual_seed(args.seed)
    fpd = FeaturePyramidDecoder(MyBlockCNN(), input_size=28, fpn_channels=fpn_channels, device=device)

    # 2. an ART classifier around it, trained with Algorithm 1 (paper's MNIST settings: noise 0.01, T = 3,
    #    Adamax)
    classifier = to_art_classifier(fpd, input_shape=(1, 28, 28), nb_classes=10, device=device)
    trainer = FPDTrainer(classifier, device=device, seed=args.seed, verbose=verbose)
    trainer.fit(x_train, y_train, batch_size=100 if args.quick else 300, nb_epochs=epochs)
    fpd.eval()
    last = trainer.history[-1] if trainer.history else {}
    print("last epoch: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, float)))
    clean = float(np.mean(classifier.predict(x).argmax(1) == y))

    # 3. ART PGD, white-box on the whole FPD network
    pgd = ProjectedGradientDescent(
        classifier, norm=np.inf, eps=0.3, eps_step=2.5 * 0.3 / pgd_steps, max_iter=pgd_steps, verbose=False
    )
    x_adv = pgd.generate(x, y=y).astype(np.float32)
    robust_pgd = float(np.mean(classifier.predict(x_adv).argmax(1) == y))
    print(
        f"ART classifier with FPD: clean {clean:.3f}, ART PGD linf 0.3 ({pgd_steps} steps) {robust_pgd:.3f}"
    )

    # 4. the harness: per-point worst case over libraries, gradient-masking audit
    suite = [
        AttackSpec("art", "fgsm", "linf", 0.3),
        AttackSpec("art", "pgd", "linf", 0.3, {"max_iter": pgd_steps}),
        AttackSpec("foolbox", "pgd", "linf", 0.3, {"steps": pgd_steps}),
    ]
    if not args.quick:
        suite += [
            AttackSpec("art", "apgd-dlr", "linf", 0.3),
            AttackSpec("autoattack", "standard", "linf", 0.3),
        ]
    result = evaluate(
        classifier,
        x,
        y,
        suite,
        device=device,
        seed=args.seed,
        verbose=verbose,
        model_name="MyBlockCNN + FPD",
        dataset="mnist-embedded",
    )
    summarize(result, f"fpd (quick={args.quick}, n={n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
