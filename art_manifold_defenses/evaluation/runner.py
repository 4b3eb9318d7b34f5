"""The evaluation runner: clean accuracy, accuracy per attack, per-point worst case, threat-model checks,
resume.

:func:`evaluate` attacks one model with a suite of
:class:`~art_manifold_defenses.evaluation.attacks.AttackSpec` and returns an :class:`EvaluationResult`. What
makes it honest (Carlini et al. 2019, "On Evaluating Adversarial Robustness",
https://arxiv.org/abs/1902.06705; Athalye et al. 2018, https://arxiv.org/abs/1802.00420):

* **robust accuracy is the per-point worst case**: a point counts as robust only if it is classified correctly
  clean and under every attack of the suite, never an average over attacks;
* **every adversarial example is checked against its threat model** (finite, inside ``[0, 1]`` within
  ``1e-6``, and ``||x_adv - x|| <= eps + 1e-5`` in the attack's norm): a violating example is discarded, the
  point is scored on its clean input and the attack is flagged;
* **adaptive attacks**: a model with ``stochastic = True`` is attacked through :class:`~.eot.EoT`
  (``eot_samples`` passes, default :data:`DEFAULT_EOT_SAMPLES`) by gradient-based attacks, scored by majority
  vote of ``votes`` passes (default :data:`DEFAULT_VOTES`) and the worst of ``repeats`` independent attack
  runs (default :data:`DEFAULT_REPEATS`); a model with a ``bpda_surrogate`` module is attacked through
  :class:`~.eot.BPDA` by gradient-based attacks; AutoAttack ``standard`` becomes ``rand`` for a stochastic
  model (``rand`` runs its own EoT, so it is not wrapped again);
* the gradient-masking audit (:mod:`.audit`) runs on the results;
* results are written attack by attack to ``out_dir/attacks/*.json`` with per-point correctness, so an
  interrupted run resumes (finished attacks are skipped when model, data and settings match) and the worst
  case can be recomputed.

Only points classified correctly on the clean input are attacked (the others cannot be robust), as in
AutoAttack. Reproducibility: the evaluation set is cut into batches ``b`` of ``batch_size`` consecutive
images; the clean scoring of batch ``b`` is seeded from ``(seed, b)`` and every attack run on it from
``(seed, attack settings, repeat, b)`` (libraries draw random starts for a whole batch from the global
generator, so a per-image seed is impossible), so the result depends neither on the order of the suite nor on
how many processes share the work, only on ``batch_size``. ``evaluate`` re-seeds torch's global generator.

Scale-out: when ``torch.distributed`` is initialised with several processes (``torchrun``, see
:mod:`art_manifold_defenses.distributed`), the batches are dealt round-robin over the ranks, each rank saves
every finished batch to ``out_dir/attacks/<attack>/batch-*.json`` (resume loses at most the batch in progress)
and rank 0 merges them into the same ``attacks/*.json``, ``results.json`` and report a single process writes
(the audit runs on rank 0); every rank returns the merged :class:`EvaluationResult`.

Known limitations: majority-vote scoring of a stochastic model costs ``votes`` forwards per point and attack;
gradient-free attacks query a stochastic model directly (without EoT); an attack that raises is recorded
(``error``), flagged by the audit and left out of the worst case rather than stopping the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..fingerprint import (
    arrays_hash,
    make_fingerprint,
)
from ..utils import (
    as_float_tensor,
    check_images,
    check_labels,
    forward_checked,
    resolve_device,
    set_seed,
)
from .attacks import ATTACKS, AttackSpec, perturbation_norms, run_attack
from .audit import AuditFlag, audit, measure_determinism, measure_gradients
from .eot import BPDA, EoT
from .estimate import report_evaluation_estimate
from .results import AttackResult, EvaluationResult, worst_case
from .storage import (
    _attack_path,
    _batch_path,
    _check_out_dir,
    _clear_out_dir,
    _load_finished,
    _load_part,
    _part_to_dict,
    _remove_parts,
    _save_attack,
    _save_part,
)

__all__ = [
    "AttackResult",
    "DEFAULT_EOT_SAMPLES",
    "DEFAULT_REPEATS",
    "DEFAULT_VOTES",
    "EvaluationResult",
    "NORM_TOLERANCE",
    "evaluate",
    "threat_model_violations",
    "worst_case",
]

#: EoT passes per gradient evaluation for a stochastic model (Athalye et al. 2018 use tens of samples).
DEFAULT_EOT_SAMPLES = 16
#: Stochastic passes whose majority vote scores one input of a stochastic model.
DEFAULT_VOTES = 9
#: Independent attack runs on a stochastic model; a point is robust only if it survives all of them.
DEFAULT_REPEATS = 3
#: Slack allowed on ``||x_adv - x|| <= eps`` (float32 rounding of projections).
NORM_TOLERANCE = 1e-5
#: Slack allowed on the box ``[0, 1]``.
BOX_TOLERANCE = 1e-6


AttackFunction = Callable[..., np.ndarray]


# ------------------------------------------------------------------------------------------------------------
# pure helpers (tested directly)
# ------------------------------------------------------------------------------------------------------------
def threat_model_violations(x: np.ndarray, x_adv: np.ndarray, norm: str, eps: float | None) -> np.ndarray:
    """Per point: True when ``x_adv`` is non-finite, leaves ``[0, 1]`` (by more than ``1e-6``) or is farther
    than ``eps + 1e-5`` from ``x`` (``eps=None``: unbounded, only the box is checked).

    Checks every adversarial example against its threat model, as Carlini et al. 2019 ("On Evaluating
    Adversarial Robustness") ask.
    """
    x = np.asarray(x)
    if np.shape(x_adv) != x.shape:
        raise ValueError(f"x_adv has shape {np.shape(x_adv)}, expected the shape of x {x.shape}")
    flat = np.asarray(x_adv, dtype=np.float64).reshape(len(x), -1)
    bad = np.asarray(~np.isfinite(flat).all(axis=1), dtype=bool)
    safe = np.where(np.isfinite(flat), flat, 0.5)
    bad |= (safe < -BOX_TOLERANCE).any(axis=1) | (safe > 1 + BOX_TOLERANCE).any(axis=1)
    if eps is not None:
        norms = perturbation_norms(np.where(np.isfinite(flat), flat, 0.0).reshape(x.shape), x, norm)
        bad |= norms > float(eps) + NORM_TOLERANCE
    return np.asarray(bad, dtype=bool)


def _stable_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed from ``(seed, *parts)``: the low bits of
    :func:`~art_manifold_defenses.distributed.derive_seed`."""
    from ..distributed import derive_seed

    return derive_seed(seed, *parts) & 0x7FFFFFFF


def _run_seed(seed: int, spec: Any, repeat: int, batch_index: int) -> int:
    """Seed of repeat ``repeat`` of attack ``spec`` on batch ``batch_index``: a function of these alone, so a
    batch gets the same seed whichever process attacks it and whatever the order of the suite."""
    return _stable_seed(seed, spec.to_dict(), repeat, "batch", batch_index)


def _fingerprint_arrays(*arrays: np.ndarray) -> str:
    return arrays_hash(*arrays, algorithm="sha1")  # sha1: the resume files of earlier versions stay valid


def _fingerprint_model(model: nn.Module) -> str:
    h = hashlib.sha1(type(model).__name__.encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(
            tensor.detach().cpu().contiguous().numpy().tobytes()
            if tensor.dtype != torch.bfloat16
            else tensor.float().cpu().numpy().tobytes()
        )
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------------------
# model handling
# ------------------------------------------------------------------------------------------------------------
def _as_module(model: Any, name: str) -> nn.Module:
    """A plain ``nn.Module`` for ``model`` (an ``nn.Module`` or an ART ``PyTorchClassifier``)."""
    if isinstance(model, nn.Module):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module):
        if getattr(model, "preprocessing_operations", None):
            from ..estimator import ClassifierModule

            return ClassifierModule(model, fit=False, name=name)
        return inner
    raise TypeError(
        f"{name} must be a torch.nn.Module or an ART PyTorchClassifier, got {type(model).__name__}"
    )


def _attribute(model: nn.Module, name: str, default: Any) -> Any:
    """Read a harness attribute from the model or from the module a thin wrapper (Float32Input, ART) holds."""
    frontier: list[Any] = [model]
    for _ in range(4):  # the model itself, then up to three levels of thin wrappers
        for candidate in frontier:
            if hasattr(candidate, name):
                return getattr(candidate, name)
        frontier = [
            inner
            for c in frontier
            for inner in (getattr(c, "module", None), getattr(c, "net", None))
            if isinstance(inner, nn.Module)
        ]
    return default


def _model_name(module: nn.Module) -> str:
    inner = getattr(module, "module", None)
    if type(module).__name__ == "Float32Input" and isinstance(inner, nn.Module):
        return type(inner).__name__
    return type(module).__name__


@torch.no_grad()
def _predict_classes(model: nn.Module, x: np.ndarray, *, device: torch.device, batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(x), batch_size):
        out.append(
            model(as_float_tensor(x[start : start + batch_size], device)).float().argmax(1).cpu().numpy()
        )
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _score(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    votes: int,
    seed: int,
    device: torch.device,
    batch_size: int,
    num_classes: int,
) -> np.ndarray:
    """Per point: correct by one pass (``votes == 1``) or by strict majority of ``votes`` stochastic passes
    (the true class must get more votes than any other class; a tie counts as wrong)."""
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    set_seed(seed)
    if votes == 1:
        return np.asarray(_predict_classes(model, x, device=device, batch_size=batch_size) == y, dtype=bool)
    counts = np.zeros((len(x), num_classes), dtype=np.int64)
    for _ in range(votes):
        pred = _predict_classes(model, x, device=device, batch_size=batch_size)
        counts[np.arange(len(x)), pred] += 1
    true_votes = counts[np.arange(len(x)), y]
    counts[np.arange(len(x)), y] = -1
    return np.asarray(true_votes > counts.max(axis=1), dtype=bool)


# ------------------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------------------
def _check_count(name: str, value: Any, minimum: int = 1, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}{' or None' if allow_none else ''}, got {value!r}"
        )
    return int(value)


