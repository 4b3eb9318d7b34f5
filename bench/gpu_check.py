"""GPU readiness check: one command that trains, attacks and certifies everything briefly and writes one
summary.

    python bench/gpu_check.py --out runs/gpu-check   # one CUDA GPU, full MNIST, under 8 minutes
    OMP_NUM_THREADS=1 python bench/gpu_check.py --tiny --device cpu --out /tmp/gpu-check   # CPU run (CI)

Stages, in order (each one's result, seconds and error, if any, go to ``OUT/gpu_check.json`` and
``OUT/gpu_check.md``):

1. ``certify``: ``bench/certify.py`` as a subprocess -- the package's Rényi certifier against ART's
   ``PyTorchRandomizedSmoothing.certify`` and the forward-only / forward+noise limits, on the same models and
   images (its printed seconds per image and ratios are parsed into the summary, its full output kept in
   ``OUT/certify.txt``);
2. for the baseline and each defence of ``amd demo`` (:data:`art_manifold_defenses.demo.DEMO_ENTRIES`:
   baseline, rbf-cnn, radial-mapping, fpd, manifold-reg, stn; the same models, ``amd train --defense`` options
   and EoT/vote settings, trained through the demo's own training function, i.e. each defence's ``train`` of
   ``defences.DEFENCES``): ``train:NAME`` (brief training, test accuracy, checkpoint
   ``OUT/models/NAME/model.pt``), then ``quick:NAME`` and ``autoattack:NAME``
   (:func:`art_manifold_defenses.evaluation.evaluate` with that suite; clean and robust accuracy, files in
   ``OUT/models/NAME/SUITE/``).

Planned sizes (ESTIMATES: not yet measured on a GPU; the first GPU run's ``gpu_check.md`` is the measurement):

- training: default (GPU) full MNIST (60,000 images), 1 epoch (FPD 2: the demo's ``epochs_scale``), batch 128;
  test accuracy on all 10,000. ``--tiny`` (CPU, CI): ``mnist-embedded`` (no download), first 256 images, 1
  epoch, RBF-CNN's EM fit 40 steps (demo: 150); accuracy on 256 test images.
- evaluation: default first 1,000 test images, ``quick`` and ``autoattack``, batch 1,000. ``--tiny``: first 16
  test images, both suites, batch 128.
- certify: default ``tramer_a,small_cnn``, n = 100,000 (+ n0 = 100), 2 images, best of 2 repeats, batch 1,000,
  no memory measurement. ``--tiny``: ``small_cnn``, n = 1,000, 1 image, 1 repeat.
- budgets: default seconds per stage below (sum 480), whole run ``--time-limit`` 470 s. ``--tiny``: 240 s per
  stage, ``--time-limit`` 900 s.

GPU budgets per stage in seconds (train / quick / autoattack): baseline 20/15/15, rbf-cnn 35/30/30,
radial-mapping 25/15/15, fpd 45/25/20, manifold-reg 25/15/15, stn 20/25/30; certify 60. They are guesses at
about three times the expected H100 time (e.g. ~5 s for one epoch of cw_mnist on 60,000 images);
``--budget-scale 2 --time-limit 900`` doubles them for a slower GPU.

Budgets are enforced: the stages run in a worker process, and one that passes its budget (or the whole run's
``--time-limit``) is killed and recorded as ``timeout``; a stage that raises is recorded as ``error`` with its
message (an attack that fails inside a suite counts too); either way a fresh worker goes on with the next
stage (the evaluation stages of a model whose training failed report that). Stages not started before
``--time-limit`` are ``skipped``. The summary is rewritten after every stage; the exit status is 0 when every
stage is ``ok``, else 1.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CERTIFY_SCRIPT = Path(__file__).resolve().parent / "certify.py"
FORMAT = "art-manifold-defenses/gpu-check/1"
SUITES = ("quick", "autoattack")
JSON_FILE = "gpu_check.json"
MARKDOWN_FILE = "gpu_check.md"
EVENTS_FOLDER = "events"  # one JSON-lines file per worker process
CERTIFY_OUTPUT = "certify.txt"  # bench/certify.py's command and full output


@dataclass(frozen=True)
class Plan:
    """The sizes of one run (see the module docstring)."""

    mode: str
    dataset: str
    train_limit: int | None
    test_limit: int | None
    epochs: int
    eval_images: int
    eval_batch_size: int
    certify_models: str
    certify_n: int
    certify_images: int
    certify_repeats: int
    certify_batch_size: int
    budgets: dict[str, float] = field(default_factory=dict)
    default_budget: float = 60.0
    time_limit: float = 470.0
    #: per demo entry, ``amd train`` option values replacing the demo's (``--tiny``: a shorter EM fit of
    #: RBF-CNN)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def budget(self, stage: str) -> float:
        return float(self.budgets.get(stage, self.default_budget))


def _gpu_budgets() -> dict[str, float]:
    per_model = {
        "baseline": (20, 15, 15),
        "rbf-cnn": (35, 30, 30),
        "radial-mapping": (25, 15, 15),
        "fpd": (45, 25, 20),
        "manifold-reg": (25, 15, 15),
        "stn": (20, 25, 30),
    }
    budgets: dict[str, float] = {"certify": 60.0}
    for model, seconds in per_model.items():
        for kind, value in zip(("train", *SUITES), seconds, strict=True):
            budgets[f"{kind}:{model}"] = float(value)
    return budgets


FULL_PLAN = Plan(
    "full",
    "mnist",
    None,
    None,
    1,
    1000,
    1000,
    "tramer_a,small_cnn",
    100_000,
    2,
    2,
    1000,
    budgets=_gpu_budgets(),
    time_limit=470.0,
)
TINY_PLAN = Plan(
    "tiny",
    "mnist-embedded",
    256,
    256,
    1,
    16,
    128,
    "small_cnn",
    1000,
    1,
    1,
    1000,
    default_budget=240.0,
    time_limit=900.0,
    options={"rbf-cnn": {"rbf_em_steps": 40}},
)


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str  # "certify", "train" or an evaluation suite
    model: str | None
    budget: float


def model_names() -> list[str]:
    from art_manifold_defenses.demo import demo_entry_names

    return demo_entry_names()


def stage_names() -> list[str]:
    """Every stage, in run order: ``certify``, then ``train:NAME``, ``quick:NAME``, ``autoattack:NAME`` per
    demo entry."""
    return ["certify", *[f"{kind}:{model}" for model in model_names() for kind in ("train", *SUITES)]]


def build_stages(
    plan: Plan,
    budget_scale: float = 1.0,
    only: Sequence[str] | None = None,
    budgets: dict[str, float] | None = None,
) -> list[Stage]:
    """The stages to run (all, or those named in ``only``, in run order); ``budgets`` replaces some budgets
    (seconds, not scaled)."""
    names = stage_names()
    unknown = sorted(set(only or ()) - set(names)) + sorted(set(budgets or {}) - set(names))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; the stages are {', '.join(names)}")
    stages = []
    for name in names:
        if only and name not in only:
            continue
        kind, _, model = name.partition(":")
        budget = (budgets or {}).get(name, plan.budget(name) * budget_scale)
        stages.append(Stage(name, kind, model or None, float(budget)))
    return stages


# ------------------------------------------------------------------------------------------------------------
# worker: runs the stages in-process and reports each one as JSON lines in OUT/events/worker-START.jsonl
# ------------------------------------------------------------------------------------------------------------
class _Context:
    def __init__(self, args: argparse.Namespace, plan: Plan) -> None:
        from art_manifold_defenses.utils import resolve_device

        self.args, self.plan = args, plan
        self.out = Path(args.out)
        self.device = resolve_device(args.device)
        self.models: dict[str, Any] = {}
        self._data: dict[str, Any] | None = None

    def data(self) -> dict[str, Any]:
        if self._data is None:
            from art_manifold_defenses.data import load_dataset

            x_train, y_train = load_dataset(self.plan.dataset, "train", root=self.args.data_root)
            x_test, y_test = load_dataset(self.plan.dataset, "test", root=self.args.data_root)
            limit = self.plan.train_limit
            self._data = {
                "x_train": x_train[:limit],
                "y_train": y_train[:limit],
                "x_test": x_test,
                "y_test": y_test,
            }
        return self._data

    def folder(self, model: str) -> Path:
        return self.out / "models" / model


def _entry(model: str, plan: Plan | None = None) -> Any:
    """The demo entry ``model``, with the plan's option overrides."""
    from art_manifold_defenses.demo import DEMO_ENTRIES

    entry = next(e for e in DEMO_ENTRIES if e.name == model)
    overrides = plan.options.get(model) if plan is not None else None
    return replace(entry, options={**entry.options, **overrides}) if overrides else entry


