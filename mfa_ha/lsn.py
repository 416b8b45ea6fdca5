"""Log sequence numbers as PostgreSQL prints them (``16/B374D848``) and as integers."""

from __future__ import annotations

from mfa_ha.errors import InvalidInput


def to_int(lsn: str) -> int:
    try:
        high, low = str(lsn).strip().split("/")
        return (int(high, 16) << 32) + int(low, 16)
    except ValueError:
        raise InvalidInput(f"not an LSN: {lsn!r} (expected the form 0/3000028)") from None


def to_str(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def diff(later: str | None, earlier: str | None) -> int | None:
    if not later or not earlier:
        return None
    return to_int(later) - to_int(earlier)
