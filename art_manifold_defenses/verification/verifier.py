"""``verify``: exact l-inf robustness verification of a ReLU classifier, image by image."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..costs import report_estimate
from ..utils import check_images, check_labels, probe_forward, resolve_device
from ._verify_results import ImageVerification, VerificationResult
from .attack import pgd_attack
from .bounds import NetworkBounds, input_box, interval_bounds, linear_relaxation_bounds, margin_lower_bounds
from .choices import BOUND_METHODS
from .lp_tightening import lp_bounds
from .milp import solve_margin
from .network import ReluNetwork, extract_network

__all__ = [
    "BOUND_METHODS",
    "TIME_LIMIT_SLACK",
    "ImageVerification",
    "VerificationResult",
    "Verifier",
    "compute_bounds",
    "verify",
]

STATUSES = ("verified", "falsified", "timeout", "inconclusive")
#: Seconds by which an image's recorded time may exceed ``time_limit``: the steps that cannot be interrupted
#: (HiGHS checks its clock between simplex iterations / branch-and-bound nodes, one LP or MILP model is built
#: before the solver starts, one PGD run, the IBP/CROWN pass) run to their end.
#: ``tests/verification/test_verifier.py`` checks it on a network whose MILPs run out of a tiny time limit.
TIME_LIMIT_SLACK = 1.0


def compute_bounds(
    network: ReluNetwork,
    input_lower: np.ndarray,
    input_upper: np.ndarray,
    method: str = "lp",
    *,
    time_limit: float | None = None,
    neuron_time_limit: float = 5.0,
) -> NetworkBounds:
    """Bounds by ``method`` (``"ibp"``, ``"crown"`` = IBP then CROWN, ``"lp"`` = CROWN then per-neuron LP).

    Paper: bounds for the MILP of Tjeng et al. 2019 (eq. 5): IBP (Gowal et al. 2018), CROWN (Zhang et al.
    2018) or LP tightening, as in Jin & Rinard 2020 (paper 003), Appendix B.
    """
    if method not in BOUND_METHODS:
        raise ValueError(f"bounds must be one of {BOUND_METHODS}, got {method!r}")
    started = time.perf_counter()
    bounds = interval_bounds(network, input_lower, input_upper)
    if method in ("crown", "lp"):
        bounds = linear_relaxation_bounds(network, input_lower, input_upper, initial=bounds)
    if method == "lp":
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - started), 0.0)
        bounds = lp_bounds(
            network,
            input_lower,
            input_upper,
            initial=bounds,
            time_limit=left,
            neuron_time_limit=neuron_time_limit,
        )
    bounds.seconds = time.perf_counter() - started
    return bounds


class Verifier:
    """Exact l-inf verifier for ReLU networks (Tjeng, Xiao & Tedrake 2019, "Evaluating Robustness of Neural
    Networks with Mixed Integer Programming", arXiv:1711.07356), as used for the verified accuracy of
    paper 003 (Jin & Rinard, Table 2, following Xiao et al. 2019, arXiv:1809.03008).

    Per image: (1) the clean prediction; (2) optionally PGD with restarts, which falsifies cheaply; (3)
    pre-activation bounds (IBP, CROWN, per-neuron LP; ``bounds``); (4) margin lower bounds that may already
    prove every class; (5) for each remaining class, most dangerous first, the big-M MILP (eq. 5 of Tjeng
    et al.) with HiGHS, stopping at the first counterexample, which is then checked by a float32 forward pass
    of ``model``. ``time_limit`` bounds the whole work on one image (steps 1-5; an image that runs out of it
    is a ``"timeout"``): its recorded ``seconds`` exceed it by at most :data:`TIME_LIMIT_SLACK` (a step that
    cannot be interrupted: a HiGHS time check, one PGD run, the IBP/CROWN pass); ``lp_time_fraction`` of it
    may go to LP tightening. ``solver_options`` are HiGHS options on top of
    :data:`~art_manifold_defenses.verification.milp.HIGHS_OPTIONS` (e.g. ``{"presolve": True}``).

    Supports ``nn.Sequential`` models (nested) of Conv2d, Linear, ReLU, Flatten, BatchNorm (folded, eval
    mode), AvgPool2d and Dropout/Identity; the extracted network is checked against ``model`` on the images to
    verify.

    Known limitations: the MILP runs in float64 with HiGHS's feasibility tolerances (1e-6..1e-7) on the
    float32 weights, so "verified" is exact up to solver tolerance and floating-point round-off, not a proof
    in float32 arithmetic (Jia & Rinard 2020, arXiv:2003.03021, build networks that exploit this gap). Cost
    grows exponentially with the number of unstable ReLUs; scipy's HiGHS is single-threaded and slower than
    Gurobi (used by the paper), so more images time out for the same limit. MaxPool is not encoded.
    """

    params = [
        "eps",
        "time_limit",
        "bounds",
        "lp_time_fraction",
        "neuron_time_limit",
        "attack_steps",
        "attack_restarts",
        "clip_values",
        "solver_options",
        "device",
        "seed",
        "verbose",
    ]

    def __init__(
        self,
        model: nn.Module,
        *,
        input_shape: Sequence[int],
        eps: float,
        time_limit: float = 120.0,
        bounds: str = "lp",
        lp_time_fraction: float = 0.5,
        neuron_time_limit: float = 5.0,
        attack_steps: int = 20,
        attack_restarts: int = 1,
        clip_values: tuple[float, float] = (0.0, 1.0),
        affine_types: Sequence[type[nn.Module]] = (),
        solver_options: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        if solver_options is not None and not isinstance(solver_options, dict):
            raise TypeError(
                f"solver_options must be a dict of HiGHS options or None, got {type(solver_options).__name__}"
            )
        self.model = model
        self.solver_options = dict(solver_options or {})
        self.eps = eps
        self.time_limit = time_limit
        self.bounds = bounds
        self.lp_time_fraction = lp_time_fraction
        self.neuron_time_limit = neuron_time_limit
        self.attack_steps = attack_steps
        self.attack_restarts = attack_restarts
        self.clip_values = clip_values
        self.device = resolve_device(device)
        self.seed = seed
        self.verbose = verbose
        self._check_params()
        self.input_shape = tuple(int(s) for s in input_shape)
        try:
            self.network = extract_network(model, self.input_shape, affine_types=affine_types)
        except RuntimeError as exc:  # torch refused the shape in the tracing forward pass
            raise ValueError(
                f"input_shape={self.input_shape} does not fit the model: {str(exc).splitlines()[0]}"
            ) from exc

    def _check_params(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(self.model).__name__}")
        if (
            isinstance(self.eps, bool)
            or not isinstance(self.eps, (int, float))
            or not np.isfinite(self.eps)
            or self.eps < 0
        ):
            raise ValueError(f"eps must be a finite number >= 0, got {self.eps!r}")
        if (
            isinstance(self.time_limit, bool)
            or not isinstance(self.time_limit, (int, float))
            or not self.time_limit > 0
        ):
            raise ValueError(f"time_limit must be a number of seconds > 0, got {self.time_limit!r}")
        if self.bounds not in BOUND_METHODS:
            raise ValueError(f"bounds must be one of {BOUND_METHODS}, got {self.bounds!r}")
        if not isinstance(self.lp_time_fraction, (int, float)) or not 0 < self.lp_time_fraction <= 1:
            raise ValueError(f"lp_time_fraction must be in (0, 1], got {self.lp_time_fraction!r}")
        if not isinstance(self.neuron_time_limit, (int, float)) or not self.neuron_time_limit > 0:
            raise ValueError(f"neuron_time_limit must be > 0 seconds, got {self.neuron_time_limit!r}")
        for name in ("attack_steps", "attack_restarts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if len(self.clip_values) != 2 or not self.clip_values[0] < self.clip_values[1]:
            raise ValueError(f"clip_values must be (low, high) with low < high, got {self.clip_values!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        if not isinstance(self.verbose, bool):
            raise TypeError(f"verbose must be a bool, got {type(self.verbose).__name__}")
        if not all(isinstance(key, str) for key in self.solver_options):
            raise TypeError("solver_options must map HiGHS option names (str) to values")

    def _logits(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return (
                self.model(torch.as_tensor(x, dtype=torch.float32, device=self.device)).float().cpu().numpy()
            )

    def _check_extraction(self, x: np.ndarray) -> None:
        torch_logits = self._logits(x)
        ours = self.network(x.reshape(len(x), -1))
        scale = 1.0 + float(np.abs(torch_logits).max())
        gap = float(np.abs(torch_logits - ours).max())
        if gap > 1e-3 * scale:
            raise ValueError(
                f"the extracted ReLU network disagrees with model's forward pass (max logit gap {gap:.3g}); "
                "the model probably has a custom forward() or an unsupported functional op"
            )

    def verify(
        self,
        x: Any,
        y: Any,
        *,
        indices: Sequence[int] | None = None,
        callback: Callable[[ImageVerification], None] | None = None,
    ) -> VerificationResult:
        """Verify every image of ``x`` (N, C, H, W) in [clip_values] with labels ``y``; ``indices`` names them
        in the results (default 0..N-1); ``callback`` is called after each image (e.g. to append a TSV
        row)."""
        x_arr = check_images(x, "x", clip_values=self.clip_values, ndim=1 + len(self.input_shape))
        if tuple(x_arr.shape[1:]) != self.input_shape:
            raise ValueError(f"x must have per-sample shape {self.input_shape}, got {tuple(x_arr.shape[1:])}")
        y_arr = check_labels(y, len(x_arr), self.network.num_classes, "y")
        names = list(range(len(x_arr))) if indices is None else [int(i) for i in indices]
        if len(names) != len(x_arr):
            raise ValueError(f"indices has {len(names)} entries for {len(x_arr)} images")
        was_training = self.model.training
        self.model.eval()
        try:
            self._check_extraction(x_arr)
            generator = torch.Generator().manual_seed(self.seed)
            images = []
            count = len(x_arr)
            worst = count * (float(self.time_limit) + TIME_LIMIT_SLACK)
            report_estimate(
                f"verifying {count} images at eps={self.eps:g}",
                worst,
                f"worst case: {count} x the time limit of {self.time_limit:g} s per image",
                bound="at most",
                verbose=self.verbose,
            )
            for i in tqdm(range(count), desc=f"verify eps={self.eps:g}", disable=not self.verbose):
                result = self._verify_one(x_arr[i], int(y_arr[i]), names[i], generator)
                images.append(result)
                if i == 0 and count > 1:  # the typical figure, from the first image
                    report_estimate(
                        f"the other {count - 1} images",
                        (count - 1) * result.seconds,
                        f"the first took {result.seconds:.2f} s ({result.status} by {result.method}); "
                        f"images that reach the MILP may take up to the time limit each",
                        verbose=self.verbose,
                    )
                if callback is not None:
                    callback(result)
        finally:
            self.model.train(was_training)
        return VerificationResult(images, float(self.eps), self.bounds, float(self.time_limit))

    def _falsified_by(self, point: np.ndarray, label: int) -> int | None:
        """Prediction of ``model`` on ``point`` when it is a genuine counterexample, else None."""
        prediction = int(self._logits(point.reshape(1, *self.input_shape).astype(np.float32)).argmax())
        return prediction if prediction != label else None

    def _attack(self, image: np.ndarray, label: int, generator: torch.Generator) -> np.ndarray | None:
        x = torch.as_tensor(image[None], dtype=torch.float32, device=self.device)
        y = torch.tensor([label], device=self.device)
        adv, fooled = pgd_attack(
            self.model,
            x,
            y,
            float(self.eps),
            steps=self.attack_steps,
            restarts=self.attack_restarts,
            clip_values=self.clip_values,
            generator=generator,
        )
        return adv[0].cpu().numpy() if bool(fooled[0]) else None

    def _verify_one(
        self, image: np.ndarray, label: int, index: int, generator: torch.Generator
    ) -> ImageVerification:
        """Steps 1-5 of the class docstring on one image, each stopping at its verdict."""
        started = time.perf_counter()
        deadline = started + float(
            self.time_limit
        )  # the whole per-image work, the attack and the bounds included
        prediction = int(self._logits(image[None]).argmax())
        relus = self.network.relu_count

        def done(status: str, method: str, **extra: Any) -> ImageVerification:
            return ImageVerification(
                index=index,
                label=label,
                prediction=prediction,
                status=status,
                method=method,
                seconds=time.perf_counter() - started,
                relus=relus,
                **extra,
            )

        if prediction != label:  # (1) the clean prediction
            return done(
                "falsified", "clean", counterexample=image.copy(), counterexample_prediction=prediction
            )
        if self.attack_steps > 0 and self.attack_restarts > 0 and self.eps > 0:  # (2) PGD
            adv = self._attack(image, label, generator)
            found = None if adv is None else self._falsified_by(adv, label)
            if found is not None:
                return done("falsified", "pgd", counterexample=adv, counterexample_prediction=found)
            if time.perf_counter() >= deadline:
                return done("timeout", "pgd")
        bounds, stats, open_classes = self._bound_margins(image, label, deadline)  # (3) and (4)
        if not open_classes:
            return done("verified", "bounds", **stats)
        if time.perf_counter() >= deadline:
            return done("timeout", "bounds", **stats)
        status, extra = self._solve_open_classes(image, label, bounds, open_classes, deadline)  # (5)
        return done(status, "milp", **extra, **stats)

    def _bound_margins(
        self, image: np.ndarray, label: int, deadline: float
    ) -> tuple[NetworkBounds, dict[str, Any], list[int]]:
        """Steps 3 and 4: the bounds over the eps-ball of ``image``, their statistics (fields of
        :class:`ImageVerification`) and the classes whose margin lower bound is not positive, most dangerous
        first."""
        lower, upper = input_box(image, float(self.eps), self.clip_values)
        bounds = compute_bounds(
            self.network,
            lower,
            upper,
            self.bounds,
            time_limit=min(self.lp_time_fraction * self.time_limit, deadline - time.perf_counter()),
            neuron_time_limit=self.neuron_time_limit,
        )
        counts = bounds.stable_counts()
        stats: dict[str, Any] = {
            "unstable": bounds.unstable_count,
            "stable_active": sum(c["active"] for c in counts),
            "stable_inactive": sum(c["inactive"] for c in counts),
            "per_layer": counts,
            "bounds_seconds": bounds.seconds,
        }
        margins = margin_lower_bounds(self.network, bounds, label, linear=self.bounds != "ibp")
        stats["margin_lower_bound"] = float(np.min(margins))
        open_classes = [int(j) for j in np.argsort(margins) if j != label and margins[j] <= 0]
        return bounds, stats, open_classes

    def _solve_open_classes(
        self, image: np.ndarray, label: int, bounds: NetworkBounds, open_classes: list[int], deadline: float
    ) -> tuple[str, dict[str, Any]]:
        """Step 5: the MILP of each open class in turn until the first counterexample or the deadline; returns
        the status and the fields of :class:`ImageVerification` it sets."""
        milp_seconds = 0.0
        for count, target in enumerate(open_classes, start=1):
            left = deadline - time.perf_counter()
            if left <= 0:
                return "timeout", {"milp_seconds": milp_seconds, "milp_classes": count - 1}
            outcome = solve_margin(
                self.network,
                bounds,
                label,
                target,
                image,
                time_limit=left,
                solver_options=self.solver_options,
            )
            milp_seconds += outcome.seconds
            extra: dict[str, Any] = {"milp_seconds": milp_seconds, "milp_classes": count}
            if outcome.status == "timeout":
                return "timeout", extra
            if outcome.status == "violated" and outcome.point is not None:
                confirmed = self._confirm(outcome.point, image, label)
                if confirmed is None:
                    return "inconclusive", extra
                point, found = confirmed
                return "falsified", {"counterexample": point, "counterexample_prediction": found, **extra}
        return "verified", {"milp_seconds": milp_seconds, "milp_classes": len(open_classes)}

    def _confirm(
        self, milp_point: np.ndarray, image: np.ndarray, label: int
    ) -> tuple[np.ndarray, int] | None:
        """A MILP point checked by the float32 forward pass of ``model`` (``(point, prediction)``), nudged
        across a round-off tie when the check fails, or None when neither misclassifies."""
        point = milp_point.reshape(self.input_shape).astype(np.float32)
        found = self._falsified_by(point, label)
        if found is not None:
            return point, found
        return self._attack_from(point, image, label)  # round-off tie at the decision boundary: push locally

    def _attack_from(self, point: np.ndarray, image: np.ndarray, label: int) -> tuple[np.ndarray, int] | None:
        """A few small signed-gradient steps from a MILP point whose float32 margin is a round-off tie."""
        low = np.maximum(image - self.eps, self.clip_values[0]).astype(np.float32)
        high = np.minimum(image + self.eps, self.clip_values[1]).astype(np.float32)
        x = torch.as_tensor(point[None], dtype=torch.float32, device=self.device)
        y = torch.tensor([label], device=self.device)
        for step in (1e-6, 1e-5, 1e-4, 1e-3):
            x_var = x.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(self.model(x_var), y)
            (grad,) = torch.autograd.grad(loss, x_var)
            moved = (x + step * grad.sign()).cpu().numpy()[0]
            moved = np.clip(moved, low, high).astype(np.float32)
            found = self._falsified_by(moved, label)
            if found is not None:
                return moved, found
        return None


def verify(
    model: nn.Module,
    x: Any,
    y: Any,
    eps: float,
    *,
    time_limit: float = 120.0,
    bounds: str = "lp",
    lp_time_fraction: float = 0.5,
    neuron_time_limit: float = 5.0,
    attack_steps: int = 20,
    attack_restarts: int = 1,
    clip_values: tuple[float, float] = (0.0, 1.0),
    affine_types: Sequence[type[nn.Module]] = (),
    solver_options: dict[str, Any] | None = None,
    indices: Sequence[int] | None = None,
    callback: Callable[[ImageVerification], None] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    verbose: bool = True,
) -> VerificationResult:
    """Verify l-inf robustness at radius ``eps`` of every image in ``x`` (N, C, H, W) in [0, 1] with labels
    ``y``.

    Paper: Tjeng et al. 2019 (eq. 5 MILP) in the setup of Xiao et al. 2019, as in Jin & Rinard 2020 (paper
    003), Appendix B and Table 2.

    A thin wrapper around :class:`Verifier`; see it for the algorithm, options and limitations. ``time_limit``
    is in seconds per image (paper 003 / Xiao et al.: 120 s). Returns a :class:`VerificationResult` with one
    :class:`ImageVerification` per image (verified / falsified with its counterexample / timeout) and
    stable-ReLU counts."""
    x_arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
    if x_arr.ndim < 2:
        raise ValueError(
            f"x must be a batch of inputs of shape (N, ...), e.g. (N, C, H, W), got shape {x_arr.shape}"
        )
    if x_arr.ndim == 4 and len(
        x_arr
    ):  # a channels-last or wrong-channel batch is named as such, not as a torch error
        probe_forward(model, x_arr[:1], "x", device=resolve_device(device))
    verifier = Verifier(
        model,
        input_shape=x_arr.shape[1:],
        eps=eps,
        time_limit=time_limit,
        bounds=bounds,
        lp_time_fraction=lp_time_fraction,
        neuron_time_limit=neuron_time_limit,
        attack_steps=attack_steps,
        attack_restarts=attack_restarts,
        clip_values=clip_values,
        affine_types=affine_types,
        solver_options=solver_options,
        device=device,
        seed=seed,
        verbose=verbose,
    )
    return verifier.verify(x_arr, y, indices=indices, callback=callback)
