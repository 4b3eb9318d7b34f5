"""The evaluation's resume files under ``out_dir``: one JSON record per finished attack
(``attacks/<label>-<key>.json``) and one per finished batch of an attack in progress, each stamped with the
run's context so that a file of another run is never reused, and the folder check that refuses a folder of
another run before any work.

No paper: storage for :func:`~.runner.evaluate` (resume after a kill gives the uninterrupted run's result).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..fingerprint import check_fingerprint, make_fingerprint, overwrite_hint
from ..utils import write_text_atomic
from .results import AttackResult

RESULT_FORMAT = "art-manifold-defenses/attack-result/1"


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.lower())
    return "-".join(filter(None, keep.split("-")))[:60] or "attack"


def _attack_path(out_dir: Path, spec: Any) -> Path:
    key = hashlib.sha1(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:10]
    return out_dir / "attacks" / f"{_slug(spec.label)}-{key}.json"


def _load_finished(path: Path, context: Mapping[str, Any]) -> AttackResult | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("format") != RESULT_FORMAT or data.get("context") != _json_roundtrip(context):
        return None
    return AttackResult.from_dict(data["result"])


def _json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _save_attack(path: Path, result: AttackResult, context: Mapping[str, Any]) -> None:
    write_text_atomic(
        path,
        json.dumps(
            {"format": RESULT_FORMAT, "context": _json_roundtrip(context), "result": result.to_dict()},
            sort_keys=True,
        )
        + "\n",
    )


def _batch_path(attack_path: Path, b: int) -> Path:
    return attack_path.with_suffix("") / f"batch-{b:06d}.json"


def _part_to_dict(part: AttackResult, *, offset: int) -> dict[str, Any]:
    """One batch's share of an attack result (global indices for the violations)."""
    return {
        "correct": [int(c) for c in part.correct],
        "norms": [None if not math.isfinite(v) else float(v) for v in part.norms],
        "violation_indices": [int(i) + offset for i in part.violation_indices],
        "seconds": float(part.seconds),
        "attacked": int(part.attacked),
    }


def _load_part(path: Path, context: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("format") != RESULT_FORMAT + "/batch" or data.get("context") != _json_roundtrip(context):
        return None
    part = data.get("part")
    return part if isinstance(part, dict) else None


def _save_part(path: Path, part: Mapping[str, Any], context: Mapping[str, Any]) -> None:
    write_text_atomic(
        path,
        json.dumps(
            {"format": RESULT_FORMAT + "/batch", "context": _json_roundtrip(context), "part": dict(part)},
            sort_keys=True,
        )
        + "\n",
    )


def _remove_parts(attack_path: Path) -> None:
    folder = attack_path.with_suffix("")
    if folder.is_dir():
        for p in folder.glob("batch-*.json*"):
            p.unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:  # a file that is not ours: leave the folder
            pass


_HINT = overwrite_hint("overwrite=True")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # a file cut by a kill (writes are atomic, so not ours) is recomputed


def _clear_out_dir(out_dir: Path) -> None:
    """Remove what an evaluation writes in ``out_dir`` (``--overwrite``): resume files and reports."""
    for p in [*out_dir.glob("attacks/*/batch-*.json*"), *out_dir.glob("attacks/*.json*")]:
        p.unlink(missing_ok=True)
    for folder in out_dir.glob("attacks/*/"):
        _remove_parts(folder.with_suffix(".json"))
    for name in ("results.json", "results.md", "curves.png"):
        (out_dir / name).unlink(missing_ok=True)


def _check_out_dir(out_dir: Path, context: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> None:
    """Refuse an ``out_dir`` that holds another evaluation: a resume file of another context (model, data,
    seed, EoT/vote/repeat settings), a ``results.json`` of another fingerprint (the context and the suite), or
    a ``results.json`` without a fingerprint (an earlier version) beside no resume file of this run."""
    current = make_fingerprint("evaluate", **context)
    matched = False
    for path in sorted([*out_dir.glob("attacks/*.json"), *out_dir.glob("attacks/*/batch-*.json")]):
        data = _read_json(path)
        if data is None:
            continue
        stored = data.get("context") if isinstance(data, dict) else None
        check_fingerprint(
            None if not isinstance(stored, dict) else make_fingerprint("evaluate", **stored),
            current,
            source=path,
            hint=_HINT,
        )
        matched = True
    results = out_dir / "results.json"
    record = _read_json(results) if results.is_file() else None
    if isinstance(record, dict):
        stored = (record.get("settings") or {}).get("fingerprint")
        if stored is not None or not matched:
            check_fingerprint(stored, fingerprint, source=results, hint=_HINT)
