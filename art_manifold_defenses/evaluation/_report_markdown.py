"""The Markdown of a record (:func:`markdown_table`: summary, one row per attack, audit flags, curves) and of
several records in one report (:func:`combined_markdown`). Rendered from the record only. Re-exported by
:mod:`.report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["combined_markdown", "markdown_table"]


def _fmt_eps(eps: float | None) -> str:
    return "unbounded" if eps is None else f"{eps:g}"


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _summary_lines(record: Mapping[str, Any]) -> list[str]:
    settings = record.get("settings", {})
    extra = []
    if settings.get("stochastic"):
        extra.append(
            f"stochastic model: EoT {settings.get('eot_samples')} samples, majority of "
            f"{settings.get('votes')} "
            f"votes, worst of {settings.get('repeats')} repeats"
        )
    if settings.get("bpda"):
        extra.append("BPDA surrogate used for gradient-based attacks")
    lines = [
        f"- model: `{record['model']}`, dataset: `{record.get('dataset')}`, n = {record['n']}, seed = "
        f"{record['seed']}",
        f"- clean accuracy: **{_fmt_pct(record['clean_accuracy'])}**",
        "- robust accuracy (per-point worst case over "
        f"{sum(a.get('error') is None for a in record['attacks'])} attacks): "
        f"**{_fmt_pct(record['robust_accuracy'])}**",
    ]
    if record.get("autoattack_acc") is not None:
        lines.append(f"- AutoAttack accuracy: {record['autoattack_acc']:.2f}%")
    lines += [f"- {e}" for e in extra]
    return lines


def markdown_table(record: Mapping[str, Any], *, title: str | None = None, curves: str | None = None) -> str:
    """The Markdown report of a record: summary, one row per attack, the audit flags and (optionally) the
    curves."""
    out = [f"# {title or 'Evaluation: ' + str(record['model'])}", ""]
    out += _summary_lines(record)
    out += [
        "",
        "| attack | library | norm | eps | accuracy | median perturbation | violations | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in record["attacks"]:
        if a.get("error") is not None:
            out.append(
                f"| {a['label']} | {a['library']} | {a['norm']} | {_fmt_eps(a['eps'])} | failed: "
                f"{a['error']} | | | |"
            )
            continue
        median = "" if a.get("median_norm") is None else f"{a['median_norm']:.4g}"
        label = a["label"] + (f" ({a['note']})" if a.get("note") else "")
        out.append(
            f"| {label} | {a['library']} | {a['norm']} | {_fmt_eps(a['eps'])} | {_fmt_pct(a['accuracy'])} | "
            f"{median} | {a.get('violations', 0)} | {a['seconds']:.1f} |"
        )
    flags = record.get("audit", {}).get("flags", [])
    out += ["", f"## Gradient-masking audit: {len(flags)} flag(s)", ""]
    out += [f"- **{f['code']}**: {f['message']}" for f in flags] or [
        "- no flag raised (this does not prove robustness)."
    ]
    if curves:
        out += ["", f"![robustness curves]({curves})"]
    versions = record.get("versions", {})
    if versions:
        out += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    return "\n".join(out) + "\n"


def combined_markdown(
    sections: Sequence[tuple[str, Mapping[str, Any], str | None]],
    *,
    title: str,
    preamble: str = "",
    summary: bool = True,
) -> str:
    """One report for several records: a summary table (unless ``summary`` is false), then each record's
    section.

    ``sections`` = ``(name, record, curves image path relative to the report or None)``.
    """
    out = [f"# {title}", ""]
    if preamble:
        out += [preamble, ""]
    if summary:
        out += [
            "| model | clean accuracy | robust accuracy | AutoAttack | audit flags |",
            "|---|---|---|---|---|",
        ]
    for name, record, _ in sections if summary else ():
        aa = "n/a" if record.get("autoattack_acc") is None else f"{record['autoattack_acc']:.2f}%"
        codes = sorted({f["code"] for f in record.get("audit", {}).get("flags", [])})
        out.append(
            f"| {name} | {_fmt_pct(record['clean_accuracy'])} | {_fmt_pct(record['robust_accuracy'])} | {aa} "
            "| "
            f"{', '.join(codes) or 'none'} |"
        )
    for name, record, curves in sections:
        body = markdown_table(record, title=name, curves=curves)
        out += [""] + [
            ("#" + line if line.startswith("#") else line) for line in body.splitlines()
        ]  # demote headings
    return "\n".join(out) + "\n"
