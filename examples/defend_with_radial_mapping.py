"""Defend your own PyTorch model with radial-basis feature mapping (paper 001, Taghanaki et al., CVPR 2019,
https://arxiv.org/abs/1903.01015).

What it shows, in the order an ART user would write it:

1. build ``RadialMappingClassifierPyTorch`` from *your* CNN: an ART ``PyTorchClassifier`` whose model is a
   copy of yours with a Mahalanobis-like radial-basis mapping block after every convolution (eqs. 2-5,
   Fig. 2);
2. train it with ART's own ``fit`` (Adam 1e-3, batch 128 as in the paper; the mapping's centres, widths and
   distance matrix are learned with the CNN);
3. run ART's PGD on it directly (the mapping is deterministic and differentiable: no BPDA or EoT is needed,
   which is exactly why it fell to 0% under AutoAttack in Croce & Hein 2020);
4. ``art_manifold_defenses.evaluation.evaluate`` with a small suite (ART, Foolbox, CleverHans and, outside
   quick mode, AutoAttack), printing clean/robust accuracy and the gradient-masking audit flags.

``--quick`` (the default) uses tiny settings (2,000 training images, 2 epochs, 50 test points, 20 PGD steps)
so that it finishes in about two minutes on one CPU core: its numbers show that the pipeline runs, they are
NOT meaningful robustness figures. ``--no-quick`` trains on the whole embedded set for longer and attacks 200
points (``--epochs`` / ``--n`` override either mode).

    OMP_NUM_THREADS=1 python examples/defend_with_radial_mapping.py            # quick
    python examples/defend_with_radial_mapping.py --no-quick --epochs 12 --n 500 --device cuda
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent
from torch import nn

from art_manifold_defenses.evaluation import AttackSpec, evaluate
from art_manifold_defenses.radial_mapping import RadialMappingClassifierPyTorch, mapping_blocks
from art_manifold_defenses.utils import art_device_type

from _common import example_parser, mnist, setup, summarize  # examples/_common.py


class MyCNN(nn.Module):
    """Stands for *your* model: any ``nn.Module`` mapping (N, 1, 28, 28) images to logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv1(x)))
        x = self.pool(self.act(self.conv2(x)))
        return self.fc(x.flatten(1))


def main() -> int:
    parser = example_parser(
        __doc__,
        epochs_help="training epochs (quick: 2, else 12)",
        n_help="test points attacked (quick: 50, else 200)",
    )
    parser.add_argument(
        "--variant", choices=["paper", "authors_code"], default="paper", help="mapping block variant"
    )
    args = parser.parse_args()
    device = setup(args)
    verbose = not args.quiet
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 12)
    n = args.n if args.n is not None else (50 if args.quick else 200)
    train_limit = 2000 if args.quick else None
    pgd_steps = 20 if args.quick else 100

    x_train, y_train, x, y = mnist(train_limit, n)

    # 1. your CNN + radial-basis mapping blocks, as an ART classifier (your model itself is not modified)
    torch.manual_seed(args.seed)
    classifier = RadialMappingClassifierPyTorch(
        MyCNN(),
        input_shape=(1, 28, 28),
        nb_classes=10,
        variant=args.variant,
        seed=args.seed,
        learning_rate=1e-3,
        device_type=art_device_type(device),
    )
    print(f"mapping blocks inserted: {len(mapping_blocks(classifier.mapped_model))}")

    # 2. ART's fit trains the CNN and the mapping end to end
    classifier.fit(x_train, y_train, batch_size=128, nb_epochs=epochs, verbose=verbose)
    clean = float(np.mean(classifier.predict_labels(x) == y))

    # 3. ART PGD, white-box (deterministic, differentiable model)
    pgd = ProjectedGradientDescent(
        classifier, norm=np.inf, eps=0.3, eps_step=2.5 * 0.3 / pgd_steps, max_iter=pgd_steps, verbose=False
    )
    x_adv = pgd.generate(x, y=y).astype(np.float32)
    robust_pgd = float(np.mean(classifier.predict_labels(x_adv) == y))
    print(
        f"ART classifier with radial mapping: clean {clean:.3f}, ART PGD linf 0.3 ({pgd_steps} steps) "
        f"{robust_pgd:.3f}"
    )
    for row in classifier.mapping_summary():
        print(
            f"  block on {int(row['in_channels'])} channels: mean beta {row['beta_mean']:.3f}, "
            f"condition number {row['condition']:.1f}"
        )

    # 4. the harness: per-point worst case over libraries, gradient-masking audit
    suite = [
        AttackSpec("art", "fgsm", "linf", 0.3),
        AttackSpec("art", "pgd", "linf", 0.3, {"max_iter": pgd_steps}),
        AttackSpec("foolbox", "pgd", "linf", 0.3, {"steps": pgd_steps}),
        AttackSpec("cleverhans", "pgd", "linf", 0.3, {"nb_iter": pgd_steps}),
    ]
    if not args.quick:
        suite.append(AttackSpec("autoattack", "standard", "linf", 0.3))
    result = evaluate(
        classifier,
        x,
        y,
        suite,
        device=device,
        seed=args.seed,
        verbose=verbose,
        model_name=f"MyCNN + radial mapping ({args.variant})",
        dataset="mnist-embedded",
    )
    summarize(result, f"radial-mapping (quick={args.quick}, n={n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