def run_train(stage: Stage, ctx: _Context) -> dict[str, Any]:
    """Train one demo entry (the demo's own training path) on the plan's data; save its checkpoint."""
    from art_manifold_defenses.checkpoint import save_checkpoint
    from art_manifold_defenses.demo import train_entry  # the `amd demo` / `amd train --defense` training path
    from art_manifold_defenses.training import evaluate_accuracy
    from art_manifold_defenses.utils import set_seed

    assert stage.model is not None
    entry, data, folder = _entry(stage.model, ctx.plan), ctx.data(), ctx.folder(stage.model)
    shutil.rmtree(folder, ignore_errors=True)  # no resume of an earlier run's train_state
    folder.mkdir(parents=True)
    architecture = {"in_channels": 1, "num_classes": 10, "input_size": 28, **entry.model}
    demo_args = argparse.Namespace(
        epochs=ctx.plan.epochs,
        seed=ctx.args.seed,
        quiet=not ctx.args.verbose,
        data_root=ctx.args.data_root,
        device=ctx.args.device,
    )
    set_seed(ctx.args.seed)
    began = time.perf_counter()
    model, defence = train_entry(entry, demo_args, data, ctx.device, folder, architecture)
    train_seconds = time.perf_counter() - began
    model.eval()
    x_test, y_test = data["x_test"][: ctx.plan.test_limit], data["y_test"][: ctx.plan.test_limit]
    accuracy = evaluate_accuracy(model, x_test, y_test, device=ctx.device)
    epochs = max(1, round(ctx.plan.epochs * entry.epochs_scale))
    save_checkpoint(
        model,
        folder / "model.pt",
        architecture=architecture,
        defence=defence,
        dataset=ctx.plan.dataset,
        extra={
            "test_accuracy": accuracy,
            "epochs": epochs,
            "seed": ctx.args.seed,
            "train_seconds": train_seconds,
        },
    )
    ctx.models[stage.model] = model
    return {
        "train_images": len(data["x_train"]),
        "epochs": epochs,
        "train_seconds": train_seconds,
        "test_accuracy": accuracy,
        "test_images": len(y_test),
    }


