"""Honest, uniform evaluation of any PyTorch model or ART classifier with the attacks of ART, Foolbox 3,
CleverHans 4 and AutoAttack (torchattacks).

Typical use::

    from art_manifold_defenses.evaluation import AttackSpec, evaluate, get_suite

    result = evaluate(model, x_test[:500], y_test[:500], "quick", device="cpu", out_dir="eval-out")
    print(result.clean_accuracy, result.robust_accuracy, [f.code for f in result.audit_flags])

* :class:`AttackSpec` / :func:`run_attack` -- one attack of one library (``attacks.py`` and the adapters);
* :class:`EoT` / :class:`BPDA` -- adaptive-attack wrappers (``eot.py``);
* :func:`evaluate` -- the runner: per-point worst case, threat-model checks, EoT/BPDA wiring, resume
  (``runner.py``);
* :class:`EvaluationResult` / :class:`AttackResult` -- what it measured and the ``results.json`` record
  (``results.py``);
* :func:`audit` -- the gradient-masking checks of Athalye et al. 2018 and Carlini et al. 2019 (``audit.py``);
* :func:`write_report` -- ``results.json``, ``results.md``, ``curves.png`` (``report.py``);
* :func:`get_suite` / :func:`register_suite` / :func:`suite_names` -- named suites, the papers' suites
  included (``get_suite("paper-fpd")``; ``suites.py``).
"""

from .attacks import ATTACKS, AttackSpec, run_attack
from .audit import AuditFlag, audit, measure_determinism, measure_gradients
from .eot import BPDA, EoT
from .report import (
    load_results,
    markdown_table,
    plot_robustness_curves,
    recompute_robust_accuracy,
    write_report,
)
from .runner import (
    DEFAULT_EOT_SAMPLES,
    DEFAULT_REPEATS,
    DEFAULT_VOTES,
    AttackResult,
    EvaluationResult,
    evaluate,
    threat_model_violations,
    worst_case,
)
from .suites import DEFAULT_EPS, get_suite, register_suite, suite_names

__all__ = [
    "ATTACKS",
    "AttackResult",
    "AttackSpec",
    "AuditFlag",
    "BPDA",
    "DEFAULT_EOT_SAMPLES",
    "DEFAULT_EPS",
    "DEFAULT_REPEATS",
    "DEFAULT_VOTES",
    "EoT",
    "EvaluationResult",
    "audit",
    "evaluate",
    "get_suite",
    "load_results",
    "markdown_table",
    "measure_determinism",
    "measure_gradients",
    "plot_robustness_curves",
    "recompute_robust_accuracy",
    "register_suite",
    "run_attack",
    "suite_names",
    "threat_model_violations",
    "worst_case",
    "write_report",
]