def _resolve_suite(suite: Any, norm: str | None, eps: float | None) -> list[Any]:
    if isinstance(suite, str):
        from .suites import get_suite

        specs: list[Any] = list(get_suite(suite, norm=norm, eps=eps))
    elif isinstance(suite, AttackSpec):
        specs = [suite]
    elif isinstance(suite, Sequence) and not isinstance(suite, (bytes, bytearray)):
        specs = [
            s if isinstance(s, AttackSpec) else AttackSpec.from_dict(s) if isinstance(s, Mapping) else s
            for s in suite
        ]
        for s in specs:
            if not isinstance(s, AttackSpec):
                raise TypeError(f"suite entries must be AttackSpec or dicts, got {type(s).__name__}")
    else:
        raise TypeError(
            f"suite must be a suite name, an AttackSpec or a list of them, got {type(suite).__name__}"
        )
    if not specs:
        raise ValueError("suite is empty: give at least one AttackSpec")
    labels = [s.label for s in specs]
    duplicates = sorted({lab for lab in labels if labels.count(lab) > 1})
    if duplicates:
        raise ValueError(f"suite has duplicate attack labels {duplicates}; give them distinct `name`s")
    return specs


def _batch(b: int, batch_size: int) -> slice:
    """Positions of batch ``b`` of the evaluation set: ``[b * batch_size, (b + 1) * batch_size)``."""
    return slice(b * batch_size, (b + 1) * batch_size)