def run_suite(stage: Stage, ctx: _Context) -> dict[str, Any]:
    """Attack one trained model with one suite on the plan's first test images."""
    from art_manifold_defenses.checkpoint import load_checkpoint
    from art_manifold_defenses.evaluation import evaluate

    assert stage.model is not None
    model = ctx.models.get(stage.model)
    if model is None:
        path = ctx.folder(stage.model) / "model.pt"
        if not path.exists():
            raise RuntimeError(f"no checkpoint {path}: stage train:{stage.model} failed or did not run")
        model, _ = load_checkpoint(path, device=ctx.device)
        ctx.models[stage.model] = model
    data, n = ctx.data(), ctx.plan.eval_images
    result = evaluate(
        model,
        data["x_test"][:n],
        data["y_test"][:n],
        stage.kind,
        device=ctx.device,
        seed=ctx.args.seed,
        batch_size=ctx.plan.eval_batch_size,
        out_dir=ctx.folder(stage.model) / stage.kind,
        verbose=ctx.args.verbose,
        model_name=stage.model,
        dataset=ctx.plan.dataset,
        overwrite=True,
        **_entry(stage.model).evaluation,
    )
    failed = [f"{a.label}: {a.error}" for a in result.attacks if a.error]
    record: dict[str, Any] = {
        "images": int(result.n),
        "clean_accuracy": float(result.clean_accuracy),
        "robust_accuracy": float(result.robust_accuracy),
        "evaluation_seconds": float(result.seconds),
        "attacks": {a.label: float(a.accuracy) for a in result.attacks if not a.error},
        "audit_flags": [f.code for f in result.audit_flags],
        "settings": {k: v for k, v in result.settings.items() if k != "fingerprint"},
    }
    if failed:
        record["error"] = f"{len(failed)} of {len(result.attacks)} attack(s) failed: " + "; ".join(failed)
    return record


