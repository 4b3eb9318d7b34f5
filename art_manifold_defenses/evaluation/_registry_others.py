"""The Foolbox 3, CleverHans 4, AutoAttack (torchattacks) and transfer entries of the attack registry
(:data:`OTHER_ATTACKS`, in registry order), run by ``adapters_foolbox``, ``adapters_cleverhans``,
``adapters_autoattack`` and :func:`~.attacks.run_attack` itself (transfer). Data only; :mod:`.attack_registry`
merges it into ``ATTACKS`` after the ART entries.
"""

from __future__ import annotations

from ._attack_info import _ALL, _LINF_L2, AttackInfo, Registrar

__all__ = ["OTHER_ATTACKS"]

OTHER_ATTACKS: dict[tuple[str, str], AttackInfo] = {}
_register = Registrar(OTHER_ATTACKS)

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
