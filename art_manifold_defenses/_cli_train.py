"""``amd train``'s steps: load the data set (``--train-limit``), fingerprint the run, refuse (or with
``--overwrite`` clear) an output folder holding another run, train the zoo model plainly or through the
defence's record, and save the checkpoint with its test accuracy (:func:`_train`). Heavy libraries are
imported when a step runs."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from .defence_record import train_from_namespace
from .defences import resolve_defence
from .utils import output_dir


def _load_data(args: argparse.Namespace) -> dict[str, Any]:
    from .data import load_dataset

    x_train, y_train = load_dataset(args.dataset, "train", root=args.data_root)
    x_test, y_test = load_dataset(args.dataset, "test", root=args.data_root)
    limit = getattr(args, "train_limit", None)
    if limit is not None:
        if limit > len(x_train):
            raise ValueError(
                f"--train-limit {limit} is more than the {len(x_train)} training images of {args.dataset!r}"
            )
        x_train, y_train = x_train[:limit], y_train[:limit]
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


#: ``amd train`` flags that do not change the trained model (left out of its fingerprint).
_NOT_IN_TRAIN_FINGERPRINT = frozenset({"command", "out", "quiet", "device", "data_root", "overwrite"})
_TRAIN_FINGERPRINT_FILE = "fingerprint.json"


def _train_fingerprint(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint of an ``amd train`` run: every flag that changes the model, and hashes of the data."""
    from .fingerprint import arrays_hash, make_fingerprint

    flags = {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_IN_TRAIN_FINGERPRINT}
    return make_fingerprint(
        "train",
        train_data=arrays_hash(data["x_train"], data["y_train"]),
        validation_data=arrays_hash(data["x_test"], data["y_test"]),
        **flags,
    )


def _check_train_output(out: Path, fingerprint: dict[str, Any], *, overwrite: bool, is_main: bool) -> None:
    """Refuse (or with ``overwrite`` clear) an ``amd train`` output folder holding another run: a
    ``train_state/`` whose recorded fingerprint differs or is missing, or a ``model.pt`` whose ``model.json``
    records another one."""
    from . import distributed
    from .fingerprint import check_fingerprint, overwrite_hint

    state_dir, model_path = out / "train_state", out / "model.pt"
    if overwrite and is_main:
        shutil.rmtree(state_dir, ignore_errors=True)
        for stale in (model_path, model_path.with_suffix(".json")):
            stale.unlink(missing_ok=True)
    distributed.barrier()
    hint = overwrite_hint(None)
    record = state_dir / _TRAIN_FINGERPRINT_FILE
    if state_dir.is_dir() and any(p.name != _TRAIN_FINGERPRINT_FILE for p in state_dir.iterdir()):
        check_fingerprint(_read_json_object(record), fingerprint, source=state_dir, hint=hint)
    if model_path.exists():
        sidecar = _read_json_object(model_path.with_suffix(".json")) or {}
        check_fingerprint(
            (sidecar.get("extra") or {}).get("fingerprint"), fingerprint, source=model_path, hint=hint
        )
    distributed.barrier()  # every rank has checked before rank 0 writes
    if is_main:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(record.name + ".tmp")
        tmp.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
        tmp.replace(record)


def _read_json_object(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _train(args: argparse.Namespace, device: Any, *, is_main: bool) -> int:
    import torch

    from .checkpoint import save_checkpoint
    from .models import build_model
    from .training import evaluate_accuracy, train
    from .utils import set_seed

    set_seed(args.seed)
    out = output_dir(args.out)
    data = _load_data(args)
    fingerprint = _train_fingerprint(args, data)
    _check_train_output(out, fingerprint, overwrite=args.overwrite, is_main=is_main)
    channels, size = data["x_train"].shape[1], data["x_train"].shape[2]
    num_classes = int(max(data["y_train"].max(), data["y_test"].max())) + 1
    architecture: dict[str, Any] = {
        "name": args.model,
        "in_channels": int(channels),
        "num_classes": num_classes,
        "input_size": int(size),
    }
    if args.activation:
        architecture["activation"] = args.activation
    started = time.perf_counter()
    defence_meta = None
    if args.defense == "none":
        arch = dict(architecture)
        model = build_model(arch.pop("name"), **arch)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        train(
            model,
            data["x_train"],
            data["y_train"],
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=optimizer,
            device=device,
            validation_data=(data["x_test"], data["y_test"]),
            checkpoint_dir=out / "train_state",
            seed=args.seed,
            verbose=not args.quiet,
        )
    else:
        defence, overrides = resolve_defence(args.defense)
        model, defence_meta = train_from_namespace(defence, args, data, device, architecture, overrides)
    seconds = time.perf_counter() - started
    if not is_main:
        return 0
    accuracy = evaluate_accuracy(model, data["x_test"], data["y_test"], device=device)
    save_checkpoint(
        model,
        out / "model.pt",
        architecture=architecture,
        defence=defence_meta,
        dataset=args.dataset,
        extra={
            "test_accuracy": accuracy,
            "epochs": args.epochs,
            "seed": args.seed,
            "train_seconds": seconds,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "fingerprint": fingerprint,
        },
    )
    print(
        f"test accuracy: {accuracy:.4f} ({len(data['y_test'])} images, {args.dataset}); saved "
        f"{out / 'model.pt'} in {seconds:.0f}s"
    )
    return 0