_CERTIFY_HEADER = re.compile(r"^(\S+): seconds/image")
_CERTIFY_ROW = re.compile(
    r"^\s+(\S+)\s+([-+0-9.eE]+) s/image\s+x\s*([-+0-9.eE]+) fwd\s+x\s*([-+0-9.eE]+) fwd\+noise"
)
_CERTIFY_SPEEDUP = re.compile(r"speed-up of ours over ART: x\s*([-+0-9.eE]+)")


def parse_certify_output(text: str) -> dict[str, dict[str, Any]]:
    """Per model: seconds per image of each method, its ratios to the two limits and ART's time over ours."""
    models: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if header := _CERTIFY_HEADER.match(line):
            current = models.setdefault(
                header.group(1),
                {
                    "seconds_per_image": {},
                    "ratio_to_forward": {},
                    "ratio_to_fwd_noise": {},
                    "art_over_ours": None,
                },
            )
        elif current is not None and (row := _CERTIFY_ROW.match(line)):
            method = row.group(1)
            current["seconds_per_image"][method] = float(row.group(2))
            current["ratio_to_forward"][method] = float(row.group(3))
            current["ratio_to_fwd_noise"][method] = float(row.group(4))
        elif current is not None and (speedup := _CERTIFY_SPEEDUP.search(line)):
            current["art_over_ours"] = float(speedup.group(1))
    return models


def certify_command(plan: Plan, device: str) -> list[str]:
    return [
        sys.executable,
        str(CERTIFY_SCRIPT),
        "--models",
        plan.certify_models,
        "--n",
        str(plan.certify_n),
        "--images",
        str(plan.certify_images),
        "--repeats",
        str(plan.certify_repeats),
        "--batch-size",
        str(plan.certify_batch_size),
        "--device",
        device,
        "--no-memory",
    ]


def run_certify(stage: Stage, ctx: _Context) -> dict[str, Any]:
    """``bench/certify.py`` (ours vs ART vs the forward limits) as a subprocess; its printed table parsed."""
    command = certify_command(ctx.plan, str(ctx.device))
    # no timeout here: the supervisor kills this worker and the script (one process group) at the stage's
    # budget
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    (ctx.out / CERTIFY_OUTPUT).write_text(f"$ {shlex.join(command)}\n{proc.stdout}{proc.stderr}")
    models = parse_certify_output(proc.stdout)
    record: dict[str, Any] = {
        "command": shlex.join(command),
        "n": ctx.plan.certify_n,
        "images": ctx.plan.certify_images,
        "models": models,
    }
    if proc.returncode != 0:
        tail = " | ".join(line for line in proc.stderr.strip().splitlines()[-5:])
        record["error"] = f"bench/certify.py exited with status {proc.returncode}: {tail}"
    else:
        missing = [
            m for m in ctx.plan.certify_models.split(",") if models.get(m, {}).get("art_over_ours") is None
        ]
        if missing:
            record["error"] = (
                f"no ours-vs-ART result parsed for {missing} from bench/certify.py's output (see "
                f"{CERTIFY_OUTPUT})"
            )
    return record


RUNNERS: dict[str, Callable[[Stage, _Context], dict[str, Any]]] = {
    "certify": run_certify,
    "train": run_train,
    **{suite: run_suite for suite in SUITES},
}


def _emit(path: Path, event: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps({**event, "time": time.time()}, default=_json_default) + "\n")


