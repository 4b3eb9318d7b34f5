"""Attack specifications, the registry of supported attacks and :func:`run_attack`, the one entry point that
runs any attack of ART, Foolbox 3, CleverHans 4, AutoAttack (torchattacks) or a transfer attack on a PyTorch
model.

An attack is described by an :class:`AttackSpec` (library, attack, norm, epsilon, library parameters); the
registry :data:`ATTACKS` lists every supported ``(library, attack)`` pair with its norms, its kind
(gradient-based, score-based, decision-based, noise, transfer, ensemble), the loss it optimises
(:data:`LOSSES`; ``AttackSpec.margin_loss`` and ``AttackSpec.cross_entropy`` say whether it counts as a
margin-loss or a cross-entropy attack for the suites and the audit) and its default parameters.
:func:`run_attack` validates the spec, runs the library adapter (``adapters_<library>.py``) batch by batch and
returns float32 adversarial examples in ``[0, 1]`` that respect the threat model:

* fixed-epsilon attacks (PGD, FGSM, APGD, Square, ...) are trusted to stay in the ball; a violation within
  numerical round-off (``<= 1e-3`` relative) is projected back, a larger one is returned untouched so the
  runner flags it;
* minimisation attacks (C&W, EAD, DeepFool, Boundary, HopSkipJump, salt-and-pepper) run unbounded; with a
  finite ``eps`` every point whose perturbation exceeds ``eps`` is replaced by its clean input
  (``out_of_budget="clean"``, the default: the point then counts as not broken) or projected onto the ball
  (``out_of_budget="project"``). With ``eps=None`` the raw minimal adversarial is returned (for median-norm
  statistics).

Default parameters are strong but affordable on a CPU; every one of them can be overridden through
``spec.params`` (the names are the library's own keyword arguments, listed in :data:`ATTACKS`).

This module runs attacks; :class:`AttackSpec` lives in ``_attack_spec``, the threat-model helpers
(:func:`perturbation_norms`, :func:`enforce_budget`) in ``_attack_budget`` and the registry in
:mod:`.attack_registry`; every name is importable from here.
"""

from __future__ import annotations

import contextlib
import importlib
import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..utils import check_images, check_labels, resolve_device
from ._attack_budget import _project as _project
from ._attack_budget import enforce_budget, perturbation_norms
from ._attack_spec import AttackSpec
from ._attack_spec import FrozenParams as FrozenParams
from ._attack_spec import _json_safe as _json_safe
from .attack_registry import _ROUND_OFF as _ROUND_OFF
from .attack_registry import ATTACKS, KINDS, LIBRARIES, LOSSES, NORMS, AttackInfo
from .attack_registry import _valid_pairs as _valid_pairs
from .attack_registry import normalise_norm as normalise_norm

__all__ = [
    "ATTACKS",
    "AttackInfo",
    "AttackSpec",
    "BatchAttack",
    "KINDS",
    "LIBRARIES",
    "LOSSES",
    "NORMS",
    "enforce_budget",
    "perturbation_norms",
    "run_attack",
]

BatchAttack = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""What an adapter's ``build_attack`` returns: ``(x_batch float32, y_batch int64) -> adversarial batch``."""


# ------------------------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python, numpy and torch (CPU and CUDA) for the block, restoring the previous global RNG states
    after."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@contextlib.contextmanager
def attack_mode(*models: nn.Module | None, device: torch.device) -> Iterator[None]:
    """Move ``models`` to ``device``, put them in eval mode and freeze their parameters (attacks only need
    input gradients); the training flags and ``requires_grad`` flags are restored on exit."""
    modes: list[tuple[nn.Module, bool]] = []
    grads: list[tuple[nn.Parameter, bool]] = []
    for model in models:
        if model is None:
            continue
        model.to(device)
        modes.extend((m, m.training) for m in model.modules())
        grads.extend((p, p.requires_grad) for p in model.parameters())
    try:
        for model in models:
            if model is not None:
                model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield
    finally:
        for m, flag in modes:
            m.train(flag)
        for p, flag in grads:
            p.requires_grad_(flag)


