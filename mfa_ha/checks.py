"""A decision made of named, measured checks: what every precheck and verdict is built of."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Check:
    """One condition, whether it holds, and what was measured to say so."""

    name: str
    ok: bool
    measured: str


@dataclass
class Checked:
    """The checks behind a decision, in the order they were made."""

    checks: list[Check] = field(default_factory=list, kw_only=True)

    def check(self, name: str, ok: bool, measured: str) -> bool:
        """Record a check; returns whether it holds, so a caller can stop at the first that fails."""
        self.checks.append(Check(name, bool(ok), measured))
        return bool(ok)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def checks_as_dicts(self) -> list[dict]:
        return [{"check": c.name, "ok": c.ok, "measured": c.measured} for c in self.checks]