def _environment(device: Any) -> dict[str, Any]:
    import torch

    from art_manifold_defenses import __version__

    env: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "package": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    env["device_name"] = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    )
    return env


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (bench/certify.py): on a shared machine the wall
    time mostly measures the other jobs."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def worker(args: argparse.Namespace, plan: Plan, stages: Sequence[Stage]) -> int:
    """Run ``stages[args.worker_start:]`` in this process, one ``start`` and one ``end`` event each."""
    events = Path(args.events)
    ctx = _Context(args, plan)
    import art_manifold_defenses.demo  # noqa: F401 - imports before the first stage's clock
    import art_manifold_defenses.evaluation  # noqa: F401

    _emit(events, {"event": "env", **_environment(ctx.device)})
    for index in range(args.worker_start, len(stages)):
        stage = stages[index]
        _emit(events, {"event": "start", "index": index})
        print(f"[gpu_check] {stage.name}: started (budget {stage.budget:g} s)", flush=True)
        for other in [m for m in ctx.models if m != stage.model]:  # one model in memory at a time
            del ctx.models[other]
        if ctx.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
        began, cpu_began = time.perf_counter(), _cpu_seconds()
        try:
            record = RUNNERS[stage.kind](stage, ctx)
        except Exception as exc:  # noqa: BLE001 - recorded; the next stage still runs
            traceback.print_exc()
            record = {"error": f"{type(exc).__name__}: {exc}"}
        seconds = time.perf_counter() - began
        record["cpu_seconds"] = _cpu_seconds() - cpu_began
        _emit(events, {"event": "end", "index": index, "seconds": seconds, "record": record})
    return 0


# ------------------------------------------------------------------------------------------------------------
# supervisor: starts workers, enforces the budgets, writes the summary
# ------------------------------------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # NumPy and torch scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


class _StderrTail:
    """Copies a worker's stderr to ours and keeps its last lines (the message of a worker that dies)."""

    def __init__(self, stream: Any) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=20)
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in iter(stream.readline, ""):
            sys.stderr.write(line)
            if line.strip():
                self.lines.append(line.rstrip())

    def text(self, count: int = 5) -> str:
        self._thread.join(timeout=2.0)
        return " | ".join(list(self.lines)[-count:])


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its children (bench/certify.py)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()
    proc.wait()


def _read_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    if not path.exists():
        return [], offset
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written is read next time
    events = [json.loads(line) for line in complete.decode().splitlines() if line.strip()]
    return events, offset + len(complete)


def _worker_command(args: argparse.Namespace, start: int, events: Path) -> list[str]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--device",
        args.device,
        "--out",
        str(args.out),
        "--seed",
        str(args.seed),
        "--budget-scale",
        repr(args.budget_scale),
        "--worker-start",
        str(start),
        "--events",
        str(events),
    ]
    if args.data_root is not None:
        command += ["--data-root", str(args.data_root)]
    if args.stages:
        command += ["--stages", args.stages]
    for item in args.budget:
        command += ["--budget", item]
    return command + (["--tiny"] if args.tiny else []) + (["--verbose"] if args.verbose else [])