def _num_classes(model: nn.Module, x: np.ndarray, device: torch.device) -> int:
    with torch.no_grad():
        out = model(torch.from_numpy(x[:1]).to(device))
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must return logits of shape (N, num_classes >= 2), got {shape}")
    return int(out.shape[1])


def _load_adapter(library: str) -> Callable[..., BatchAttack]:
    module = importlib.import_module(f"{__package__}.adapters_{library}")
    builder: Callable[..., BatchAttack] = module.build_attack
    return builder


def run_attack(
    spec: AttackSpec,
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    batch_size: int = 128,
    surrogate_model: nn.Module | None = None,
    verbose: bool = False,
) -> np.ndarray:
    """Run ``spec`` on ``model`` and return adversarial examples (float32, shape of ``x``, inside ``[0, 1]``).

    :param spec: the attack (validated first: unknown library/attack/norm/params raise ``ValueError``).
    :param model: a ``nn.Module`` returning logits (already wrapped with
    :class:`~.eot.EoT`/:class:`~.eot.BPDA` by the
        caller when needed). It is moved to ``device``, attacked in eval mode with frozen parameters, and its
        training/``requires_grad`` flags are restored afterwards.
    :param x: images ``(N, C, H, W)`` in ``[0, 1]``; :param y: int labels ``(N,)`` (or one-hot).
    :param device: torch device for the attack (``"cpu"``, ``"cuda"``, ...).
    :param seed: seeds Python, numpy and torch (global states are restored afterwards) and the libraries' own
    seeds.
    :param batch_size: images per attack call (one progress-bar step each).
    :param surrogate_model: the model the adversarials are crafted on for ``library="transfer"``.
    :param verbose: show a tqdm bar over batches.
    """
    if not isinstance(spec, AttackSpec):
        raise TypeError(f"spec must be an AttackSpec, got {type(spec).__name__}")
    info = spec.validate()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    x = check_images(x, "x")
    dev = resolve_device(device)

    if spec.library == "transfer":
        if surrogate_model is None:
            raise ValueError(
                "a transfer attack needs surrogate_model (the model the adversarials are crafted on)"
            )
        if not isinstance(surrogate_model, nn.Module):
            raise TypeError(
                f"surrogate_model must be a torch.nn.Module, got {type(surrogate_model).__name__}"
            )
        return run_attack(
            spec.base_spec(),
            surrogate_model,
            x,
            y,
            device=dev,
            seed=seed,
            batch_size=batch_size,
            verbose=verbose,
        )

    params = info.resolve_params(spec.norm, spec.params)
    out_of_budget = params.pop("out_of_budget", "clean")
    x_adv = np.empty_like(x)
    with attack_mode(model, device=dev), seeded(int(seed)):
        nb_classes = _num_classes(model, x, dev)
        labels = check_labels(y, len(x), nb_classes, "y")
        build = _load_adapter(spec.library)
        attack = build(
            spec.attack,
            model,
            norm=spec.norm,
            eps=spec.eps,
            params=params,
            device=dev,
            nb_classes=nb_classes,
            input_shape=tuple(x.shape[1:]),
            batch_size=batch_size,
            seed=int(seed),
        )
        starts = range(0, len(x), batch_size)
        for start in tqdm(starts, desc=spec.label, disable=not verbose, unit="batch"):
            xb, yb = x[start : start + batch_size], labels[start : start + batch_size]
            x_adv[start : start + len(xb)] = np.asarray(attack(xb, yb), dtype=np.float32).reshape(xb.shape)
    return enforce_budget(
        x_adv, x, norm=spec.norm, eps=spec.eps, minimisation=info.minimisation, out_of_budget=out_of_budget
    )
