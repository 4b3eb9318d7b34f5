"""Named attack suites: lists of :class:`~.attacks.AttackSpec` that :func:`~.runner.evaluate` runs.

Built-in suites (``get_suite(name, norm=..., eps=...)``):

* ``quick`` -- a few strong attacks, at least one per library (ART FGSM and PGD, the same PGD and ART APGD-DLR
  with 50 steps at eps/3 and 2eps/3 for the curve, Foolbox PGD, CleverHans PGD, AutoAttack with 50 APGD steps
  and 500 Square queries, ART Square with 200 queries as the gradient-free check); cheap enough for the CPU
  demo and CI (l1: CleverHans SLIDE, Foolbox salt-and-pepper and APGD-DLR at eps replace the attacks without
  an l1 version);
* ``linf`` / ``l2`` / ``l1`` -- every adapter that supports the norm, plus the same ART PGD and ART APGD-DLR
  at ``eps/4``, ``eps/2`` and ``3 eps/4`` (the robustness curve and the monotonicity check of the audit) and
  one unbounded or large-epsilon attack (the "unbounded attacks reach 0%" check of Athalye et al. 2018);
* ``autoattack`` -- AutoAttack ``standard`` (Croce & Hein 2020; the runner switches to ``rand`` for stochastic
  models);
* ``full`` -- ``linf`` + ``l2`` + ``l1``, each at its own default budget (``norm``/``eps`` override one of
  them).

Every suite, built-in or paper, has at each epsilon it reports (:func:`~.audit.reported_budgets`: every finite
budget below the audit's large-eps threshold; unbounded and large-eps attacks are sanity checks) an iterative
cross-entropy attack, a fixed-budget margin/DLR-loss attack (ART APGD-DLR or AutoAttack; Carlini et al. 2019,
App. A; Croce & Hein 2020) and, at its headline epsilon of l-inf and l2 (:func:`suite_headline`), AutoAttack.
:func:`suite_coverage_gaps` checks that rule; the smaller epsilons of ``quick`` get fewer steps, not fewer
losses.

Default budgets (:data:`DEFAULT_EPS`) are the MNIST budgets of the papers in this package: ``linf`` 0.3,
``l2`` 2.0, ``l1`` 15.0 (RBF-CNN, Nandy et al. 2020, Table V); pass ``eps`` for other datasets (e.g. 8/255 on
CIFAR-10).

Defence packages add their paper's attack settings with :func:`register_suite`. The paper suites of this
package (:data:`PAPER_SUITES`: ``paper-radial-mapping``, ``paper-fpd``, ``paper-rbf-cnn``,
``paper-manifold-reg``) are registered by their defence's ``suite`` module; :func:`get_suite` imports that
module on first use of the name, so ``get_suite("paper-fpd")`` works without importing the defence (or the
``amd`` command) first.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .attacks import NORMS, AttackSpec, normalise_norm
from .audit import reported_budgets

__all__ = [
    "DEFAULT_EPS",
    "PAPER_SUITES",
    "SuiteFactory",
    "default_eps",
    "get_suite",
    "register_paper_suite",
    "register_suite",
    "suite_coverage_gaps",
    "suite_headline",
    "suite_names",
]

#: Default budget per norm (MNIST, pixel range [0, 1]).
DEFAULT_EPS: dict[str, float] = {"linf": 0.3, "l2": 2.0, "l1": 15.0}

#: ``factory(norm=..., eps=...) -> list of AttackSpec``. For a single-norm-family suite the runner passes a
#: concrete norm and eps; for a multi-norm suite (registered with ``norms=None``) it passes what the caller
#: gave (maybe None).
SuiteFactory = Callable[..., Sequence[AttackSpec]]


@dataclass(frozen=True)
class _Suite:
    factory: SuiteFactory
    norms: tuple[str, ...] | None
    description: str
    headline: Mapping[str, float] | None = None


_SUITES: dict[str, _Suite] = {}

#: Paper suites (``amd evaluate --suite NAME``, ``get_suite(NAME)``) -> ``module:function`` that registers
#: them. The defence's module is named, not imported: the evaluation harness does not depend on any defence,
#: and a defence's ``suite`` module imports this harness (for ``AttackSpec`` and :func:`register_suite`) when
#: it registers.
PAPER_SUITES: dict[str, str] = {
    "paper-radial-mapping": "art_manifold_defenses.radial_mapping.suite:register_paper_suite",
    "paper-fpd": "art_manifold_defenses.fpd.suite:register_paper_fpd_suite",
    "paper-rbf-cnn": "art_manifold_defenses.rbf_reconstruction.suite:register_paper_suite",
    "paper-manifold-reg": "art_manifold_defenses.manifold_regularization.suite:register_paper_suite",
}


def default_eps(norm: str) -> float:
    """The default budget of ``norm`` (see :data:`DEFAULT_EPS`)."""
    return DEFAULT_EPS[normalise_norm(norm)]


def register_suite(
    name: str,
    factory: SuiteFactory,
    *,
    norms: Sequence[str] | None = NORMS,
    description: str = "",
    overwrite: bool = False,
    headline: Mapping[str, float] | None = None,
) -> None:
    """Register a named suite.

    Args:
        name: the suite name (``amd evaluate --suite NAME``).
        factory: called as ``factory(norm=norm, eps=eps)``; returns the list of ``AttackSpec``.
        norms: norms the suite supports; the first is the default. ``None`` = a multi-norm suite that handles
            ``norm``/``eps`` itself (both may be ``None``).
        description: one line shown by :func:`suite_names` users and the CLI help.
        overwrite: replace an existing suite of that name (otherwise ``ValueError``).
        headline: for a multi-norm suite, its headline budget per norm (the paper's main table); ``None`` =
            the largest reported budget of each norm (see :func:`suite_headline`). Single-norm suites ignore
            it.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory must be callable(norm=..., eps=...), got {type(factory).__name__}")
    if name in _SUITES and not overwrite:
        raise ValueError(f"suite {name!r} is already registered; pass overwrite=True to replace it")
    resolved = None if norms is None else tuple(normalise_norm(n) for n in norms)
    if resolved is not None and not resolved:
        raise ValueError("norms must name at least one norm (or be None for a multi-norm suite)")
    table = None
    if headline is not None:
        table = {normalise_norm(n): float(e) for n, e in headline.items()}
        if any(not math.isfinite(e) or e <= 0 for e in table.values()):
            raise ValueError(f"headline budgets must be finite numbers > 0, got {dict(headline)!r}")
    _SUITES[name] = _Suite(factory, resolved, description, table)


def register_paper_suite(name: str) -> None:
    """(Re-)register paper suite ``name`` of :data:`PAPER_SUITES` with its defence's settings by importing the
    defence's ``suite`` module and calling its registration function (no-op for other names).
    """
    if name in PAPER_SUITES:
        module, function = PAPER_SUITES[name].split(":")
        getattr(importlib.import_module(module), function)()


def suite_names() -> list[str]:
    """The registered suite names, sorted."""
    return sorted(_SUITES)


def _lookup(name: str) -> _Suite:
    if name not in _SUITES:
        register_paper_suite(name)  # a paper suite not registered yet: its defence module registers it
    if name not in _SUITES:
        known = sorted(set(_SUITES) | set(PAPER_SUITES))
        raise ValueError(f"unknown suite {name!r}; known suites: {known}")
    return _SUITES[name]


def get_suite(name: str, norm: str | None = None, eps: float | None = None) -> list[AttackSpec]:
    """The attacks of suite ``name`` for threat model ``norm``/``eps``.

    ``norm=None`` takes the suite's first norm; ``eps=None`` takes :data:`DEFAULT_EPS` of the norm. A name of
    :data:`PAPER_SUITES` that is not registered yet is registered first (:func:`register_paper_suite`); one
    that is registered already (by the ``amd`` command or by a caller's own
    ``register_suite(..., overwrite=True)``) is used as registered.

    Raises:
        ValueError: unknown suite (the message lists the known names), a norm the suite does not support, or a
            non-positive eps.
    """
    suite = _lookup(name)
    if eps is not None:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not float(eps) > 0:
            raise ValueError(f"eps must be a number > 0 or None, got {eps!r}")
        eps = float(eps)
    if norm is not None:
        norm = normalise_norm(norm)
    if suite.norms is None:
        specs = list(suite.factory(norm=norm, eps=eps))
    else:
        if norm is None:
            norm = suite.norms[0]
        if norm not in suite.norms:
            raise ValueError(f"suite {name!r} supports norms {list(suite.norms)}, got {norm!r}")
        specs = list(suite.factory(norm=norm, eps=default_eps(norm) if eps is None else eps))
    for spec in specs:
        if not isinstance(spec, AttackSpec):
            raise TypeError(f"suite {name!r} returned a {type(spec).__name__}, expected AttackSpec")
    return specs


def suite_headline(name: str, norm: str | None = None, eps: float | None = None) -> dict[str, float]:
    """The headline budget per norm of suite ``name`` for the same ``norm``/``eps`` as :func:`get_suite`."""
    suite = _lookup(name)
    specs = get_suite(name, norm=norm, eps=eps)
    budgets = reported_budgets(specs)
    if suite.norms is not None:
        family = suite.norms[0] if norm is None else normalise_norm(norm)
        return {family: default_eps(family) if eps is None else float(eps)}
    table = dict(suite.headline) if suite.headline is not None else {n: b[-1] for n, b in budgets.items()}
    if norm is not None and eps is not None:
        table[normalise_norm(norm)] = float(eps)
    return {n: e for n, e in table.items() if n in budgets}


def suite_coverage_gaps(specs: Sequence[AttackSpec], headline: Mapping[str, float]) -> list[str]:
    """What ``specs`` lack of the suites' rule, one sentence per gap (empty = complete).

    Carlini et al. 2019, App. A and Croce & Hein 2020 (use a margin loss and AutoAttack besides cross-entropy
    PGD); At each reported epsilon of each norm (:func:`~.audit.reported_budgets`: unbounded and large-eps
    attacks are sanity checks, not reported budgets) the suite needs a fixed-budget attack at that epsilon
    with :attr:`~.attacks.AttackSpec.cross_entropy` and one with :attr:`~.attacks.AttackSpec.margin_loss` (a
    minimisation attack does not count here, though the audit accepts it); at ``headline[norm]`` for l-inf and
    l2, an AutoAttack spec (any version: the runner makes ``standard`` ``rand`` for a stochastic model).
    Transfer attacks count as neither.
    """
    gaps: list[str] = []
    for family, budgets in reported_budgets(specs).items():
        for eps in budgets:
            at = [
                s
                for s in specs
                if s.norm == family and s.eps is not None and math.isclose(s.eps, eps, rel_tol=1e-9)
            ]
            if not any(s.cross_entropy for s in at):
                gaps.append(
                    f"{family} eps {eps:g}: no iterative cross-entropy attack (PGD, APGD-CE, AutoAttack)"
                )
            if not any(s.margin_loss and not s.minimisation for s in at):
                gaps.append(
                    f"{family} eps {eps:g}: no fixed-budget margin-loss attack (APGD-DLR, AutoAttack)"
                )
        head = headline.get(family)
        if family in ("linf", "l2") and head is not None:
            if not any(
                s.library == "autoattack"
                and s.norm == family
                and s.eps is not None
                and math.isclose(s.eps, head)
                for s in specs
            ):
                gaps.append(f"{family} headline eps {head:g}: no AutoAttack")
    return gaps


# ------------------------------------------------------------------------------------------------------------
# built-in suites
# ------------------------------------------------------------------------------------------------------------
_SWEEP = (0.25, 0.5, 0.75)


def _pgd_sweep(norm: str, eps: float, params: dict[str, Any]) -> list[AttackSpec]:
    """The same ART PGD (cross-entropy) and ART APGD-DLR (margin loss, the registry's defaults, as at ``eps``)
    at eps/4, eps/2, 3eps/4 (robustness curve, monotonicity check)."""
    return [AttackSpec("art", "pgd", norm, eps * f, params) for f in _SWEEP] + [
        AttackSpec("art", "apgd-dlr", norm, eps * f) for f in _SWEEP
    ]


#: APGD-DLR of the quick suite: 50 steps (AutoAttack's quick setting), one restart.
_QUICK_APGD: dict[str, Any] = {"max_iter": 50}


def _quick(*, norm: str, eps: float) -> list[AttackSpec]:
    pgd = {"max_iter": 40}
    curve = [eps * f for f in (1 / 3, 2 / 3)]
    specs = [
        AttackSpec("art", "fgsm" if norm == "linf" else "fgm", norm, eps),
        AttackSpec("art", "pgd", norm, eps, pgd),
        *[AttackSpec("art", "pgd", norm, e, pgd) for e in curve],
        # the margin-loss twin of the curve's PGD: half APGD's default steps keeps the suite cheap, not fewer
        # losses
        *[AttackSpec("art", "apgd-dlr", norm, e, _QUICK_APGD) for e in curve],
        AttackSpec("foolbox", "pgd", norm, eps, {"steps": 40}),
    ]
    if norm in ("linf", "l2"):
        specs += [
            AttackSpec("cleverhans", "pgd", norm, eps, {"nb_iter": 40}),
            AttackSpec("autoattack", "standard", norm, eps, {"steps": 50, "n_queries": 500}),
            AttackSpec("art", "square", norm, eps, {"max_iter": 200}),
        ]
    else:
        specs += [
            AttackSpec("cleverhans", "sparse-l1", norm, eps),
            AttackSpec("foolbox", "salt-pepper", norm, eps),
            AttackSpec("art", "apgd-dlr", norm, eps, _QUICK_APGD),  # no l1 AutoAttack: the margin loss at eps
        ]
    return specs


def _linf(*, norm: str, eps: float) -> list[AttackSpec]:
    pgd = {"max_iter": 100}
    return [
        AttackSpec("art", "fgsm", "linf", eps),
        AttackSpec("art", "bim", "linf", eps),
        AttackSpec("art", "pgd", "linf", eps, pgd),
        AttackSpec("art", "pgd", "linf", eps, {"max_iter": 100, "num_random_init": 5}),
        AttackSpec("art", "mim", "linf", eps),
        AttackSpec("art", "apgd-ce", "linf", eps),
        AttackSpec("art", "apgd-dlr", "linf", eps),
        AttackSpec("art", "cw", "linf", eps),
        AttackSpec("art", "square", "linf", eps),
        AttackSpec("art", "hsj", "linf", eps),
        AttackSpec("foolbox", "fgsm", "linf", eps),
        AttackSpec("foolbox", "pgd", "linf", eps, {"steps": 100}),
        AttackSpec("foolbox", "mifgsm", "linf", eps),
        AttackSpec("foolbox", "deepfool", "linf", eps),
        AttackSpec("foolbox", "hsj", "linf", eps),
        AttackSpec("foolbox", "uniform-noise", "linf", eps),
        AttackSpec("cleverhans", "fgm", "linf", eps),
        AttackSpec("cleverhans", "pgd", "linf", eps, {"nb_iter": 100}),
        AttackSpec("cleverhans", "spsa", "linf", eps),
        AttackSpec("cleverhans", "hsj", "linf", eps),
        AttackSpec("autoattack", "standard", "linf", eps),
        *_pgd_sweep("linf", eps, pgd),
        AttackSpec("art", "pgd", "linf", max(1.0, eps), pgd, name="art/pgd linf large-eps check"),
    ]


def _l2(*, norm: str, eps: float) -> list[AttackSpec]:
    pgd = {"max_iter": 100}
    return [
        AttackSpec("art", "fgm", "l2", eps),
        AttackSpec("art", "pgd", "l2", eps, pgd),
        AttackSpec("art", "mim", "l2", eps),
        AttackSpec("art", "apgd-ce", "l2", eps),
        AttackSpec("art", "apgd-dlr", "l2", eps),
        AttackSpec("art", "cw", "l2", eps),
        AttackSpec("art", "deepfool", "l2", eps),
        AttackSpec("art", "square", "l2", eps),
        AttackSpec("art", "boundary", "l2", eps),
        AttackSpec("art", "hsj", "l2", eps),
        AttackSpec("foolbox", "fgm", "l2", eps),
        AttackSpec("foolbox", "pgd", "l2", eps, {"steps": 100}),
        AttackSpec("foolbox", "mifgsm", "l2", eps),
        AttackSpec("foolbox", "cw", "l2", eps),
        AttackSpec("foolbox", "deepfool", "l2", eps),
        AttackSpec("foolbox", "hsj", "l2", eps),
        AttackSpec("foolbox", "gaussian-noise", "l2", eps),
        AttackSpec("cleverhans", "fgm", "l2", eps),
        AttackSpec("cleverhans", "pgd", "l2", eps, {"nb_iter": 100}),
        AttackSpec("cleverhans", "cw", "l2", eps),
        AttackSpec("cleverhans", "hsj", "l2", eps),
        AttackSpec("autoattack", "standard", "l2", eps),
        *_pgd_sweep("l2", eps, pgd),
        AttackSpec("art", "cw", "l2", None, name="art/cw l2 unbounded"),
    ]


def _l1(*, norm: str, eps: float) -> list[AttackSpec]:
    pgd = {"max_iter": 100}
    return [
        AttackSpec("art", "fgm", "l1", eps),
        AttackSpec("art", "pgd", "l1", eps, pgd),
        AttackSpec("art", "mim", "l1", eps),
        AttackSpec("art", "apgd-ce", "l1", eps),
        AttackSpec("art", "apgd-dlr", "l1", eps),
        AttackSpec("art", "ead", "l1", eps),
        AttackSpec("foolbox", "fgm", "l1", eps),
        AttackSpec("foolbox", "pgd", "l1", eps, {"steps": 100}),
        AttackSpec("foolbox", "mifgsm", "l1", eps),
        AttackSpec("foolbox", "ead", "l1", eps),
        AttackSpec("foolbox", "salt-pepper", "l1", eps),
        AttackSpec("cleverhans", "fgm", "l1", eps),
        AttackSpec("cleverhans", "sparse-l1", "l1", eps),
        *_pgd_sweep("l1", eps, pgd),
        AttackSpec("art", "ead", "l1", None, name="art/ead l1 unbounded"),
    ]


def _autoattack(*, norm: str, eps: float) -> list[AttackSpec]:
    return [AttackSpec("autoattack", "standard", norm, eps)]


def _full(*, norm: str | None, eps: float | None) -> list[AttackSpec]:
    if eps is not None and norm is None:
        raise ValueError(
            "suite 'full' covers linf, l2 and l1: pass norm= together with eps= to change one budget"
        )
    specs: list[AttackSpec] = []
    for family, factory in (("linf", _linf), ("l2", _l2), ("l1", _l1)):
        budget = eps if (family == norm and eps is not None) else DEFAULT_EPS[family]
        specs += factory(norm=family, eps=budget)
    return specs


register_suite(
    "quick",
    _quick,
    norms=("linf", "l2", "l1"),
    description="a few strong attacks, one per library (CPU demo, CI)",
)
register_suite(
    "linf", _linf, norms=("linf",), description="every linf adapter, an eps sweep and a large-eps check"
)
register_suite("l2", _l2, norms=("l2",), description="every l2 adapter, an eps sweep and an unbounded C&W")
register_suite("l1", _l1, norms=("l1",), description="every l1 adapter, an eps sweep and an unbounded EAD")
register_suite(
    "autoattack",
    _autoattack,
    norms=("linf", "l2"),
    description="AutoAttack standard (rand for stochastic models)",
)
register_suite(
    "full",
    _full,
    norms=None,
    description="linf + l2 + l1 suites at their default budgets",
    headline=DEFAULT_EPS,
)