def _merge_clean(gathered: list[Any] | None, n: int, batch_size: int) -> np.ndarray:
    assert gathered is not None
    clean = np.zeros(n, dtype=bool)
    for parts in gathered:
        for b, ok in parts.items():
            clean[_batch(int(b), batch_size)] = ok
    return clean


def _merge_parts(
    plan: _Plan,
    gathered: Sequence[Mapping[int, Mapping[str, Any]]],
    clean_correct: np.ndarray,
    *,
    repeats: int,
) -> AttackResult:
    """The attack result over the whole evaluation set from the per-batch parts of every rank."""
    parts = {int(b): p for per_rank in gathered for b, p in per_rank.items()}
    errors = [p["error"] for _, p in sorted(parts.items()) if "error" in p]
    if errors:
        return AttackResult(
            spec=plan.spec,
            correct=clean_correct.copy(),
            seconds=0.0,
            norms=np.full(len(clean_correct), math.nan),
            note=plan.note,
            error=str(errors[0]),
        )
    ordered = [parts[b] for b in sorted(parts)]
    correct = (
        np.concatenate([np.asarray(p["correct"], dtype=bool) for p in ordered])
        if ordered
        else clean_correct.copy()
    )
    norms = np.array(
        [math.nan if v is None else float(v) for p in ordered for v in p["norms"]], dtype=np.float64
    )
    if len(correct) != len(clean_correct) or len(norms) != len(clean_correct):
        raise RuntimeError(
            f"{plan.spec.label}: merged {len(correct)} of {len(clean_correct)} points (a batch is missing)"
        )
    violations = sorted(int(i) for p in ordered for i in p["violation_indices"])
    return AttackResult(
        spec=plan.spec,
        correct=correct,
        seconds=float(sum(p["seconds"] for p in ordered)),
        norms=norms,
        violations=len(violations),
        violation_indices=violations,
        repeats=repeats,
        eot_samples=plan.eot_samples,
        bpda=plan.bpda,
        attacked=int(sum(p["attacked"] for p in ordered)),
        note=plan.note,
    )