def supervise(args: argparse.Namespace, stages: Sequence[Stage], summary: Summary) -> None:
    """Run every stage in workers; kill a worker whose stage passes its budget or the run's time limit."""
    folder = Path(args.out) / EVENTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("worker-*.jsonl"):
        stale.unlink()
    start, deadline = 0, summary.started + args.time_limit
    while start < len(stages):
        if time.time() >= deadline:
            break
        # a file per worker: a worker killed in the middle of a line leaves it there, not in the next one's
        # file
        events, offset = folder / f"worker-{start}.jsonl", 0
        proc = subprocess.Popen(
            _worker_command(args, start, events),
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            cwd=ROOT,
        )
        assert proc.stderr is not None
        tail = _StderrTail(proc.stderr)
        current: int | None = None
        stage_began, stage_deadline = time.time(), deadline
        while True:
            new, offset = _read_events(events, offset)
            for event in new:
                if event["event"] == "env":
                    summary.environment.update({k: v for k, v in event.items() if k not in ("event", "time")})
                elif event["event"] == "start":
                    current, stage_began = event["index"], event["time"]
                    stage_deadline = min(stage_began + stages[current].budget, deadline)
                elif event["event"] == "end":
                    summary.record(
                        stages[event["index"]],
                        "error" if event["record"].get("error") else "ok",
                        event["seconds"],
                        event["record"],
                    )
                    current, start = None, event["index"] + 1
            if proc.poll() is not None:
                if new:  # events written just before the exit
                    continue
                if current is not None or start < len(stages):
                    failed = current if current is not None else start
                    summary.record(
                        stages[failed],
                        "error",
                        None,
                        {"error": f"worker exited with status {proc.returncode}: {tail.text()}"},
                    )
                    start = failed + 1
                break
            if current is None and time.time() > deadline:  # still starting when the run's time is up
                _kill(proc)
                break
            if current is not None and time.time() > stage_deadline:
                _kill(proc)
                limit = (
                    f"its budget of {stages[current].budget:g} s"
                    if stage_deadline < deadline
                    else f"the --time-limit of {args.time_limit:g} s for the whole run"
                )
                summary.record(
                    stages[current],
                    "timeout",
                    time.time() - stage_began,
                    {"error": f"killed: passed {limit}"},
                )
                start = current + 1
                break
            time.sleep(0.1)
    for stage in stages:
        if stage.name not in summary.stages:
            summary.record(
                stage,
                "skipped",
                None,
                {"error": f"not started: the --time-limit of {args.time_limit:g} s was reached"},
            )


class Summary:
    """What ``gpu_check.json`` and ``gpu_check.md`` hold; both rewritten after every stage."""

    def __init__(
        self, args: argparse.Namespace, plan: Plan, stages: Sequence[Stage], argv: Sequence[str]
    ) -> None:
        self.args, self.plan, self.order = args, plan, [s.name for s in stages]
        self.started = time.time()
        self.command = shlex.join(["python", *argv])
        self.environment: dict[str, Any] = {"device": args.device}
        self.stages: dict[str, dict[str, Any]] = {}
        self.out = Path(args.out)

    def record(self, stage: Stage, status: str, seconds: float | None, record: dict[str, Any]) -> None:
        error = record.pop("error", None)
        self.stages[stage.name] = {
            "name": stage.name,
            "kind": stage.kind,
            "model": stage.model,
            "status": status,
            "seconds": seconds,
            "budget_seconds": stage.budget,
            "error": error,
            **record,
        }
        shown = f"{seconds:.1f} s" if seconds is not None else "-"
        print(f"[gpu_check] {stage.name}: {status} ({shown}){': ' + error if error else ''}", flush=True)
        self.write()

    def to_dict(self) -> dict[str, Any]:
        stages = [self.stages[name] for name in self.order if name in self.stages]
        models: dict[str, dict[str, Any]] = {}
        for row in stages:
            if row["model"] is None:
                continue
            entry = models.setdefault(row["model"], {})
            if row["kind"] == "train":
                entry.update(
                    {"test_accuracy": row.get("test_accuracy"), "train_seconds": row.get("train_seconds")}
                )
            else:
                entry[row["kind"]] = {
                    "clean_accuracy": row.get("clean_accuracy"),
                    "robust_accuracy": row.get("robust_accuracy"),
                }
        failed = [row["name"] for row in stages if row["status"] != "ok"]
        return {
            "format": FORMAT,
            "command": self.command,
            "mode": self.plan.mode,
            "started": datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": time.time() - self.started,
            "time_limit_seconds": self.args.time_limit,
            "environment": self.environment,
            "plan": {k: v for k, v in vars(self.plan).items() if k != "budgets"},
            "complete": len(stages) == len(self.order),
            "ok": len(stages) == len(self.order) and not failed,
            "failed_stages": failed,
            "stages": stages,
            "models": models,
            "certify": self.stages.get("certify", {}).get("models", {}),
        }

    def write(self) -> dict[str, Any]:
        data = self.to_dict()
        self.out.mkdir(parents=True, exist_ok=True)
        for name, text in (
            (JSON_FILE, json.dumps(data, indent=2, default=_json_default) + "\n"),
            (MARKDOWN_FILE, markdown(data)),
        ):
            tmp = self.out / (name + ".tmp")
            tmp.write_text(text)
            tmp.replace(self.out / name)
        return data


