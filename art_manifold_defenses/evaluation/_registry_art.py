"""The ART entries of the attack registry (:data:`ART_ATTACKS`, in registry order): the evasion attacks of
ART 1.20 that :mod:`.adapters_art` runs. Data only; :mod:`.attack_registry` merges it into ``ATTACKS``.
"""

from __future__ import annotations

from ._attack_info import _ALL, _LINF_L2, AttackInfo, Registrar

__all__ = ["ART_ATTACKS"]

ART_ATTACKS: dict[tuple[str, str], AttackInfo] = {}
_register = Registrar(ART_ATTACKS)

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