# ------------------------------------------------------------------------------------------------------------
# the runner
# ------------------------------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import importlib.metadata as md

    from .._version import __version__

    versions = {"art_manifold_defenses": __version__}
    for key, dist in (
        ("torch", "torch"),
        ("art", "adversarial-robustness-toolbox"),
        ("foolbox", "foolbox"),
        ("cleverhans", "cleverhans"),
        ("torchattacks", "torchattacks"),
        ("numpy", "numpy"),
    ):
        try:
            versions[key] = md.version(dist)
        except md.PackageNotFoundError:
            versions[key] = "not installed"
    return versions


@dataclass
class _Plan:
    spec: Any
    attacked_model: nn.Module
    eot_samples: int | None
    bpda: bool
    note: str | None


def _plan(
    spec: Any, model: nn.Module, *, stochastic: bool, surrogate: nn.Module | None, eot_samples: int
) -> _Plan:
    note = None
    if stochastic and spec.library == "autoattack" and spec.attack == "standard":
        accepted = ATTACKS[("autoattack", "rand")].defaults_for(spec.norm)
        dropped = sorted(k for k in spec.params if k not in accepted)
        params = {k: v for k, v in spec.params.items() if k in accepted}
        if "eot_iter" in accepted and "eot_iter" not in params and eot_samples > 1:
            params["eot_iter"] = eot_samples  # the same EoT budget as every other gradient attack of the run
        spec = dataclasses.replace(spec, attack="rand", params=params)
        note = (
            "AutoAttack 'standard' replaced by 'rand' (EoT version, eot_iter "
            f"{params.get('eot_iter', 'default')}) "
            "for a stochastic model"
        )
        if dropped:
            note += f"; parameters without a 'rand' counterpart dropped: {dropped}"
    own_eot = spec.library == "autoattack" and spec.attack == "rand"
    gradient_based = not spec.gradient_free and spec.library != "transfer"
    attacked: nn.Module = model
    bpda = surrogate is not None and gradient_based
    if bpda:
        attacked = BPDA(attacked, surrogate)
    use_eot = stochastic and gradient_based and not own_eot and eot_samples > 1
    if use_eot:
        attacked = EoT(attacked, samples=eot_samples)
    return _Plan(spec, attacked.eval(), eot_samples if use_eot else None, bpda, note)


