"""The finding of a gradient-masking check: :class:`AuditFlag` (code, message, evidence, reference), the
references the checks cite and the argument check shared by the checks. Re-exported by :mod:`.audit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..utils import json_safe

__all__ = ["ATHALYE_2018", "AuditFlag", "CARLINI_2019", "MARGIN_LOSS_REFERENCE"]

ATHALYE_2018 = "Athalye et al. 2018, Sec. 3.1"
CARLINI_2019 = "Carlini et al. 2019, Sec. 5 / App. A"
MARGIN_LOSS_REFERENCE = "Carlini et al. 2019, App. A; Croce & Hein 2020 (DLR loss, AutoAttack)"


@dataclass(frozen=True)
class AuditFlag:
    """One audit finding: a machine-readable ``code``, a sentence for people, and the numbers behind it.

    Each flag's ``reference`` names its source: Athalye et al. 2018, Section 3.1, or Carlini et al. 2019,
    Section 5 / Appendix A.
    """

    code: str
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    reference: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "evidence": json_safe(dict(self.evidence)),
            "reference": self.reference,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditFlag:
        return cls(
            code=str(data["code"]),
            message=str(data["message"]),
            evidence=dict(data.get("evidence", {})),
            reference=str(data.get("reference", "")),
        )


def _check_tolerance(name: str, value: float, upper: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= upper:
        raise ValueError(f"{name} must be a number in [0, {upper}], got {value!r}")
    return float(value)
