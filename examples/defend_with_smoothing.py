"""Defend your own PyTorch model with Gaussian randomized smoothing, certified with the Rényi-divergence bound
(paper 004, Li, Chen, Wang & Carin, "Certified Adversarial Robustness with Additive Noise", NeurIPS 2019,
https://arxiv.org/abs/1809.03113), side by side with Cohen et al. and PixelDP.

What it shows, in the order an ART user would write it:

1. build ``RenyiSmoothingPyTorch`` around *your* CNN (the same constructor as ART's
   ``PyTorchRandomizedSmoothing``; ``scale`` is the noise sigma);
2. train it with ``fit`` (fresh Gaussian noise per batch plus the stability loss: STN, section 5.1);
3. ``certify`` l2 radii with every bound from the same votes (``bound="all"``);
4. run ART's PGD on the estimator: its ``loss_gradient`` is already the EoT gradient over noise draws, so ART
   attacks the smoothed classifier, not the base one; the adversarial images are scored by the smoothed
   prediction;
5. ``art_manifold_defenses.evaluation.evaluate`` on ``estimator.smoothed_module()`` (``stochastic = True``:
   the harness attacks it with EoT and scores it by majority vote), printing clean/robust accuracy and the
   audit flags.

``--quick`` (the default) uses tiny settings (the 4,000 embedded training images, 5 epochs, 30 test points,
100 certification samples, few EoT samples) so that it finishes in about two minutes on one CPU core: its
numbers show that the pipeline runs, they are NOT meaningful robustness figures or certificates worth quoting.
``--no-quick`` trains on the whole embedded set for longer and certifies with more samples (``--epochs`` /
``--n`` override either mode).

    OMP_NUM_THREADS=1 python examples/defend_with_smoothing.py            # quick
    python examples/defend_with_smoothing.py --no-quick --epochs 20 --n 500 --sigma 0.7 --device cuda
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent
from torch import nn

from art_manifold_defenses.evaluation import AttackSpec, evaluate
from art_manifold_defenses.smoothing import RenyiSmoothingPyTorch
from art_manifold_defenses.utils import art_device_type

from _common import example_parser, mnist, setup, summarize  # examples/_common.py


class MyCNN(nn.Module):
    """Stands for *your* model: any ``nn.Module`` mapping (N, 1, 28, 28) images to logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def main() -> int:
    parser = example_parser(
        __doc__,
        epochs_help="training epochs (quick: 5, else 20)",
        n_help="test points certified and attacked (quick: 30, else 200)",
    )
    parser.add_argument("--sigma", type=float, default=0.5, help="noise standard deviation")
    parser.add_argument(
        "--stability-weight", type=float, default=1.0, help="STN's gamma (0 = Gaussian augmentation)"
    )
    args = parser.parse_args()
    device = setup(args)
    verbose = not args.quiet
    epochs = args.epochs if args.epochs is not None else (5 if args.quick else 20)
    n = args.n if args.n is not None else (30 if args.quick else 200)
    train_limit = None
    cert_n, eot, pgd_steps = (100, 4, 10) if args.quick else (10000, 16, 40)

    x_train, y_train, x, y = mnist(train_limit, n)

    # 1. your CNN inside the smoothing estimator (ART's PyTorchRandomizedSmoothing constructor)
    torch.manual_seed(args.seed)
    model = MyCNN()
    estimator = RenyiSmoothingPyTorch(
        model,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=10,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        clip_values=(0.0, 1.0),
        device_type=art_device_type(device),
        sample_size=32,
        scale=args.sigma,
        alpha=0.001,
        eot_samples=eot,
        seed=args.seed,
    )

    # 2. stability training with noise (STN)
    estimator.fit(
        x_train,
        y_train,
        batch_size=128,
        nb_epochs=epochs,
        stability_weight=args.stability_weight,
        seed=args.seed,
        verbose=verbose,
    )

    # 3. certified l2 radii, all three bounds from the same votes
    prediction, radii = estimator.certify(
        x, n=cert_n, n0=100, batch_size=1000, bound="all", alpha=0.001, verbose=verbose
    )
    assert isinstance(radii, dict)
    correct = prediction == y
    print(f"smoothed accuracy (abstentions count as wrong) {np.mean(correct):.3f} with n = {cert_n}")
    for bound, radius in radii.items():
        print(
            f"  {bound}: certified accuracy at l2 0.5 {np.mean(correct & (radius >= 0.5)):.3f}, "
            f"median radius of correct points {np.median(radius[correct]) if correct.any() else 0.0:.3f}"
        )

    # 4. ART PGD on the estimator: loss_gradient is the EoT gradient of the smoothed classifier
    pgd = ProjectedGradientDescent(
        estimator, norm=2, eps=1.0, eps_step=2.5 * 1.0 / pgd_steps, max_iter=pgd_steps, verbose=False
    )
    x_adv = pgd.generate(x, y=y).astype(np.float32)
    votes_adv = estimator.predict(x_adv, is_abstain=False)
    print(
        f"ART PGD l2 1.0 (EoT over {eot} draws), smoothed prediction: {np.mean(votes_adv.argmax(1) == y):.3f}"
    )

    # 5. the harness on the nn.Module view (stochastic: EoT attacks, majority-vote scoring)
    suite = [
        AttackSpec("art", "pgd", "l2", 1.0, {"max_iter": pgd_steps}),
        AttackSpec("foolbox", "pgd", "l2", 1.0, {"steps": pgd_steps}),
    ]
    if not args.quick:
        suite.append(AttackSpec("autoattack", "standard", "l2", 1.0))  # the runner switches to "rand" (EoT)
    result = evaluate(
        estimator.smoothed_module(),
        x,
        y,
        suite,
        device=device,
        seed=args.seed,
        eot_samples=eot,
        votes=5 if args.quick else 25,
        repeats=1,
        verbose=verbose,
        model_name=f"MyCNN + smoothing (sigma {args.sigma})",
        dataset="mnist-embedded",
    )
    summarize(
        result,
        f"smoothing (quick={args.quick}, n={n}, sigma={args.sigma})",
        robust_label="robust (worst case, l2 1.0)",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