def _fmt(value: Any, spec: str = ".3f") -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and not math.isfinite(value))
        else format(value, spec)
    )


def _stage_result(row: dict[str, Any]) -> str:
    if row["kind"] == "train" and row.get("test_accuracy") is not None:
        return (
            f"{row['train_images']:,} images, {row['epochs']} epoch(s); test accuracy "
            f"{row['test_accuracy']:.3f} "
            f"({row['test_images']:,} images)"
        )
    if row["kind"] in SUITES and row.get("clean_accuracy") is not None:
        return (
            f"clean {row['clean_accuracy']:.3f}, robust {row['robust_accuracy']:.3f} "
            f"({row['images']:,} images)"
        )
    if row["kind"] == "certify" and row.get("models"):
        return "; ".join(
            f"{m}: ART / ours x{_fmt(v.get('art_over_ours'), '.2f')}" for m, v in row["models"].items()
        )
    return ""


def markdown(data: dict[str, Any]) -> str:
    """The Markdown summary of a ``gpu_check.json`` record."""
    env, plan, stages = data["environment"], data["plan"], data["stages"]
    verdict = (
        "every stage ok"
        if data["ok"]
        else f"{len(data['failed_stages'])} stage(s) not ok: {', '.join(data['failed_stages'])}"
        + ("" if data["complete"] else " (run incomplete)")
    )
    lines = [
        "# GPU readiness check (`bench/gpu_check.py`)",
        "",
        f"`{data['command']}`",
        "",
        f"- result: **{verdict}**; wall time {data['wall_seconds']:.0f} s (limit "
        f"{data['time_limit_seconds']:.0f} s), "
        f"started {data['started']}",
        f"- device: {env.get('device')} ({env.get('device_name', 'unknown')}); torch {env.get('torch', '?')} "
        f"(CUDA {env.get('cuda')}); art-manifold-defenses {env.get('package', '?')}; Python "
        f"{env.get('python', '?')}; "
        f"{env.get('torch_threads', '?')} torch thread(s)",
        f"- mode `{plan['mode']}`: training on {plan['dataset']} ({plan['train_limit'] or 'all'} images, "
        f"{plan['epochs']} epoch(s) x the demo's epochs_scale); attacks on the first {plan['eval_images']:,} "
        "test images; "
        f"bench/certify.py on {plan['certify_models']}, n = {plan['certify_n']:,}, {plan['certify_images']} "
        "image(s)",
        "",
        "## Stages",
        "",
        "| stage | status | seconds | CPU seconds | budget (s) | result / error |",
        "|---|---|---|---|---|---|",
    ]
    for row in stages:
        detail = row["error"] if row["error"] else _stage_result(row)
        lines.append(
            f"| {row['name']} | {row['status']} | {_fmt(row['seconds'], '.1f')} | "
            f"{_fmt(row.get('cpu_seconds'), '.1f')} | {row['budget_seconds']:g} | {detail.replace('|', '/')} "
            "|"
        )
    lines += [
        "",
        "## Accuracies",
        "",
        "| model | test accuracy | quick clean | quick robust | autoattack clean | autoattack robust |",
        "|---|---|---|---|---|---|",
    ]
    for model, row in data["models"].items():
        quick, auto = row.get("quick", {}), row.get("autoattack", {})
        lines.append(
            f"| {model} | {_fmt(row.get('test_accuracy'))} | {_fmt(quick.get('clean_accuracy'))} | "
            f"{_fmt(quick.get('robust_accuracy'))} | {_fmt(auto.get('clean_accuracy'))} | "
            f"{_fmt(auto.get('robust_accuracy'))} |"
        )
    if data["certify"]:
        lines += [
            "",
            "## Certification against ART (`bench/certify.py`)",
            "",
            "Seconds per image (best of the repeats) and ratios to the forward-only and forward+noise "
            "limits; "
            f"full output in `{CERTIFY_OUTPUT}`.",
            "",
            "| model | method | s/image | x forward | x fwd+noise |",
            "|---|---|---|---|---|",
        ]
        for model, row in data["certify"].items():
            for method, seconds in row["seconds_per_image"].items():
                lines.append(
                    f"| {model} | {method} | {seconds:.4f} | "
                    f"{_fmt(row['ratio_to_forward'].get(method), '.2f')} | "
                    f"{_fmt(row['ratio_to_fwd_noise'].get(method), '.2f')} |"
                )
            lines.append(f"| {model} | **ART / ours** | x{_fmt(row.get('art_over_ours'), '.2f')} | | |")
    return "\n".join(lines) + "\n"