def _run_one(
    plan: _Plan,
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    clean_correct: np.ndarray,
    *,
    attack_fn: AttackFunction,
    seed: int,
    repeats: int,
    votes: int,
    device: torch.device,
    batch_size: int,
    num_classes: int,
    surrogate_model: nn.Module | None,
    verbose: bool,
    batch_index: int = 0,
) -> AttackResult:
    """Attack the clean-correct points of one batch of the evaluation set (batch ``batch_index``), ``repeats``
    times; repeat ``r`` is seeded from ``(seed, spec, r, batch_index)`` (:func:`_run_seed`)."""
    spec = plan.spec
    n = len(x)
    index = np.flatnonzero(clean_correct)
    correct = clean_correct.copy()
    norms = np.full(n, math.nan)
    violation_set: set[int] = set()
    started = time.perf_counter()
    for repeat in range(repeats if len(index) else 0):
        run_seed = _run_seed(seed, spec, repeat, batch_index)
        set_seed(run_seed)
        x_sub, y_sub = x[index], y[index]
        adv = attack_fn(
            spec,
            plan.attacked_model,
            x_sub,
            y_sub,
            device=device,
            seed=run_seed,
            batch_size=batch_size,
            surrogate_model=surrogate_model,
            verbose=verbose,
        )
        adv = np.asarray(adv.detach().cpu().numpy() if isinstance(adv, torch.Tensor) else adv)
        if adv.shape != x_sub.shape:
            raise ValueError(
                f"{spec.label} returned adversarials of shape {adv.shape}, expected {x_sub.shape}"
            )
        bad = threat_model_violations(x_sub, adv, spec.norm, spec.eps)
        violation_set.update(int(i) for i in index[bad])
        adv = np.where(bad.reshape((-1,) + (1,) * (adv.ndim - 1)), x_sub, np.nan_to_num(adv)).astype(
            np.float32
        )
        ok = _score(
            model,
            adv,
            y_sub,
            votes=votes,
            seed=_stable_seed(run_seed, "score"),
            device=device,
            batch_size=batch_size,
            num_classes=num_classes,
        )
        correct[index] &= ok
        broken = ~ok
        if broken.any():
            dist = perturbation_norms(adv[broken], x_sub[broken], spec.norm)
            where = index[broken]
            norms[where] = np.fmin(norms[where], dist)
    return AttackResult(
        spec=spec,
        correct=correct,
        seconds=time.perf_counter() - started,
        norms=norms,
        violations=len(violation_set),
        violation_indices=sorted(violation_set),
        repeats=repeats,
        eot_samples=plan.eot_samples,
        bpda=plan.bpda,
        attacked=int(len(index)),
        note=plan.note,
    )


def _clean_pass(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    batches: list[int],
    *,
    votes: int,
    seed: int,
    device: torch.device,
    batch_size: int,
    num_classes: int,
    rank: int,
) -> np.ndarray:
    """Which points the model classifies correctly without attack (a majority vote of ``votes`` passes),
    scored batch by batch on this process's ``batches`` and gathered on every process."""
    from .. import distributed

    parts = {
        b: _score(
            module,
            x[_batch(b, batch_size)],
            y[_batch(b, batch_size)],
            votes=votes,
            seed=_stable_seed(seed, "clean", b),
            device=device,
            batch_size=batch_size,
            num_classes=num_classes,
        )
        for b in batches
    }
    gathered = distributed.gather_objects(parts)
    correct = distributed.broadcast_object(_merge_clean(gathered, len(x), batch_size) if rank == 0 else None)
    assert correct is not None
    return correct  # type: ignore[no-any-return]


def _announce_estimate(
    specs: Sequence[AttackSpec],
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    clean_correct: np.ndarray,
    surrogate: nn.Module | None,
    out_path: Path | None,
    context: dict[str, Any],
    *,
    stochastic: bool,
    bpda_surrogate: nn.Module | None,
    eot_k: int,
    batch_size: int,
    repeats: int,
    votes: int,
    device: torch.device,
    processes: int,
) -> None:
    """Print the estimated cost of the attacks still to run (finished ones in ``out_path`` excluded), from a
    probe of the model's forward and backward passes on the points that will be attacked; never stops the
    evaluation."""
    todo = [
        _plan(s, module, stochastic=stochastic, surrogate=bpda_surrogate, eot_samples=eot_k)
        for s in specs
        if not (s.library == "transfer" and surrogate is None)
    ]
    todo = [
        p for p in todo if out_path is None or _load_finished(_attack_path(out_path, p.spec), context) is None
    ]
    attacked = np.flatnonzero(clean_correct)
    try:
        report_evaluation_estimate(
            [p.spec for p in todo],
            [p.eot_samples for p in todo],
            module,
            x[attacked],
            y[attacked],
            batch_size=batch_size,
            repeats=repeats,
            votes=votes,
            device=device,
            processes=processes,
        )
    except Exception as exc:  # noqa: BLE001 - an estimate must never stop the evaluation it describes
        tqdm.write(f"estimate: unavailable ({type(exc).__name__}: {exc})")


