"""Fingerprints of resumable outputs: what a result was computed from, so that a rerun resumes only its own
run.

A fingerprint is a flat JSON object: the kind of output, a hash of the model (module structure and state
dict), the data (a hash, or a hash per row) and every setting that changes a row. It lives inside the result
file itself -- the first line ``# amd-fingerprint {...}`` of a TSV (:func:`start_tsv`), a
``fingerprint``/``context`` field of a JSON record, an entry of a training state -- so it cannot be lost apart
from the rows it describes.

A rerun compares it with its own (:func:`check_fingerprint`): the same fingerprint resumes, another one raises
:class:`FingerprintMismatchError` naming every field that differs, and a file without one (written by an older
version) is refused too, since what it holds cannot be told. ``--overwrite`` (or the Python argument the
message names) starts afresh. Rows of a TSV also carry a hash of their image (:func:`image_hashes`), so a
resumed run that extends or moves its index range still checks that every finished row was computed on the
image it now expects.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .utils import write_text_atomic

__all__ = [
    "FINGERPRINT_FORMAT",
    "TSV_FINGERPRINT_PREFIX",
    "FingerprintMismatchError",
    "arrays_hash",
    "check_fingerprint",
    "check_row_images",
    "file_hash",
    "fingerprint_differences",
    "image_hashes",
    "make_fingerprint",
    "model_hash",
    "overwrite_hint",
    "read_tsv",
    "resume_tsv",
    "start_tsv",
]

FINGERPRINT_FORMAT = "amd-fingerprint/1"
#: The first line of a resumable TSV: this prefix, then the fingerprint as one line of JSON.
TSV_FINGERPRINT_PREFIX = "# amd-fingerprint "
#: Length of the per-row image hash (hex digits of a SHA-256).
IMAGE_HASH_CHARS = 16


class FingerprintMismatchError(ValueError):
    """A resumable output holds the results of another run, or of an older version that wrote no
    fingerprint."""


def overwrite_hint(python_argument: str | None) -> str:
    """The way out that a refusal offers: ``--overwrite`` on the command line, ``python_argument`` in
    Python."""
    python = f" (Python API: {python_argument})" if python_argument else ""
    return f"rerun with --overwrite to start afresh{python}, or write to another output folder"


# ----------------------------------------------------------------------------------------------------------
# hashes
def _update_with_tensor(h: Any, tensor: torch.Tensor) -> None:
    t = tensor.detach().cpu()
    h.update(f"{t.dtype}:{tuple(t.shape)};".encode())
    if t.dtype == torch.bfloat16 or t.is_quantized:
        t = t.dequantize() if t.is_quantized else t.float()
    h.update(t.contiguous().numpy().tobytes())


def model_hash(model: nn.Module, *, weights: bool = True) -> str:
    """SHA-256 of a model: the type of every module (so a ReLU net differs from the same weights in an ELU
    net) and every entry of the state dict (names, dtypes, shapes and, with ``weights``, values; without, the
    hash describes the architecture only, e.g. of a model about to be trained)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    h = hashlib.sha256()
    for name, module in model.named_modules():
        h.update(f"{name}:{type(module).__name__};".encode())
    for name, value in model.state_dict().items():
        h.update(f"{name}=".encode())
        if not isinstance(value, torch.Tensor):  # extra state
            h.update(repr(value).encode() if weights else b"extra")
        elif weights:
            _update_with_tensor(h, value)
        else:
            h.update(f"{value.dtype}:{tuple(value.shape)};".encode())
    return h.hexdigest()


