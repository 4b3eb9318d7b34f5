"""Attack specifications, the registry of supported attacks and :func:`run_attack`, the one entry point that runs any
attack of ART, Foolbox 3, CleverHans 4, AutoAttack (torchattacks) or a transfer attack on a PyTorch model.

An attack is described by an :class:`AttackSpec` (library, attack, norm, epsilon, library parameters); the registry
:data:`ATTACKS` lists every supported ``(library, attack)`` pair with its norms, its kind (gradient-based, score-based,
decision-based, noise, transfer, ensemble), the loss it optimises (:data:`LOSSES`; ``AttackSpec.margin_loss`` and
``AttackSpec.cross_entropy`` say whether it counts as a margin-loss or a cross-entropy attack for the suites and the
audit) and its default parameters. :func:`run_attack` validates the spec, runs the
library adapter (``adapters_<library>.py``) batch by batch and returns float32 adversarial examples in ``[0, 1]``
that respect the threat model:

* fixed-epsilon attacks (PGD, FGSM, APGD, Square, ...) are trusted to stay in the ball; a violation within numerical
  round-off (``<= 1e-3`` relative) is projected back, a larger one is returned untouched so the runner flags it;
* minimisation attacks (C&W, EAD, DeepFool, Boundary, HopSkipJump, salt-and-pepper) run unbounded; with a finite
  ``eps`` every point whose perturbation exceeds ``eps`` is replaced by its clean input (``out_of_budget="clean"``,
  the default: the point then counts as not broken) or projected onto the ball (``out_of_budget="project"``).
  With ``eps=None`` the raw minimal adversarial is returned (for median-norm statistics).

Default parameters are strong but affordable on a CPU; every one of them can be overridden through ``spec.params``
(the names are the library's own keyword arguments, listed in :data:`ATTACKS`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import random
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..utils import check_images, check_labels, resolve_device

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

LIBRARIES = ("art", "foolbox", "cleverhans", "autoattack", "transfer")
NORMS = ("linf", "l2", "l1")
KINDS = ("gradient", "score", "decision", "noise", "transfer", "ensemble")
_BLACK_BOX_KINDS = frozenset({"score", "decision", "noise", "transfer"})
_WHITE_BOX_KINDS = frozenset({"gradient", "ensemble"})
#: The objectives an attack of the registry can optimise (``AttackInfo.loss``; ``None`` = no loss).
LOSSES = ("cross-entropy", "margin", "dlr", "ensemble")
#: Losses that count as a margin loss for :attr:`AttackInfo.margin_loss` (AutoAttack's ensemble contains APGD-DLR).
_MARGIN_LOSSES = frozenset({"margin", "dlr", "ensemble"})
_NORM_ALIASES: dict[str, str] = {
    "linf": "linf",
    "inf": "linf",
    "l_inf": "linf",
    "infinity": "linf",
    "np.inf": "linf",
    "l2": "l2",
    "2": "l2",
    "2.0": "l2",
    "l1": "l1",
    "1": "l1",
    "1.0": "l1",
}
#: Harness-level parameters handled here, not passed to the library.
_OUT_OF_BUDGET = ("clean", "project")
#: Relative tolerance under which a fixed-epsilon attack's overshoot is treated as round-off and projected back.
_ROUND_OFF = 1e-3

BatchAttack = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""What an adapter's ``build_attack`` returns: ``(x_batch float32, y_batch int64) -> adversarial batch``."""