def _audit(
    results: list[AttackResult],
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    clean_correct: np.ndarray,
    *,
    seed: int,
    device: torch.device,
    batch_size: int,
    stochastic: bool,
    eot_k: int,
    bpda: bool,
) -> tuple[Any, Any, list[AuditFlag]]:
    """The gradient-masking audit: gradient statistics on the correctly classified points (all points when
    there is none), the determinism check, and the flags of :func:`~.audit.audit` over the attacks'
    results."""
    correct_idx = np.flatnonzero(clean_correct)
    probe = correct_idx if len(correct_idx) else np.arange(len(x))
    set_seed(_stable_seed(seed, "audit"))
    gradient_stats = measure_gradients(module, x[probe], y[probe], device=device, batch_size=batch_size)
    determinism = measure_determinism(module, x, device=device, batch_size=batch_size)
    flags = audit(
        results,
        gradient_stats=gradient_stats,
        determinism=determinism,
        eot=stochastic and eot_k > 1,
        declared_stochastic=stochastic,
        bpda=bpda,
        input_dim=int(np.prod(x.shape[1:])),
    )
    return gradient_stats, determinism, flags


def evaluate(
    model: Any,
    x: Any,
    y: Any,
    suite: Any,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    batch_size: int = 128,
    out_dir: str | os.PathLike[str] | None = None,
    surrogate_model: Any = None,
    eot_samples: int | None = None,
    votes: int | None = None,
    repeats: int | None = None,
    verbose: bool = True,
    model_name: str | None = None,
    dataset: str | None = None,
    norm: str | None = None,
    eps: float | None = None,
    reported: float | None = None,
    run_audit: bool = True,
    raise_errors: bool = False,
    attack_fn: AttackFunction | None = None,
    overwrite: bool = False,
) -> EvaluationResult:
    """Evaluate ``model`` on ``(x, y)`` under every attack of ``suite`` and return an
    :class:`EvaluationResult`.

    Follows Carlini et al. 2019 ("On Evaluating Adversarial Robustness") and Athalye et al. 2018: per-point
    worst case over the suite, adaptive EoT/BPDA attacks and the gradient-masking audit.

    Args:
        model: an ``nn.Module`` returning logits, or an ART ``PyTorchClassifier`` (its all-PyTorch
            preprocessing chain and model are used). Attributes read: ``stochastic`` (bool) and
            ``bpda_surrogate`` (``nn.Module``).
        x, y: images ``(N, C, H, W)`` in ``[0, 1]`` and integer (or one-hot) labels.
        suite: a suite name (see :func:`~.suites.get_suite`, with ``norm``/``eps``), an ``AttackSpec`` or a
            list of them.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: every attack run and scoring pass is seeded from it.
        batch_size: batch size of predictions and attacks.
        out_dir: if given, one JSON per attack (resume) and ``results.json``, ``results.md``, ``curves.png``.
            Every file carries the run's fingerprint (hashes of the model and the data, seed, EoT/vote/repeat
            settings; the suite too in ``results.json``): a folder holding another run's files raises
            :class:`~art_manifold_defenses.fingerprint.FingerprintMismatchError` naming what differs.
        surrogate_model: source model of ``transfer`` attacks (they are skipped, with a warning, without one).
        eot_samples: EoT passes for a stochastic model (default :data:`DEFAULT_EOT_SAMPLES`; 1 disables EoT).
        votes: passes whose majority vote scores a stochastic model (default :data:`DEFAULT_VOTES`; 1 for a
            deterministic model).
        repeats: independent runs of each attack, worst case kept (default :data:`DEFAULT_REPEATS` for a
            stochastic model, 1 otherwise).
        verbose: progress bars.
        model_name, dataset, reported: stored in the record (``reported`` = the paper's robust accuracy,
            RobustBench).
        norm, eps: passed to :func:`~.suites.get_suite` when ``suite`` is a name.
        run_audit: run the gradient-masking audit (two extra forward passes and one backward on the clean
            points).
        raise_errors: re-raise an attack's exception instead of recording it as an ``attack_error``.
        attack_fn: the function that runs one attack (default :func:`~.attacks.run_attack`); for tests and
            custom libraries, same signature.
        overwrite: remove the files of an earlier evaluation in ``out_dir`` first instead of resuming (or
            refusing) them.

    Raises:
        ValueError / TypeError: bad images, labels, suite or options (message names the argument).
    """
    t0 = time.perf_counter()
    dev = resolve_device(device)
    module = _as_module(model, "model").to(dev).eval()
    surrogate_module = (
        None if surrogate_model is None else _as_module(surrogate_model, "surrogate_model").to(dev).eval()
    )
    x_arr = check_images(x, "x")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {overwrite!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    batch_size = int(_check_count("batch_size", batch_size, allow_none=False) or 1)
    eot_samples = _check_count("eot_samples", eot_samples)
    votes = _check_count("votes", votes)
    repeats = _check_count("repeats", repeats)
    specs = _resolve_suite(suite, norm, eps)
    if attack_fn is None:
        attack_fn = run_attack

    stochastic = bool(_attribute(module, "stochastic", False))
    bpda_surrogate = _attribute(module, "bpda_surrogate", None)
    if bpda_surrogate is not None and not isinstance(bpda_surrogate, nn.Module):
        raise TypeError(
            f"model.bpda_surrogate must be an nn.Module or None, got {type(bpda_surrogate).__name__}"
        )
    if bpda_surrogate is not None:
        bpda_surrogate = bpda_surrogate.to(dev).eval()
    eot_k = DEFAULT_EOT_SAMPLES if eot_samples is None else eot_samples
    n_votes = (DEFAULT_VOTES if stochastic else 1) if votes is None else votes
    n_repeats = (DEFAULT_REPEATS if stochastic else 1) if repeats is None else repeats

    with torch.no_grad():
        num_classes = int(forward_checked(module, x_arr[:1], "x", device=dev).shape[1])
    y_arr = check_labels(y, len(x_arr), num_classes, "y")
    from .. import distributed

    rank, size = (distributed.rank(), distributed.world_size()) if distributed.is_distributed() else (0, 1)
    context = {
        "model": _fingerprint_model(module),
        "data": _fingerprint_arrays(x_arr, y_arr),
        "seed": int(seed),
        "eot_samples": eot_k,
        "votes": n_votes,
        "repeats": n_repeats,
        "stochastic": stochastic,
        "bpda": bpda_surrogate is not None,
        "transfer_source": None if surrogate_module is None else _fingerprint_model(surrogate_module),
        "batch_size": batch_size,
    }
    fingerprint = make_fingerprint("evaluate", **context, suite=[spec.to_dict() for spec in specs])
    out_path = None if out_dir is None else Path(out_dir)
    if out_path is not None:  # before any work: a folder of another run is refused at once
        if overwrite and rank == 0:
            _clear_out_dir(out_path)
        distributed.barrier()
        _check_out_dir(out_path, context, fingerprint)
    num_batches = math.ceil(len(x_arr) / batch_size)
    my_batches = [b for b in range(num_batches) if b % size == rank]
    set_seed(int(seed))
    clean_correct = _clean_pass(
        module,
        x_arr,
        y_arr,
        my_batches,
        votes=n_votes,
        seed=int(seed),
        device=dev,
        batch_size=batch_size,
        num_classes=num_classes,
        rank=rank,
    )

    settings = {
        "device": str(dev),
        "batch_size": batch_size,
        "eot_samples": eot_k if stochastic else None,
        "votes": n_votes,
        "repeats": n_repeats,
        "stochastic": stochastic,
        "bpda": bpda_surrogate is not None,
        "norm_tolerance": NORM_TOLERANCE,
        "box_tolerance": BOX_TOLERANCE,
        "fingerprint": fingerprint,
    }

    if verbose and rank == 0:  # the cost estimate, from a probe, of the attacks still to run
        _announce_estimate(
            specs,
            module,
            x_arr,
            y_arr,
            clean_correct,
            surrogate_module,
            out_path,
            context,
            stochastic=stochastic,
            bpda_surrogate=bpda_surrogate,
            eot_k=eot_k,
            batch_size=batch_size,
            repeats=n_repeats,
            votes=n_votes,
            device=dev,
            processes=size,
        )
    results: list[AttackResult] = []
    bar = tqdm(specs, desc="attacks", unit="attack", disable=not verbose or rank != 0)
    for spec in bar:
        plan = _plan(spec, module, stochastic=stochastic, surrogate=bpda_surrogate, eot_samples=eot_k)
        bar.set_postfix_str(plan.spec.label)
        if plan.spec.library == "transfer" and surrogate_module is None:
            if rank == 0:
                warnings.warn(
                    f"{spec.label}: transfer attack skipped (no surrogate_model given)", stacklevel=2
                )
            continue
        path = None if out_path is None else _attack_path(out_path, plan.spec)
        finished = None if path is None or rank != 0 else _load_finished(path, context)
        if distributed.broadcast_object(finished is not None):  # rank 0 decides, so all ranks agree
            if finished is not None:
                results.append(finished)
            continue
        parts: dict[int, dict[str, Any]] = {}
        for b in my_batches:
            part_path = None if path is None else _batch_path(path, b)
            loaded = None if part_path is None else _load_part(part_path, context)
            if loaded is not None:
                parts[b] = loaded
                continue
            rows = _batch(b, batch_size)
            try:
                part = _run_one(
                    plan,
                    module,
                    x_arr[rows],
                    y_arr[rows],
                    clean_correct[rows],
                    attack_fn=attack_fn,
                    seed=int(seed),
                    repeats=n_repeats,
                    votes=n_votes,
                    device=dev,
                    batch_size=batch_size,
                    num_classes=num_classes,
                    surrogate_model=surrogate_module,
                    verbose=verbose and rank == 0,
                    batch_index=b,
                )
            except Exception as exc:  # noqa: BLE001 - recorded and flagged, see raise_errors
                if raise_errors:
                    raise
                parts[b] = {"error": f"{type(exc).__name__}: {exc}"}
                break  # the attack is recorded as failed: its other batches would not be used
            parts[b] = _part_to_dict(part, offset=rows.start)
            if part_path is not None:
                _save_part(part_path, parts[b], context)
        gathered = distributed.gather_objects(parts)
        if rank == 0:
            assert gathered is not None
            result = _merge_parts(plan, gathered, clean_correct, repeats=n_repeats)
            if result.error is not None:
                warnings.warn(f"{plan.spec.label} failed: {result.error}", stacklevel=2)
            results.append(result)
            if path is not None and result.error is None:
                _save_attack(path, result, context)
                _remove_parts(path)
    bar.close()

    if rank != 0:  # rank 0 audits and writes the report; every rank returns its result
        received = distributed.broadcast_object(None)
        assert isinstance(received, EvaluationResult)
        return received

    gradient_stats, determinism, flags = (
        _audit(
            results,
            module,
            x_arr,
            y_arr,
            clean_correct,
            seed=int(seed),
            device=dev,
            batch_size=batch_size,
            stochastic=stochastic,
            eot_k=eot_k,
            bpda=bpda_surrogate is not None,
        )
        if run_audit
        else (None, None, [])
    )

    evaluation = EvaluationResult(
        model=model_name or _model_name(module),
        dataset=dataset,
        n=len(x_arr),
        seed=int(seed),
        clean_correct=clean_correct,
        attacks=results,
        audit_flags=flags,
        settings=settings,
        gradient_stats=gradient_stats,
        determinism=determinism,
        versions=_versions(),
        seconds=time.perf_counter() - t0,
        reported=reported,
    )
    if out_path is not None:
        from .report import write_report

        write_report(evaluation, out_path)
    if size > 1:
        distributed.broadcast_object(evaluation)
    return evaluation
