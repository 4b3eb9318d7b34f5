"""Defend your own PyTorch model with manifold regularization (paper 003, Jin & Rinard, "Manifold
Regularization for Locally Stable Deep Neural Networks", https://openreview.net/forum?id=bhKQ7P7gyLA,
arXiv:2003.04286).

What it shows, in the order an ART user would write it:

1. wrap the paper's MNIST network (``cw_mnist_paper``: Carlini & Wagner's net, valid convs, Glorot-uniform
   weights) as an ART ``PyTorchClassifier`` -- or *your* CNN: its activations must be ``nn.ReLU`` modules so
   that the Hamming term can see them;
2. train it with ``ManifoldRegularizationTrainer(classifier, schedule="mnist", ablation="both").fit`` (an ART
   ``Trainer``: cross-entropy + weight decay + the sparse intrinsic term, eq. 11, + the squared Hamming term,
   eqs. 13-14, with the paper's schedules stretched to the number of epochs; no adversary is used; the
   training loop warns with ``TrainingCollapseWarning`` if an epoch ends at chance or with one predicted
   class);
3. measure the empirical ReLU stability the regularizer targets (``relu_stability``) and run ART's PGD on the
   model (it is an ordinary deterministic network at test time: no BPDA or EoT is needed);
4. ``art_manifold_defenses.evaluation.evaluate`` with a small suite, printing clean/robust accuracy and the
   gradient-masking audit flags. (The arXiv v1 model of this paper fell to 1.35% under AutoAttack.)

``--quick`` (the default) uses tiny settings (2,000 training images, 3 epochs, 50 test points, 20 PGD steps)
so that it finishes in about two minutes on one CPU core: its numbers show that the pipeline runs, they are
NOT meaningful robustness figures. ``--no-quick`` trains on the whole embedded set for longer and attacks 200
points (``--epochs`` / ``--n`` override either mode).

    OMP_NUM_THREADS=1 python examples/defend_with_manifold_regularization.py            # quick
    python examples/defend_with_manifold_regularization.py --no-quick --epochs 100 --n 500 --device cuda
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent

from art_manifold_defenses import build_model, to_art_classifier
from art_manifold_defenses.evaluation import AttackSpec, evaluate
from art_manifold_defenses.manifold_regularization import ManifoldRegularizationTrainer, relu_stability

from _common import example_parser, mnist, setup, summarize  # examples/_common.py


def main() -> int:
    parser = example_parser(
        __doc__,
        epochs_help="training epochs (quick: 3, else 100 as the paper)",
        n_help="test points attacked (quick: 50, else 200)",
    )
    args = parser.parse_args()
    device = setup(args)
    verbose = not args.quiet
    epochs = args.epochs if args.epochs is not None else (3 if args.quick else 100)
    n = args.n if args.n is not None else (50 if args.quick else 200)
    train_limit = 2000 if args.quick else None
    pgd_steps = 20 if args.quick else 100

    x_train, y_train, x, y = mnist(train_limit, n)

    # 1. the paper's network (or your own nn.Module with nn.ReLU modules) as an ART classifier
    torch.manual_seed(args.seed)
    model = build_model("cw_mnist_paper")
    classifier = to_art_classifier(model, input_shape=(1, 28, 28), nb_classes=10, device=device)

    # 2. manifold-regularized training (paper's MNIST schedule: eps 0.075 -> 0.3, gamma_I / gamma_H ramped
    #    x10, SGD with the piecewise-linear learning rate, momentum 0.9, weight decay 5e-4)
    trainer = ManifoldRegularizationTrainer(
        classifier, schedule="mnist", ablation="both", device=device, seed=args.seed, verbose=verbose
    )
    trainer.fit(x_train, y_train, batch_size=128, nb_epochs=epochs)
    model.eval()
    clean = float(np.mean(classifier.predict(x).argmax(1) == y))

    # 3. ReLU stability under random maximal l-inf perturbations, then ART PGD
    stability = relu_stability(model, x, 0.1, device=device, seed=args.seed)
    pgd = ProjectedGradientDescent(
        classifier, norm=np.inf, eps=0.3, eps_step=2.5 * 0.3 / pgd_steps, max_iter=pgd_steps, verbose=False
    )
    x_adv = pgd.generate(x, y=y).astype(np.float32)
    robust_pgd = float(np.mean(classifier.predict(x_adv).argmax(1) == y))
    print(
        f"manifold-regularized cw_mnist_paper: clean {clean:.3f}, ReLU stability at linf 0.1 "
        f"{stability['overall']:.3f}, "
        f"ART PGD linf 0.3 ({pgd_steps} steps) {robust_pgd:.3f}"
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
        model_name="cw_mnist_paper + manifold regularization",
        dataset="mnist-embedded",
    )
    summarize(result, f"manifold-regularization (quick={args.quick}, n={n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