# --------------------------------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AttackInfo:
    """One supported ``(library, attack)`` pair.

    :param norms: threat models the adapter supports.
    :param kind: ``"gradient"`` (white-box), ``"score"`` (queries logits), ``"decision"`` (queries labels),
        ``"noise"`` (random search), ``"transfer"`` (crafted on a surrogate) or ``"ensemble"`` (AutoAttack).
    :param minimisation: the attack minimises the perturbation instead of working in a fixed ball.
    :param one_step: a single-step attack (FGSM/FGM).
    :param defaults: default parameters per norm (library keyword arguments; ``None`` = derived from ``eps`` or the
        step count, as the description says).
    :param description: the attack, its reference and how derived defaults are computed.
    :param loss: the objective the attack optimises, one of :data:`LOSSES`: ``"cross-entropy"``, ``"margin"`` (the
        C&W logit margin ``max_{j != y} z_j - z_y``, or a variant of it: C&W, EAD, Square, SPSA), ``"dlr"`` (the
        difference-of-logits ratio of APGD-DLR, a scale-invariant margin), ``"ensemble"`` (AutoAttack: APGD-CE plus
        APGD-DLR or targeted DLR, so both a cross-entropy and a margin loss) or ``None`` (no loss: noise, decision-based
        search, DeepFool's linearised boundary step, transfer).
    """

    library: str
    attack: str
    norms: tuple[str, ...]
    kind: str
    description: str
    defaults: Mapping[str, Mapping[str, Any]]
    minimisation: bool = False
    one_step: bool = False
    loss: str | None = None

    @property
    def black_box(self) -> bool:
        """Uses no gradient of the attacked model (score/decision-based, noise or transfer)."""
        return self.kind in _BLACK_BOX_KINDS

    @property
    def gradient_free(self) -> bool:
        """Same set as :attr:`black_box`: the attack never differentiates the attacked model."""
        return self.kind in _BLACK_BOX_KINDS

    @property
    def margin_loss(self) -> bool:
        """A white-box attack that maximises a margin or DLR loss (the issue's "margin-loss attack").

        Carlini et al. 2019, App. A (a cross-entropy attack alone can fail where the softmax saturates or the
        logits are rescaled; evaluate with a margin loss too) and Croce & Hein 2020 (APGD-DLR, AutoAttack); no
        equation. True for gradient-based attacks with loss ``"margin"`` or ``"dlr"`` (C&W, EAD, APGD-DLR) and for
        AutoAttack (loss ``"ensemble"``, which contains APGD-DLR or APGD-T). Gradient-free attacks (Square, SPSA)
        use a margin too but do not count: they are the gradient-free checks, not the strongest white-box attack.
        """
        return self.kind in _WHITE_BOX_KINDS and self.loss in _MARGIN_LOSSES

    @property
    def cross_entropy(self) -> bool:
        """An iterative white-box attack that maximises the cross-entropy in a fixed ball (PGD, BIM, MIM, APGD-CE,
        SLIDE) or AutoAttack (its first attack is APGD-CE); one-step and minimisation attacks do not count."""
        return (
            self.kind in _WHITE_BOX_KINDS
            and self.loss in ("cross-entropy", "ensemble")
            and not self.one_step
            and not self.minimisation
        )

    def defaults_for(self, norm: str) -> dict[str, Any]:
        """The default parameters for ``norm`` (a fresh dict)."""
        return dict(self.defaults.get(norm, self.defaults.get("*", {})))

    def resolve_params(self, norm: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults for ``norm`` updated with ``params``; unknown names raise ``ValueError`` listing the valid ones."""
        resolved = self.defaults_for(norm)
        valid = set(resolved)
        if self.minimisation:
            valid.add("out_of_budget")
            resolved.setdefault("out_of_budget", "clean")
        unknown = sorted(set(params) - valid)
        if unknown:
            raise ValueError(
                f"unknown params {unknown} for {self.library}/{self.attack} ({norm}); valid params: {sorted(valid)}"
            )
        resolved.update(params)
        if self.minimisation and resolved["out_of_budget"] not in _OUT_OF_BUDGET:
            raise ValueError(
                f"params['out_of_budget'] must be one of {_OUT_OF_BUDGET}, got {resolved['out_of_budget']!r}"
            )
        return resolved


ATTACKS: dict[tuple[str, str], AttackInfo] = {}


def _register(
    library: str,
    attack: str,
    norms: tuple[str, ...],
    kind: str,
    description: str,
    defaults: Mapping[str, Any] | None = None,
    *,
    per_norm: Mapping[str, Mapping[str, Any]] | None = None,
    minimisation: bool = False,
    one_step: bool = False,
    loss: str | None = None,
) -> None:
    if loss is not None and loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES} or None, got {loss!r}")
    table: dict[str, Mapping[str, Any]] = {"*": MappingProxyType(dict(defaults or {}))}
    for norm, values in (per_norm or {}).items():
        table[norm] = MappingProxyType({**(defaults or {}), **values})
    ATTACKS[(library, attack)] = AttackInfo(
        library, attack, norms, kind, description, MappingProxyType(table), minimisation, one_step, loss
    )


_ALL = ("linf", "l2", "l1")
_LINF_L2 = ("linf", "l2")

# ART 1.20 (art.attacks.evasion) -------------------------------------------------------------------------------------
_register(
    "art",
    "fgsm",
    ("linf",),
    "gradient",
    "FastGradientMethod, norm=inf (Goodfellow et al. 2015).",
    one_step=True,
    loss="cross-entropy",
)
_register(
    "art",
    "fgm",
    _ALL,
    "gradient",
    "FastGradientMethod in l1/l2/linf (Goodfellow et al. 2015).",
    one_step=True,
    loss="cross-entropy",
)
_register(
    "art",
    "bim",
    ("linf",),
    "gradient",
    "BasicIterativeMethod (Kurakin et al. 2017); eps_step=None -> 2.5*eps/max_iter.",
    {"max_iter": 40, "eps_step": None},
    loss="cross-entropy",
)
_register(
    "art",
    "pgd",
    _ALL,
    "gradient",
    "ProjectedGradientDescent (Madry et al. 2018) with num_random_init random restarts; "
    "eps_step=None -> 2.5*eps/max_iter.",
    {"max_iter": 40, "eps_step": None, "num_random_init": 1, "decay": None},
    loss="cross-entropy",
)
_register(
    "art",
    "mim",
    _ALL,
    "gradient",
    "MomentumIterativeMethod (Dong et al. 2018, Alg. 1: mu=1, T=10, step eps/T); eps_step=None -> eps/max_iter.",
    {"max_iter": 10, "eps_step": None, "decay": 1.0},
    loss="cross-entropy",
)
_register(
    "art",
    "cw",
    ("l2", "linf"),
    "gradient",
    "CarliniL2Method / CarliniLInfMethod (Carlini & Wagner 2017), minimisation. ART's defaults (lr=0.01, "
    "10 iterations) found no adversarial on a small MNIST CNN; lr=0.1 does. CarliniLInfMethod loops per image "
    "(seconds per image on a CPU).",
    per_norm={
        "l2": {
            "confidence": 0.0,
            "learning_rate": 0.1,
            "binary_search_steps": 5,
            "max_iter": 20,
            "initial_const": 1.0,
            "max_halving": 5,
            "max_doubling": 5,
        },
        "linf": {
            "confidence": 0.0,
            "learning_rate": 0.1,
            "max_iter": 20,
            "decrease_factor": 0.7,
            "initial_const": 0.1,
            "largest_const": 20.0,
            "const_factor": 2.0,
        },
    },
    minimisation=True,
    loss="margin",
)
_register(
    "art",
    "ead",
    ("l1",),
    "gradient",
    "ElasticNet (EAD, Chen et al. 2018; beta=1e-3, EN rule), minimisation; 5 binary-search steps from c=0.01 "
    "(the paper: 9 from 1e-3, same result on a small MNIST CNN at a third of the cost).",
    {
        "confidence": 0.0,
        "learning_rate": 0.01,
        "binary_search_steps": 5,
        "max_iter": 100,
        "beta": 1e-3,
        "initial_const": 1e-2,
        "decision_rule": "EN",
    },
    minimisation=True,
    loss="margin",
)
_register(
    "art",
    "deepfool",
    ("l2",),
    "gradient",
    "DeepFool (Moosavi-Dezfooli et al. 2016; overshoot epsilon=0.02 as in the paper), minimisation.",
    {"max_iter": 50, "epsilon": 0.02, "nb_grads": 10},
    minimisation=True,
)
for _loss, _name in (("cross_entropy", "apgd-ce"), ("difference_logits_ratio", "apgd-dlr")):
    _register(
        "art",
        _name,
        _ALL,
        "gradient",
        f"AutoProjectedGradientDescent, loss {_loss} (Croce & Hein 2020); eps_step=None -> 2*eps (APGD's "
        "initial step).",
        {"max_iter": 100, "eps_step": None, "nb_random_init": 1},
        loss="cross-entropy" if _loss == "cross_entropy" else "dlr",
    )
_register(
    "art",
    "square",
    _LINF_L2,
    "score",
    "SquareAttack (Andriushchenko et al. 2020); max_iter=1000 queries (AutoAttack uses 5000).",
    {"max_iter": 1000, "p_init": 0.8, "nb_restarts": 1},
    loss="margin",
)
_register(
    "art",
    "boundary",
    ("l2",),
    "decision",
    "BoundaryAttack (Brendel et al. 2018), untargeted, minimisation.",
    {
        "max_iter": 200,
        "delta": 0.01,
        "epsilon": 0.01,
        "step_adapt": 0.667,
        "num_trial": 25,
        "sample_size": 20,
        "init_size": 100,
        "min_epsilon": 0.0,
    },
    minimisation=True,
)
_register(
    "art",
    "hsj",
    _LINF_L2,
    "decision",
    "HopSkipJump (Chen et al. 2020), untargeted, minimisation.",
    {"max_iter": 20, "max_eval": 2000, "init_eval": 100, "init_size": 100},
    minimisation=True,
)

# Foolbox 3.3 (foolbox.attacks) --------------------------------------------------------------------------------------
_register(
    "foolbox",
    "pgd",
    _ALL,
    "gradient",
    "L1PGD/L2PGD/LinfPGD (Madry et al. 2018); rel_stepsize=None -> 2.5/steps; restarts = attack.repeat(n).",
    {"steps": 40, "rel_stepsize": None, "abs_stepsize": None, "random_start": True, "restarts": 1},
    loss="cross-entropy",
)
_register(
    "foolbox",
    "fgsm",
    ("linf",),
    "gradient",
    "FGSM (Goodfellow et al. 2015).",
    {"random_start": False},
    one_step=True,
    loss="cross-entropy",
)
_register(
    "foolbox",
    "fgm",
    _ALL,
    "gradient",
    "L1/L2/Linf FastGradientAttack.",
    {"random_start": False},
    one_step=True,
    loss="cross-entropy",
)
_register(
    "foolbox",
    "mifgsm",
    _ALL,
    "gradient",
    "L1/L2/Linf MomentumIterativeFastGradientMethod (Dong et al. 2018: mu=1, T=10); rel_stepsize=None -> 1/steps.",
    {
        "steps": 10,
        "rel_stepsize": None,
        "abs_stepsize": None,
        "momentum": 1.0,
        "random_start": False,
        "restarts": 1,
    },
    loss="cross-entropy",
)
_register(
    "foolbox",
    "deepfool",
    _LINF_L2,
    "gradient",
    "L2/Linf DeepFoolAttack (Moosavi-Dezfooli et al. 2016), minimisation.",
    {"steps": 50, "candidates": 10, "overshoot": 0.02, "loss": "logits"},
    minimisation=True,
)
_register(
    "foolbox",
    "cw",
    ("l2",),
    "gradient",
    "L2CarliniWagnerAttack (Carlini & Wagner 2017), minimisation.",
    {
        "binary_search_steps": 5,
        "steps": 200,
        "stepsize": 0.01,
        "confidence": 0.0,
        "initial_const": 0.01,
        "abort_early": True,
    },
    minimisation=True,
    loss="margin",
)
_register(
    "foolbox",
    "ead",
    ("l1",),
    "gradient",
    "EADAttack (Chen et al. 2018), minimisation.",
    {
        "binary_search_steps": 5,
        "steps": 200,
        "initial_stepsize": 0.01,
        "confidence": 0.0,
        "initial_const": 0.01,
        "regularization": 0.01,
        "decision_rule": "EN",
        "abort_early": True,
    },
    minimisation=True,
    loss="margin",
)
_register(
    "foolbox",
    "boundary",
    ("l2",),
    "decision",
    "BoundaryAttack (Brendel et al. 2018), minimisation; steps=2000 (Foolbox default 25000).",
    {
        "steps": 2000,
        "spherical_step": 0.01,
        "source_step": 0.01,
        "source_step_convergance": 1e-7,
        "step_adaptation": 1.5,
        "update_stats_every_k": 10,
    },
    minimisation=True,
)
_register(
    "foolbox",
    "hsj",
    _LINF_L2,
    "decision",
    "HopSkipJumpAttack (Chen et al. 2020), constraint from the norm, minimisation.",
    {
        "steps": 32,
        "initial_gradient_eval_steps": 100,
        "max_gradient_eval_steps": 2000,
        "stepsize_search": "geometric_progression",
        "gamma": 1.0,
    },
    minimisation=True,
)
_register(
    "foolbox",
    "gaussian-noise",
    ("l2",),
    "noise",
    "L2RepeatedAdditiveGaussianNoiseAttack (Rauber et al. 2017): noise of l2 norm eps, repeated.",
    {"repeats": 100, "check_trivial": True},
)
_register(
    "foolbox",
    "uniform-noise",
    _LINF_L2,
    "noise",
    "Linf/L2RepeatedAdditiveUniformNoiseAttack: uniform noise of norm eps, repeated.",
    {"repeats": 100, "check_trivial": True},
)
_register(
    "foolbox",
    "salt-pepper",
    ("l2", "l1"),
    "noise",
    "SaltAndPepperNoiseAttack (Rauber et al. 2017), minimisation.",
    {"steps": 1000, "across_channels": True},
    minimisation=True,
)

# CleverHans 4 (cleverhans.torch.attacks) ----------------------------------------------------------------------------
_register(
    "cleverhans",
    "fgm",
    _ALL,
    "gradient",
    "fast_gradient_method (Goodfellow et al. 2015).",
    one_step=True,
    loss="cross-entropy",
)
_register(
    "cleverhans",
    "pgd",
    _LINF_L2,
    "gradient",
    "projected_gradient_descent (Madry et al. 2018); eps_iter=None -> 2.5*eps/nb_iter; restarts keep the first "
    "successful run per point.",
    {"nb_iter": 40, "eps_iter": None, "rand_init": True, "restarts": 1},
    loss="cross-entropy",
)
_register(
    "cleverhans",
    "cw",
    ("l2",),
    "gradient",
    "carlini_wagner_l2 (Carlini & Wagner 2017), minimisation.",
    {"lr": 0.01, "confidence": 0.0, "initial_const": 0.01, "binary_search_steps": 5, "max_iterations": 200},
    minimisation=True,
    loss="margin",
)
_register(
    "cleverhans",
    "spsa",
    _LINF_L2,
    "score",
    "spsa (Uesato et al. 2018): gradient-free, finite-difference gradient estimates.",
    {
        "nb_iter": 100,
        "learning_rate": 0.01,
        "delta": 0.01,
        "spsa_samples": 128,
        "spsa_iters": 1,
        "early_stop_loss_threshold": None,
    },
    loss="margin",
)
_register(
    "cleverhans",
    "hsj",
    _LINF_L2,
    "decision",
    "hop_skip_jump_attack (Chen et al. 2020; constraint from the norm), minimisation; only correctly classified "
    "points are attacked (the function ignores labels).",
    {
        "num_iterations": 20,
        "initial_num_evals": 100,
        "max_num_evals": 2000,
        "stepsize_search": "geometric_progression",
        "gamma": 1.0,
    },
    minimisation=True,
)
_register(
    "cleverhans",
    "sparse-l1",
    ("l1",),
    "gradient",
    "sparse_l1_descent (SLIDE, Tramer & Boneh 2019); eps_iter=None -> eps/10 (CleverHans' default ratio).",
    {"nb_iter": 20, "eps_iter": None, "rand_init": False, "clip_grad": False, "grad_sparsity": 99},
    loss="cross-entropy",
)

# AutoAttack (torchattacks 3.5) --------------------------------------------------------------------------------------
_register(
    "autoattack",
    "standard",
    _LINF_L2,
    "ensemble",
    "AutoAttack standard (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T, Square; steps=100 and n_queries=5000 as in "
    "the original AutoAttack (torchattacks' own default is 10 steps).",
    {"steps": 100, "n_queries": 5000},
    loss="ensemble",
)
_register(
    "autoattack",
    "plus",
    _LINF_L2,
    "ensemble",
    "AutoAttack plus: APGD-CE, APGD-DLR, FAB, Square, APGD-T, FAB-T (restarts as in torchattacks).",
    {"steps": 100, "n_queries": 5000},
    loss="ensemble",
)
_register(
    "autoattack",
    "rand",
    _LINF_L2,
    "ensemble",
    "AutoAttack rand (for randomized defences): APGD-CE and APGD-DLR with eot_iter=20 EoT gradient samples.",
    {"steps": 100, "eot_iter": 20},
    loss="ensemble",
)

# Transfer ----------------------------------------------------------------------------------------------------------
_register(
    "transfer",
    "transfer",
    _ALL,
    "transfer",
    "Adversarials crafted on surrogate_model with params['base'] = {'library', 'attack', 'params'} (default: "
    "ART PGD) under the same norm and eps, returned to be scored on the target.",
    {"base": None},
)


def _valid_pairs(library: str) -> list[str]:
    return sorted(attack for lib, attack in ATTACKS if lib == library)


def normalise_norm(norm: Any) -> str:
    """``"linf"``, ``"l2"`` or ``"l1"`` from the usual spellings (``np.inf``, ``2``, ``"Linf"``, ``"inf"``...)."""
    if isinstance(norm, (int, float)) and not isinstance(norm, bool):
        key = "linf" if math.isinf(norm) else str(float(norm))
    elif isinstance(norm, str):
        key = norm.strip().lower()
    else:
        raise TypeError(f"norm must be a string such as 'linf', 'l2' or 'l1', got {type(norm).__name__}")
    if key not in _NORM_ALIASES:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    return _NORM_ALIASES[key]


# --------------------------------------------------------------------------------------------------------------------
# spec
# --------------------------------------------------------------------------------------------------------------------
def _json_safe(value: Any, where: str) -> Any:
    """A JSON-safe copy of ``value`` (tuples -> lists, numpy scalars -> Python); other objects raise ``TypeError``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where} must hold JSON-safe values (numbers, strings, lists, dicts), got {type(value).__name__}"
    )


