"""The registry of supported attacks: :data:`ATTACKS` maps every ``(library, attack)`` pair of ART, Foolbox 3,
CleverHans 4, AutoAttack (torchattacks) and the transfer attack to its :class:`AttackInfo` -- norms, kind
(gradient-based, score-based, decision-based, noise, transfer, ensemble), the loss it optimises
(:data:`LOSSES`), its default parameters and a description citing its paper. Data only; :mod:`.attacks`
validates specs against it and runs them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["ATTACKS", "AttackInfo", "KINDS", "LIBRARIES", "LOSSES", "NORMS", "normalise_norm"]

LIBRARIES = ("art", "foolbox", "cleverhans", "autoattack", "transfer")
NORMS = ("linf", "l2", "l1")
KINDS = ("gradient", "score", "decision", "noise", "transfer", "ensemble")
_BLACK_BOX_KINDS = frozenset({"score", "decision", "noise", "transfer"})
_WHITE_BOX_KINDS = frozenset({"gradient", "ensemble"})
#: The objectives an attack of the registry can optimise (``AttackInfo.loss``; ``None`` = no loss).
LOSSES = ("cross-entropy", "margin", "dlr", "ensemble")
#: Losses that count as a margin loss for :attr:`AttackInfo.margin_loss` (AutoAttack's ensemble contains
#: APGD-DLR).
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
#: Relative tolerance under which a fixed-epsilon attack's overshoot is treated as round-off and projected
#: back.
_ROUND_OFF = 1e-3


# ------------------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AttackInfo:
    """One supported ``(library, attack)`` pair.

    :param norms: threat models the adapter supports.
    :param kind: ``"gradient"`` (white-box), ``"score"`` (queries logits), ``"decision"`` (queries labels),
        ``"noise"`` (random search), ``"transfer"`` (crafted on a surrogate) or ``"ensemble"`` (AutoAttack).
    :param minimisation: the attack minimises the perturbation instead of working in a fixed ball.
    :param one_step: a single-step attack (FGSM/FGM).
    :param defaults: default parameters per norm (library keyword arguments; ``None`` = derived from ``eps``
    or the
        step count, as the description says).
    :param description: the attack, its reference and how derived defaults are computed.
    :param loss: the objective the attack optimises, one of :data:`LOSSES`: ``"cross-entropy"``, ``"margin"``
    (the
        C&W logit margin ``max_{j != y} z_j - z_y``, or a variant of it: C&W, EAD, Square, SPSA), ``"dlr"``
        (the difference-of-logits ratio of APGD-DLR, a scale-invariant margin), ``"ensemble"`` (AutoAttack:
        APGD-CE plus APGD-DLR or targeted DLR, so both a cross-entropy and a margin loss) or ``None`` (no
        loss: noise, decision-based search, DeepFool's linearised boundary step, transfer).
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
        equation. True for gradient-based attacks with loss ``"margin"`` or ``"dlr"`` (C&W, EAD, APGD-DLR) and
        for AutoAttack (loss ``"ensemble"``, which contains APGD-DLR or APGD-T). Gradient-free attacks
        (Square, SPSA) use a margin too but do not count: they are the gradient-free checks, not the strongest
        white-box attack.
        """
        return self.kind in _WHITE_BOX_KINDS and self.loss in _MARGIN_LOSSES

    @property
    def cross_entropy(self) -> bool:
        """An iterative white-box attack that maximises the cross-entropy in a fixed ball (PGD, BIM, MIM,
        APGD-CE, SLIDE) or AutoAttack (its first attack is APGD-CE); one-step and minimisation attacks do not
        count."""
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
        """Defaults for ``norm`` updated with ``params``; unknown names raise ``ValueError`` listing the valid
        ones."""
        resolved = self.defaults_for(norm)
        valid = set(resolved)
        if self.minimisation:
            valid.add("out_of_budget")
            resolved.setdefault("out_of_budget", "clean")
        unknown = sorted(set(params) - valid)
        if unknown:
            raise ValueError(
                f"unknown params {unknown} for {self.library}/{self.attack} ({norm}); valid params: "
                f"{sorted(valid)}"
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

# ART 1.20 (art.attacks.evasion)
# -------------------------------------------------------------------------------------
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
    "MomentumIterativeMethod (Dong et al. 2018, Alg. 1: mu=1, T=10, step eps/T); eps_step=None -> "
    "eps/max_iter.",
    {"max_iter": 10, "eps_step": None, "decay": 1.0},
    loss="cross-entropy",
)
_register(
    "art",
    "cw",
    ("l2", "linf"),
    "gradient",
    "CarliniL2Method / CarliniLInfMethod (Carlini & Wagner 2017), minimisation. ART's defaults (lr=0.01, "
    "10 iterations) found no adversarial on a small MNIST CNN; lr=0.1 does. CarliniLInfMethod loops per "
    "image "
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

# Foolbox 3.3 (foolbox.attacks)
# --------------------------------------------------------------------------------------
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
    "L1/L2/Linf MomentumIterativeFastGradientMethod (Dong et al. 2018: mu=1, T=10); rel_stepsize=None -> "
    "1/steps.",
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

# CleverHans 4 (cleverhans.torch.attacks)
# ----------------------------------------------------------------------------
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
    "projected_gradient_descent (Madry et al. 2018); eps_iter=None -> 2.5*eps/nb_iter; restarts keep the "
    "first "
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
    "hop_skip_jump_attack (Chen et al. 2020; constraint from the norm), minimisation; only correctly "
    "classified "
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

# AutoAttack (torchattacks 3.5)
# --------------------------------------------------------------------------------------
_register(
    "autoattack",
    "standard",
    _LINF_L2,
    "ensemble",
    "AutoAttack standard (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T, Square; steps=100 and n_queries=5000 "
    "as in "
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

# Transfer
# ----------------------------------------------------------------------------------------------------------
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
    """``"linf"``, ``"l2"`` or ``"l1"`` from the usual spellings (``np.inf``, ``2``, ``"Linf"``,
    ``"inf"``...)."""
    if isinstance(norm, (int, float)) and not isinstance(norm, bool):
        key = "linf" if math.isinf(norm) else str(float(norm))
    elif isinstance(norm, str):
        key = norm.strip().lower()
    else:
        raise TypeError(f"norm must be a string such as 'linf', 'l2' or 'l1', got {type(norm).__name__}")
    if key not in _NORM_ALIASES:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    return _NORM_ALIASES[key]