def arrays_hash(*arrays: Any, algorithm: str = "sha256") -> str:
    """Hash (``hashlib`` ``algorithm``) of numpy arrays or tensors: shape, dtype and bytes of each, in
    order."""
    h = hashlib.new(algorithm)
    for value in arrays:
        arr = np.ascontiguousarray(
            value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        )
        h.update(str((arr.shape, arr.dtype.str)).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def image_hashes(x: np.ndarray) -> list[str]:
    """A short hash of every image of a batch (its float32 bytes), stored per row of a resumable TSV."""
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    return [hashlib.sha256(image.tobytes()).hexdigest()[:IMAGE_HASH_CHARS] for image in arr]


def file_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's content."""
    h = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------
# fingerprints
def make_fingerprint(kind: str, **fields: Any) -> dict[str, Any]:
    """The fingerprint of an output of ``kind`` (``"certify"``, ``"verify"``, ...) with ``fields``, normalised
    through JSON (sorted keys, tuples as lists) so that a stored and a fresh one compare equal."""
    record = {"format": FINGERPRINT_FORMAT, "kind": kind, **fields}
    return dict(json.loads(json.dumps(record, sort_keys=True, default=str)))


def _text(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, str) and len(value) >= 32 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "..."  # a hash
    return text


def _change(old: Any, new: Any, width: int = 80) -> str:
    """``old -> new``; two long values are shown around their first difference (e.g. the eps inside a
    suite)."""
    a, b = _text(old), _text(new)
    if len(a) <= width and len(b) <= width:
        return f"{a} -> {b}"
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start, stop = max(0, first - width // 4), max(0, first - width // 4) + width // 2

    def excerpt(text: str) -> str:
        return ("..." if start else "") + text[start:stop] + ("..." if len(text) > stop else "")

    return f"{excerpt(a)} -> {excerpt(b)}"


def fingerprint_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"field: stored -> current"`` for every field that differs (hashes shortened, long values shown around
    their first difference)."""
    lines = []
    for key in sorted(set(stored) | set(current)):
        if key not in stored:
            lines.append(f"{key}: (absent) -> {_text(current[key])[:80]}")
        elif key not in current:
            lines.append(f"{key}: {_text(stored[key])[:80]} -> (absent)")
        elif stored[key] != current[key]:
            lines.append(f"{key}: {_change(stored[key], current[key])}")
    return lines


def check_fingerprint(
    stored: Any, current: Mapping[str, Any], *, source: str | os.PathLike[str], hint: str
) -> None:
    """Raise :class:`FingerprintMismatchError` unless ``stored`` (read from ``source``) equals ``current``.

    ``stored`` is ``None`` (or not a fingerprint) for a file written without one, by an older version."""
    if not isinstance(stored, Mapping) or "format" not in stored:
        raise FingerprintMismatchError(
            f"{source} has no fingerprint (written by an older version, or not by this package), so what it "
            "holds "
            f"cannot be checked against this run; {hint}"
        )
    differences = fingerprint_differences(stored, current)
    if differences:
        raise FingerprintMismatchError(
            f"{source} holds the results of another run; what differs (in the file -> this run): "
            f"{'; '.join(differences)}. Resuming would mix the two; {hint}"
        )


def check_row_images(
    rows: Sequence[Mapping[str, str]],
    expected: Mapping[int, tuple[int, str]],
    *,
    source: str | os.PathLike[str],
    hint: str,
) -> None:
    """Every finished row whose ``idx`` this run also processes must hold the same label and image hash.

    ``expected`` maps an index to ``(label, image hash)`` of this run."""
    for row in rows:
        index = int(row["idx"])
        if index not in expected:
            continue
        label, digest = expected[index]
        if row.get("image_hash") != digest or int(row["label"]) != label:
            raise FingerprintMismatchError(
                f"{source}: the row of image {index} was computed on another image or label (label "
                f"{row['label']}, "
                f"image hash {row.get('image_hash') or '(none)'}; this run: label {label}, image hash "
                f"{digest}), so "
                f"the data set or the index range differs; {hint}"
            )


# ----------------------------------------------------------------------------------------------------
# resumable TSV
def start_tsv(path: str | os.PathLike[str], fingerprint: Mapping[str, Any], columns: Sequence[str]) -> Path:
    """Write a fresh TSV holding only its fingerprint line and header (atomically: a kill never leaves half a
    header)."""
    header = (
        TSV_FINGERPRINT_PREFIX
        + json.dumps(dict(fingerprint), sort_keys=True)
        + "\n"
        + "\t".join(columns)
        + "\n"
    )
    return write_text_atomic(path, header)


def read_tsv(path: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, list[str], list[dict[str, str]]]:
    """``(fingerprint or None, columns, rows)`` of a TSV; only complete rows (ending with a newline and with
    one field per column) are returned, so a line cut by a kill is ignored."""
    text = Path(path).read_text()
    lines = text.split("\n")
    lines.pop()  # the part after the last newline: empty, or a row cut by a kill
    fingerprint: dict[str, Any] | None = None
    if lines and lines[0].startswith(TSV_FINGERPRINT_PREFIX):
        try:
            loaded = json.loads(lines.pop(0)[len(TSV_FINGERPRINT_PREFIX) :])
        except json.JSONDecodeError:
            loaded = None
        fingerprint = loaded if isinstance(loaded, dict) else None
    if not lines:
        return fingerprint, [], []
    columns = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) == len(columns):
            rows.append(dict(zip(columns, fields, strict=True)))
    return fingerprint, columns, rows


def _drop_partial_line(path: Path) -> None:
    """Cut a last line left without its newline by a killed run, so appended rows start on a fresh line."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def resume_tsv(
    path: str | os.PathLike[str],
    fingerprint: Mapping[str, Any],
    columns: Sequence[str],
    *,
    resume: bool,
    hint: str,
    expected: Mapping[int, tuple[int, str]],
) -> list[dict[str, str]]:
    """Prepare ``path`` for appending rows and return its finished rows.

    With ``resume`` and an existing file: its fingerprint and columns must match, and every finished row whose
    index is in ``expected`` (index -> ``(label, image hash)`` of this run, :func:`check_row_images`) must
    hold that label and image, else :class:`FingerprintMismatchError`; a last line cut by a kill is removed,
    and the complete rows are returned. Otherwise the file is started afresh (:func:`start_tsv`) and ``[]`` is
    returned."""
    path = Path(path)
    if not (resume and path.is_file()):
        start_tsv(path, fingerprint, columns)
        return []
    stored, header, rows = read_tsv(path)
    check_fingerprint(stored, fingerprint, source=path, hint=hint)
    if header != list(columns):
        raise FingerprintMismatchError(f"{path} has columns {header}, expected {list(columns)}; {hint}")
    check_row_images(rows, expected, source=path, hint=hint)
    _drop_partial_line(path)
    return rows
