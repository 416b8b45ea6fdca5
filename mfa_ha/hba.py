"""pg_hba.conf entries for the peers: one managed block, the rest of the file kept as it is.

The block sits at the top of the file because pg_hba.conf is first-match: a site's own
``reject`` line further down must not shut the peers' replication out.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from dataclasses import dataclass

from mfa_ha.errors import InvalidInput, MfaHaError
from mfa_ha.naming import check_address
from mfa_ha.server import Server

BEGIN = "# BEGIN mfa-ha managed entries (salt state pgrepl.hba; edits here are reverted)"
END = "# END mfa-ha managed entries"
TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
METHODS = ("scram-sha-256", "md5", "trust", "reject", "peer", "ident", "cert", "gss", "sspi",
           "pam", "ldap", "radius", "password")
ENTRY_KEYS = {"type", "database", "user", "address", "method", "options"}
DEFAULT_METHOD = "scram-sha-256"


@dataclass(frozen=True)
class HbaEntry:
    type: str
    database: str
    user: str
    address: str | None
    method: str
    options: str = ""

    @property
    def line(self) -> str:
        fields = [self.type, self.database, self.user] + ([self.address] if self.address else [])
        return "  ".join(fields + [self.method] + ([self.options] if self.options else []))

    @property
    def is_local(self) -> bool:
        if self.type == "local":
            return True
        try:
            return ipaddress.ip_network(self.address, strict=False).is_loopback
        except ValueError:
            return self.address in ("localhost", "samehost")


def host_address(address: str) -> str:
    """A node address as pg_hba wants it: one host as /32 or /128, a host name as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return f"{ip}/{ip.max_prefixlen}"


def entry(raw, key: str, default_method: str) -> HbaEntry:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{key}: must be a mapping with type, database, user, address")
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        raise InvalidInput(f"{key}: unknown key(s) {', '.join(sorted(unknown))}")
    kind = str(raw.get("type", "host"))
    method = str(raw.get("method", default_method))
    if kind not in TYPES:
        raise InvalidInput(f"{key}:type: {kind!r} is not one of {', '.join(TYPES)}")
    if method not in METHODS:
        raise InvalidInput(f"{key}:method: {method!r} is not a pg_hba authentication method")
    address = raw.get("address")
    if kind == "local":
        address = None
    elif not address:
        raise InvalidInput(f"{key}:address: missing (a {kind} entry needs an address)")
    else:
        address = _checked_address(str(address), f"{key}:address")
    fields = {"database": raw.get("database", "all"), "user": raw.get("user", "all")}
    for name, value in fields.items():
        if not isinstance(value, str) or not value or any(c.isspace() for c in value):
            raise InvalidInput(f"{key}:{name}: {value!r} must be one word")
    return HbaEntry(kind, fields["database"], fields["user"], address, method, str(raw.get("options", "")))


def _checked_address(text: str, key: str) -> str:
    if text in ("all", "samehost", "samenet"):
        return text
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        return host_address(check_address(text, key))
    except ValueError:
        raise InvalidInput(f"{key}: {text!r} is not an address or network") from None


def wanted_entries(nodes: dict, replication_user: str, hba_pillar: dict | None) -> list[HbaEntry]:
    """Each node may stream (database ``replication``) and rewind (database ``postgres``) from
    its peers, plus pillar ``mfa_ha:hba:entries``. ``trust`` for a non-local address is refused
    unless ``mfa_ha:hba:allow_trust`` is true."""
    hba_pillar = hba_pillar or {}
    if not isinstance(hba_pillar, dict):
        raise InvalidInput("mfa_ha:hba: must be a mapping (method, allow_trust, entries)")
    unknown = set(hba_pillar) - {"method", "allow_trust", "entries"}
    if unknown:
        raise InvalidInput(f"mfa_ha:hba: unknown key(s) {', '.join(sorted(unknown))}")
    method = str(hba_pillar.get("method", DEFAULT_METHOD))
    if method not in METHODS:
        raise InvalidInput(f"mfa_ha:hba:method: {method!r} is not a pg_hba authentication method")
    entries = []
    for node_id, node in sorted(nodes.items()):
        address = host_address(node["address"])
        for database in ("replication", "postgres"):
            entries.append(HbaEntry("host", database, replication_user, address, method))
    extra = hba_pillar.get("entries") or []
    if not isinstance(extra, list):
        raise InvalidInput("mfa_ha:hba:entries: must be a list of entries")
    entries += [entry(raw, f"mfa_ha:hba:entries:{i}", method) for i, raw in enumerate(extra)]
    if not hba_pillar.get("allow_trust"):
        for found in entries:
            if found.method == "trust" and not found.is_local:
                raise InvalidInput(
                    f"mfa_ha:hba: 'trust' for {found.address} lets anyone on that host in without a "
                    "password; use scram-sha-256, or set mfa_ha:hba:allow_trust: true to insist")
    return list(dict.fromkeys(entries))


def render_block(entries: list[HbaEntry]) -> list[str]:
    return [BEGIN, *(e.line for e in entries), END]


def managed_lines(text: str) -> list[str] | None:
    """The lines inside the managed block (normalised), or None when there is no block."""
    lines = text.splitlines()
    if BEGIN not in lines or END not in lines:
        return None
    start, end = lines.index(BEGIN), lines.index(END)
    return [" ".join(line.split()) for line in lines[start + 1:end] if line.strip()]


def with_block(text: str, entries: list[HbaEntry]) -> str:
    """``text`` with the managed block replaced, or inserted at the top."""
    lines = text.splitlines()
    block = render_block(entries)
    if BEGIN in lines and END in lines and lines.index(BEGIN) < lines.index(END):
        start, end = lines.index(BEGIN), lines.index(END)
        lines[start:end + 1] = block
    else:
        lines = block + [""] + lines
    return "\n".join(lines) + "\n"


def diff(text: str, entries: list[HbaEntry]) -> dict:
    have = managed_lines(text) or []
    want = [" ".join(e.line.split()) for e in entries]
    return {"missing": [line for line in want if line not in have],
            "unexpected": [line for line in have if line not in want],
            "differs": have != want}


def hba_path(server: Server) -> str:
    if server.is_running():
        return server.query_one("SELECT current_setting('hba_file') AS f")["f"]
    return os.path.join(server.data_dir, "pg_hba.conf")


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise MfaHaError(f"{path} does not exist: is mfa_ha:postgres:data_dir right?") from None


def apply(server: Server, entries: list[HbaEntry]) -> dict:
    """Write the managed block and reload. When the server would reject the new file (as
    ``pg_hba_file_rules`` parses it from disk), the old file is put back before any reload."""
    path = hba_path(server)
    old = read(path)
    result = diff(old, entries)
    if not result["differs"]:
        return {**result, "path": path, "changed": False}
    _write_like(path, with_block(old, entries))
    if server.is_running():
        errors = server.query("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")
        if errors:
            _write_like(path, old)
            problems = "; ".join(f"line {e['line_number']}: {e['error']}" for e in errors)
            raise MfaHaError(f"PostgreSQL rejects the new {path} ({problems}); the old file is back")
        server.reload()
    return {**result, "path": path, "changed": True}


def _write_like(path: str, text: str) -> None:
    """Atomic replace keeping the file's owner and mode."""
    info = os.stat(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".pg_hba.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, info.st_mode & 0o777)
        os.chown(tmp, info.st_uid, info.st_gid)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