class FrozenParams(dict):  # type: ignore[type-arg]
    """A read-only ``dict`` (JSON-serialisable, picklable, deep-copyable) holding an :class:`AttackSpec`'s params."""

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("AttackSpec.params is read-only; build a new spec (dataclasses.replace) instead")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenParams, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(self, sort_keys=True))


@dataclass(frozen=True)
class AttackSpec:
    """One attack: library, attack name, threat model (norm, eps) and library parameters.

    :param library: one of :data:`LIBRARIES`.
    :param attack: an attack of that library (see :data:`ATTACKS`).
    :param norm: ``"linf"``, ``"l2"`` or ``"l1"`` (``np.inf``/``2``/``1`` are accepted and normalised).
    :param eps: the budget; ``None`` only for minimisation attacks (unbounded, raw minimal adversarials).
    :param params: library keyword arguments overriding :data:`ATTACKS` defaults (JSON-safe values).
    :param name: display name; :attr:`label` falls back to a readable unique label.

    Invalid fields raise ``ValueError`` at construction, listing the valid values.
    """

    library: str
    attack: str
    norm: str = "linf"
    eps: float | None = 0.3
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.library, str) or not isinstance(self.attack, str):
            raise TypeError("library and attack must be strings")
        object.__setattr__(self, "library", self.library.strip().lower())
        object.__setattr__(self, "attack", self.attack.strip().lower())
        object.__setattr__(self, "norm", normalise_norm(self.norm))
        if self.eps is not None:
            if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float, np.integer, np.floating)):
                raise TypeError(f"eps must be a number or None, got {type(self.eps).__name__}")
            if not math.isfinite(float(self.eps)) or float(self.eps) <= 0:
                raise ValueError(
                    f"eps must be a finite number > 0 (or None for minimisation attacks), got {self.eps!r}"
                )
            object.__setattr__(self, "eps", float(self.eps))
        if not isinstance(self.params, Mapping):
            raise TypeError(f"params must be a mapping, got {type(self.params).__name__}")
        object.__setattr__(self, "params", FrozenParams(_json_safe(dict(self.params), "params")))
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"name must be a string or None, got {type(self.name).__name__}")
        self.validate()

    # -- registry ----------------------------------------------------------------------------------------------------
    @property
    def info(self) -> AttackInfo:
        """The registry entry of this attack."""
        return ATTACKS[(self.library, self.attack)]

    def validate(self) -> AttackInfo:
        """Check library, attack, norm, eps and parameter names against :data:`ATTACKS`; return the registry entry."""
        if self.library not in LIBRARIES:
            raise ValueError(f"library must be one of {list(LIBRARIES)}, got {self.library!r}")
        if self.library == "transfer":
            info = ATTACKS[("transfer", "transfer")]
            if self.attack != "transfer":
                raise ValueError(
                    f"a transfer spec has attack='transfer' (the base attack goes in params['base']), got {self.attack!r}"
                )
            unknown = sorted(set(self.params) - {"base"})
            if unknown:
                raise ValueError(f"unknown params {unknown} for transfer; valid params: ['base']")
            self.base_spec()
            return info
        if (self.library, self.attack) not in ATTACKS:
            raise ValueError(
                f"unknown attack {self.attack!r} for library {self.library!r}; valid: {_valid_pairs(self.library)}"
            )
        info = ATTACKS[(self.library, self.attack)]
        if self.norm not in info.norms:
            raise ValueError(
                f"{self.library}/{self.attack} supports norms {list(info.norms)}, got {self.norm!r}"
            )
        if self.eps is None and not info.minimisation:
            raise ValueError(
                f"eps=None (unbounded) is only valid for minimisation attacks; {self.library}/{self.attack} needs a budget"
            )
        info.resolve_params(self.norm, self.params)
        return info

    def base_spec(self) -> AttackSpec:
        """For a transfer spec: the attack run on the surrogate (same norm and eps); other specs return ``self``."""
        if self.library != "transfer":
            return self
        base = self.params.get("base") or {"library": "art", "attack": "pgd"}
        if not isinstance(base, Mapping) or "library" not in base or "attack" not in base:
            raise ValueError(
                "params['base'] must be a dict with 'library' and 'attack' (and optionally 'params')"
            )
        unknown = sorted(set(base) - {"library", "attack", "params", "norm", "eps"})
        if unknown:
            raise ValueError(
                f"unknown keys {unknown} in params['base']; valid: ['attack', 'eps', 'library', 'norm', 'params']"
            )
        if str(base["library"]).lower() == "transfer":
            raise ValueError("params['base'] cannot itself be a transfer attack")
        for key in ("norm", "eps"):
            if (
                key in base
                and base[key] != getattr(self, key)
                and not (key == "norm" and normalise_norm(base[key]) == self.norm)
            ):
                raise ValueError(
                    f"params['base'][{key!r}]={base[key]!r} differs from the transfer spec's {key}={getattr(self, key)!r}"
                )
        return AttackSpec(
            str(base["library"]), str(base["attack"]), self.norm, self.eps, dict(base.get("params") or {})
        )

    # -- audit properties --------------------------------------------------------------------------------------------
    @property
    def gradient_free(self) -> bool:
        """The attack never uses the attacked model's gradient (score/decision-based, noise, transfer)."""
        return self.info.gradient_free

    @property
    def black_box(self) -> bool:
        """The attack only queries the attacked model (or a surrogate, for transfer)."""
        return self.info.black_box

    @property
    def minimisation(self) -> bool:
        """The attack minimises the perturbation (C&W, EAD, DeepFool, Boundary, HopSkipJump, salt-and-pepper)."""
        if self.library == "transfer":
            return self.base_spec().minimisation
        return self.info.minimisation

    @property
    def one_step(self) -> bool:
        """A single gradient step (FGSM/FGM)."""
        return self.info.one_step

    @property
    def margin_loss(self) -> bool:
        """A white-box attack with a margin or DLR loss, AutoAttack included (:attr:`AttackInfo.margin_loss`).

        A transfer attack is never one, whatever its base attack: its loss is computed on the surrogate, not on the
        attacked model.
        """
        return self.library != "transfer" and self.info.margin_loss

    @property
    def cross_entropy(self) -> bool:
        """An iterative fixed-budget white-box cross-entropy attack, AutoAttack included
        (:attr:`AttackInfo.cross_entropy`); never a transfer attack."""
        return self.library != "transfer" and self.info.cross_entropy

    # -- naming and serialisation ------------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """``name`` when given, else e.g. ``"art/pgd linf eps=0.3 {max_iter=100}"`` (unique per spec)."""
        if self.name:
            return self.name
        eps = "unbounded" if self.eps is None else f"eps={self.eps:g}"
        text = f"{self.library}/{self.attack} {self.norm} {eps}"
        if self.params:
            text += " " + json.dumps(dict(self.params), sort_keys=True, separators=(",", "=")).replace(
                '"', ""
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``from_dict`` inverts it)."""
        return {
            "library": self.library,
            "attack": self.attack,
            "norm": self.norm,
            "eps": self.eps,
            "params": _json_safe(dict(self.params), "params"),
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttackSpec:
        """Build a spec from :meth:`to_dict` output (unknown keys raise ``ValueError``)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {"library", "attack", "norm", "eps", "params", "name"})
        if unknown:
            raise ValueError(f"unknown AttackSpec fields {unknown}")
        return cls(
            library=data["library"],
            attack=data["attack"],
            norm=data.get("norm", "linf"),
            eps=data.get("eps", 0.3),
            params=dict(data.get("params") or {}),
            name=data.get("name"),
        )

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))


