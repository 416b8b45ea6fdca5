"""``mfa_ha:service_address``: the operator's commands that move client routing (a service
IP, a DNS alias) to the node that takes writes and away from the one that stops."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from mfa_ha import proc
from mfa_ha.errors import CommandFailed, InvalidInput


@dataclass(frozen=True)
class Hooks:
    """``mfa_ha:service_address``: commands that move client routing (a service IP, a DNS alias)."""

    acquire: str | None = None
    release: str | None = None
    timeout: float = 30

    @classmethod
    def from_pillar(cls, value) -> Hooks:
        if value in (None, "", "none"):
            return cls()
        if not isinstance(value, dict) or set(value) - {"acquire", "release", "timeout"}:
            raise InvalidInput(
                "mfa_ha:service_address: must be none or a mapping with acquire/release commands (and timeout)"
            )
        return cls(value.get("acquire"), value.get("release"), float(value.get("timeout", 30)))

    def run(self, which: str, node: str) -> str | None:
        command = getattr(self, which)
        if not command:
            return None
        result = proc.run(shlex.split(command.format(node=node)), timeout=self.timeout, check=False)
        if result.returncode != 0:
            raise CommandFailed(
                f"mfa_ha:service_address:{which} failed (exit {result.returncode}): {result.output.strip()[-300:]}"
            )
        return command
