"""Defend your own PyTorch model with the RBF-CNN reconstruction (paper 000, Nandy, Hsu & Lee,
arXiv:2004.02183).

What it shows, in the order an ART user would write it:

1. learn the RBF filter bank from training images (non-parametric EM, eq. 3: ``fit_rbf_filters``);
2. put *your* CNN behind the reconstruction and train it as rCNN (``RBFCNN`` + ``RBFCNNTrainer(...).fit``, an
   ART ``Trainer``);
3. use the reconstruction as an ART preprocessing defence of an ordinary ``PyTorchClassifier``
   (``preprocessing_defences=[RBFReconstructionPyTorch(bank)]``) and run ART's PGD on it: the gradient ART
   sees is the paper's BPDA gradient (wired inside the preprocessor's ``forward``), from one noisy
   reconstruction;
4. the adaptive attack of the paper, BPDA + EoT: the same ART PGD on ``EoT(RBFCNN)`` (gradient averaged over
   several noise draws);
5. ``art_manifold_defenses.evaluation.evaluate`` with a small suite (EoT, majority-vote scoring, per-point
   worst case, gradient-masking audit), printing clean/robust accuracy and the audit flags.

``--quick`` (the default) uses tiny settings (2,000 training images, 3 epochs, a short EM, 50 test points, few
EoT samples) so that it finishes in about two minutes on one CPU core: its numbers show that the pipeline
runs, they are NOT meaningful robustness figures. ``--no-quick`` uses the embedded set in full, the paper's EM
and EoT settings and more test points (``--epochs`` / ``--n`` override either mode).

    OMP_NUM_THREADS=1 python examples/defend_with_rbf_reconstruction.py            # quick
    python examples/defend_with_rbf_reconstruction.py --no-quick --epochs 20 --n 200 --device cuda
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_manifold_defenses import to_art_classifier
from art_manifold_defenses.evaluation import AttackSpec, EoT, evaluate
from art_manifold_defenses.rbf_reconstruction import (
    RBFCNN,
    RBFCNNTrainer,
    RBFReconstructionPyTorch,
    fit_rbf_filters,
)
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
        epochs_help="training epochs (quick: 3, else 20)",
        n_help="test points attacked (quick: 50, else 200)",
    )
    args = parser.parse_args()
    device = setup(args)
    verbose = not args.quiet
    epochs = args.epochs if args.epochs is not None else (3 if args.quick else 20)
    n = args.n if args.n is not None else (50 if args.quick else 200)
    train_limit = 2000 if args.quick else None
    em = (
        {"max_steps": 60, "nonparametric_steps": 45, "batch_size": 20, "batches_per_step": 5}
        if args.quick
        else {}
    )
    votes, eot, pgd_steps = (2, 4, 20) if args.quick else (10, 10, 40)

    x_train, y_train, x, y = mnist(train_limit, n)

    # 1. the RBF filter bank (eq. 2-3)
    bank = fit_rbf_filters(x_train, seed=args.seed, device=device, verbose=verbose, **em)
    print(f"filter bank: {bank.num_filters} filters of {bank.patch_size}x{bank.patch_size} patches")

    # 2. your CNN behind the reconstruction, trained as rCNN (training reconstruction beta1 = 125, beta2 = 0)
    torch.manual_seed(args.seed)
    model = RBFCNN(MyCNN(), bank, votes=votes, seed=args.seed, device=device)
    trainer = RBFCNNTrainer(model, variant="rcnn", input_shape=(1, 28, 28), device=device)
    trainer.fit(x_train, y_train, nb_epochs=epochs, batch_size=128, seed=args.seed, verbose=verbose)
    model.eval()

    # 3. the reconstruction as an ART preprocessing defence of an ordinary PyTorchClassifier; ART PGD with the
    #    paper's BPDA gradient (inside the preprocessor's forward), one noise draw per gradient
    preprocessor = RBFReconstructionPyTorch(bank, seed=args.seed, device_type=art_device_type(device))
    classifier = PyTorchClassifier(
        model.classifier,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        preprocessing_defences=[preprocessor],
        device_type=art_device_type(device),
    )
    clean_art = float(np.mean(classifier.predict(x).argmax(1) == y))
    pgd = ProjectedGradientDescent(
        classifier, norm=np.inf, eps=0.3, eps_step=2.5 * 0.3 / pgd_steps, max_iter=pgd_steps, verbose=False
    )
    x_adv = pgd.generate(x, y=y).astype(np.float32)
    bpda_art = float(np.mean(classifier.predict(x_adv).argmax(1) == y))
    print(
        f"ART classifier + RBFReconstructionPyTorch: clean {clean_art:.3f}, ART PGD (BPDA) linf 0.3 "
        f"{bpda_art:.3f}"
    )

    # 4. BPDA + EoT: the same ART PGD on the voting RBF-CNN averaged over `eot` noise draws
    eot_classifier = to_art_classifier(
        EoT(model, samples=eot, average="probabilities"),
        input_shape=(1, 28, 28),
        nb_classes=10,
        device=device,
    )
    pgd_eot = ProjectedGradientDescent(
        eot_classifier, norm=np.inf, eps=0.3, eps_step=pgd.eps_step, max_iter=pgd_steps, verbose=False
    )
    x_adv_eot = pgd_eot.generate(x, y=y).astype(np.float32)
    bpda_eot = float(np.mean(classifier.predict(x_adv_eot).argmax(1) == y))
    print(f"ART PGD (BPDA + EoT, {eot} draws) linf 0.3, scored on the ART classifier: {bpda_eot:.3f}")

    # 5. the harness: EoT for the stochastic model, majority-vote scoring, per-point worst case, audit
    suite = [
        AttackSpec("art", "fgsm", "linf", 0.3),
        AttackSpec("art", "pgd", "linf", 0.3, {"max_iter": pgd_steps}),
        AttackSpec("foolbox", "pgd", "linf", 0.3, {"steps": pgd_steps}),
    ]
    if not args.quick:
        suite.append(AttackSpec("autoattack", "standard", "linf", 0.3))  # the runner switches to "rand" (EoT)
    result = evaluate(
        model,
        x,
        y,
        suite,
        device=device,
        seed=args.seed,
        eot_samples=eot,
        votes=3 if args.quick else 9,
        repeats=1,
        verbose=verbose,
        model_name="MyCNN + RBF-CNN (rCNN)",
        dataset="mnist-embedded",
    )
    summarize(result, f"rbf-reconstruction (quick={args.quick}, n={n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