# --------------------------------------------------------------------------------------------------------------------
# threat-model helpers
# --------------------------------------------------------------------------------------------------------------------
def perturbation_norms(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-example ``norm`` of ``x_adv - x`` (float64, shape ``(N,)``)."""
    delta = (np.asarray(x_adv, dtype=np.float64) - np.asarray(x, dtype=np.float64)).reshape(len(x), -1)
    norm = normalise_norm(norm)
    if norm == "linf":
        return np.abs(delta).max(axis=1) if delta.shape[1] else np.zeros(len(x))
    if norm == "l2":
        return np.sqrt((delta**2).sum(axis=1))
    return np.abs(delta).sum(axis=1)


def _project(x_adv: np.ndarray, x: np.ndarray, norm: str, eps: float, rows: np.ndarray) -> np.ndarray:
    """Move ``rows`` of ``x_adv`` into the ``eps``-ball around ``x`` (linf: clipping; l2/l1: radial scaling)."""
    out = x_adv.copy()
    if not rows.any():
        return out
    delta = out[rows].astype(np.float64) - x[rows]
    if norm == "linf":
        delta = np.clip(delta, -eps, eps)
    else:
        norms = perturbation_norms(out[rows], x[rows], norm)
        scale = np.minimum(1.0, eps * (1 - 1e-6) / np.maximum(norms, 1e-12))
        delta = delta * scale.reshape(-1, *([1] * (delta.ndim - 1)))
    out[rows] = np.clip(x[rows] + delta, 0.0, 1.0).astype(np.float32)
    return out


def enforce_budget(
    x_adv: np.ndarray,
    x: np.ndarray,
    *,
    norm: str,
    eps: float | None,
    minimisation: bool,
    out_of_budget: str = "clean",
) -> np.ndarray:
    """Make ``x_adv`` a valid float32 batch in ``[0, 1]`` and apply the budget policy described in the module doc.

    Rows containing NaN/Inf are replaced by the clean input (with a ``RuntimeWarning``). For a fixed-epsilon attack,
    overshoots up to ``1e-3`` relative (round-off) are projected; larger ones are kept, for the runner to flag.
    """
    x = np.asarray(x, dtype=np.float32)
    out = np.asarray(x_adv, dtype=np.float32).reshape(x.shape).copy()
    bad = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
    if bad.any():
        warnings.warn(
            f"{int(bad.sum())} adversarial examples contained NaN/Inf; their clean inputs are returned",
            RuntimeWarning,
            stacklevel=2,
        )
        out[bad] = x[bad]
    out = np.clip(out, 0.0, 1.0)
    if eps is None:
        return out
    norms = perturbation_norms(out, x, norm)
    over = norms > eps
    if not over.any():
        return out
    if minimisation:
        if out_of_budget == "clean":
            out[over] = x[over]
            return out
        return _project(out, x, norm, eps, over)
    return _project(out, x, norm, eps, over & (norms <= eps * (1 + _ROUND_OFF) + 1e-7))


# --------------------------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python, numpy and torch (CPU and CUDA) for the block, restoring the previous global RNG states after."""
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
    """Move ``models`` to ``device``, put them in eval mode and freeze their parameters (attacks only need input
    gradients); the training flags and ``requires_grad`` flags are restored on exit."""
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
    :param model: a ``nn.Module`` returning logits (already wrapped with :class:`~.eot.EoT`/:class:`~.eot.BPDA` by the
        caller when needed). It is moved to ``device``, attacked in eval mode with frozen parameters, and its
        training/``requires_grad`` flags are restored afterwards.
    :param x: images ``(N, C, H, W)`` in ``[0, 1]``; :param y: int labels ``(N,)`` (or one-hot).
    :param device: torch device for the attack (``"cpu"``, ``"cuda"``, ...).
    :param seed: seeds Python, numpy and torch (global states are restored afterwards) and the libraries' own seeds.
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