def _default_data_root(tiny: bool, out: Path) -> str | None:
    """``$AMD_DATA_DIR``, else ``shared/data`` in or beside the repository (offline MNIST), else the package
    default; with ``--tiny`` a cache folder under ``--out`` (the embedded MNIST needs no download)."""
    if tiny:
        return str(out / "data")
    candidates = [os.environ.get("AMD_DATA_DIR"), ROOT / "shared" / "data", ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "MNIST" / "raw").is_dir():
            return str(candidate)
    return None


def _budget_item(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not sep or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"--budget expects STAGE=SECONDS with positive seconds, got {text!r}")
    return name, seconds


def plan_of(args: argparse.Namespace) -> Plan:
    return TINY_PLAN if args.tiny else FULL_PLAN


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    import torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder with MNIST/raw (default: $AMD_DATA_DIR, shared/data or ../shared/data, else the "
        "package's; with --tiny a cache folder under --out)",
    )
    parser.add_argument("--out", default="runs/gpu-check", help="output folder (default: runs/gpu-check)")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke-test sizes (see the module docstring)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--budget-scale", type=float, default=1.0, help="multiply every stage's budget (default: 1)"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds for the whole run (default: 470, with --tiny 900)",
    )
    parser.add_argument("--verbose", action="store_true", help="progress bars of training and attacks")
    parser.add_argument(
        "--stages",
        default=None,
        help="run only these stages (comma-separated names, e.g. train:fpd,quick:fpd; default: all)",
    )
    parser.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="STAGE=SECONDS",
        help="replace one stage's budget (repeatable), e.g. --budget train:fpd=120",
    )
    parser.add_argument("--worker-start", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--events", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from art_manifold_defenses.utils import resolve_device

    try:
        resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        parser.error(f"--device: {exc}")
    try:
        build_stages(
            plan_of(args),
            1.0,
            args.stages.split(",") if args.stages else None,
            dict(_budget_item(item) for item in args.budget),
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.budget_scale <= 0 or (args.time_limit is not None and args.time_limit <= 0):
        parser.error("--budget-scale and --time-limit must be positive")
    plan = plan_of(args)
    if args.time_limit is None:
        args.time_limit = plan.time_limit
    if args.data_root is None:
        args.data_root = _default_data_root(args.tiny, Path(args.out))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    plan = plan_of(args)
    stages = build_stages(
        plan,
        args.budget_scale,
        args.stages.split(",") if args.stages else None,
        dict(_budget_item(item) for item in args.budget),
    )
    if args.worker_start is not None:
        return worker(args, plan, stages)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    script = sys.argv[0] if argv is None else "bench/gpu_check.py"
    summary = Summary(args, plan, stages, [script, *raw])
    print(
        f"[gpu_check] {len(stages)} stages, mode {plan.mode}, device {args.device}, time limit "
        f"{args.time_limit:.0f} s; "
        f"summary in {out / JSON_FILE} and {out / MARKDOWN_FILE}",
        flush=True,
    )
    supervise(args, stages, summary)
    data = summary.write()
    print(markdown(data), flush=True)
    return 0 if data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
