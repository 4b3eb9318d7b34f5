"""Cost estimates that long operations print when they start, all in one format.

``evaluate()``, ``amd train`` (the shared training loop), ``amd certify``
(:func:`~.smoothing.outputs.certify_to_tsv`) and ``amd verify`` (:class:`~.verification.verifier.Verifier`)
time a small probe of their own work on this machine (a forward and backward pass, the first batches, the
first image), multiply it by the work they plan, and print one line through ``tqdm.write`` (so progress bars
stay intact), only when verbose::

    estimate: <the work>: about <duration> on this machine (<what the duration was computed from>)

The measured costs of every command's defaults and of the papers' settings are in ``docs/costs.md``. Imports
nothing heavy (the ``amd`` parser may import it).
"""

from __future__ import annotations

import time

__all__ = ["clock", "estimate_line", "format_seconds", "report_estimate"]


def clock() -> float:
    """The clock of every probe (``time.perf_counter``); tests replace it to check how an estimate is
    computed."""
    return time.perf_counter()


def format_seconds(seconds: float) -> str:
    """A duration for a human: ``"<1 s"``, ``"42 s"``, ``"3.5 min"`` or ``"2.1 h"``."""
    seconds = max(float(seconds), 0.0)
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_line(what: str, seconds: float, basis: str, *, bound: str = "about") -> str:
    """``"estimate: {what}: {bound} {duration} on this machine ({basis})"``; ``bound`` is ``"about"``,
    ``"up to about"`` (an upper bound: the work may stop early) or ``"at most"`` (a hard limit)."""
    return f"estimate: {what}: {bound} {format_seconds(seconds)} on this machine ({basis})"


def report_estimate(
    what: str, seconds: float, basis: str, *, bound: str = "about", verbose: bool = True
) -> str:
    """Print :func:`estimate_line` with ``tqdm.write`` when ``verbose``; return the line either way."""
    line = estimate_line(what, seconds, basis, bound=bound)
    if verbose:
        from tqdm.auto import tqdm

        tqdm.write(line)
    return line
