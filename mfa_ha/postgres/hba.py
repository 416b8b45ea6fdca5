"""pg_hba.conf entries for the peers: one managed block, the rest of the file kept as it is.

The block sits at the top of the file because pg_hba.conf is first-match: a site's own
``reject`` line further down must not shut the peers' replication out.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from mfa_ha.errors import InvalidInput, MfaHaError
from mfa_ha.files import replace_keeping_owner
from mfa_ha.postgres.naming import check_address
from mfa_ha.postgres.server import Server

BEGIN = "# BEGIN mfa-ha managed entries (salt state pgrepl.hba; edits here are reverted)"
END = "# END mfa-ha managed entries"
TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
METHODS = (
    "scram-sha-256",
    "md5",
    "trust",
    "reject",
    "peer",
    "ident",
    "cert",
    "gss",
    "sspi",
    "pam",
    "ldap",
    "radius",
    "password",
)
ENTRY_KEYS = {"type", "database", "user", "address", "method", "options"}
DEFAULT_METHOD = "scram-sha-256"
FOREIGN_POLICIES = ("repair", "report")  # mfa_ha:hba:foreign: what to do with lines that defeat the block


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


def wanted_entries(nodes: dict, replication_user: str, hba_pillar: dict | None, tls: bool = False) -> list[HbaEntry]:
    """Each node may stream (database ``replication``) and rewind (database ``postgres``) from
    its peers (``hostssl`` when TLS is on), plus pillar ``mfa_ha:hba:entries``. ``trust`` for a
    non-local address is refused unless ``mfa_ha:hba:allow_trust`` is true."""
    hba_pillar = hba_pillar or {}
    if not isinstance(hba_pillar, dict):
        raise InvalidInput("mfa_ha:hba: must be a mapping (method, allow_trust, entries)")
    unknown = set(hba_pillar) - {"method", "allow_trust", "entries", "foreign"}
    if hba_pillar.get("foreign", "repair") not in FOREIGN_POLICIES:
        raise InvalidInput(f"mfa_ha:hba:foreign: {hba_pillar['foreign']!r} is not one of {', '.join(FOREIGN_POLICIES)}")
    if unknown:
        raise InvalidInput(f"mfa_ha:hba: unknown key(s) {', '.join(sorted(unknown))}")
    method = str(hba_pillar.get("method", DEFAULT_METHOD))
    if method not in METHODS:
        raise InvalidInput(f"mfa_ha:hba:method: {method!r} is not a pg_hba authentication method")
    entries = []
    for _, node in sorted(nodes.items()):
        address = host_address(node["address"])
        for database in ("replication", "postgres"):
            entries.append(HbaEntry("hostssl" if tls else "host", database, replication_user, address, method))
    extra = hba_pillar.get("entries") or []
    if not isinstance(extra, list):
        raise InvalidInput("mfa_ha:hba:entries: must be a list of entries")
    entries += [entry(raw, f"mfa_ha:hba:entries:{i}", method) for i, raw in enumerate(extra)]
    if not hba_pillar.get("allow_trust"):
        for found in entries:
            if found.method == "trust" and not found.is_local:
                raise InvalidInput(
                    f"mfa_ha:hba: 'trust' for {found.address} lets anyone on that host in without a "
                    "password; use scram-sha-256, or set mfa_ha:hba:allow_trust: true to insist"
                )
    return list(dict.fromkeys(entries))


def render_block(entries: list[HbaEntry]) -> list[str]:
    return [BEGIN, *(e.line for e in entries), END]


def _block_span(lines: list[str]) -> tuple[int, int] | None:
    if BEGIN in lines and END in lines and lines.index(BEGIN) < lines.index(END):
        return lines.index(BEGIN), lines.index(END)
    return None


def managed_lines(text: str) -> list[str] | None:
    """The lines inside the managed block (normalised), or None when there is no block."""
    lines = text.splitlines()
    span = _block_span(lines)
    if span is None:
        return None
    return [" ".join(line.split()) for line in lines[span[0] + 1 : span[1]] if line.strip()]


def foreign_lines(text: str, allow_trust: bool = False) -> list[dict]:
    """Rule lines outside the managed block that defeat it. pg_hba.conf is first-match, so a
    host line above the block decides a peer's connection before the block is read; and a
    ``trust`` line for a non-local address lets anyone from there in without a password."""
    lines = text.splitlines()
    span = _block_span(lines)
    found = []
    for number, line in enumerate(lines, start=1):
        if span and span[0] < number <= span[1] + 1:
            continue
        fields = line.split("#", 1)[0].split()
        if not fields or fields[0] not in TYPES:
            continue
        if not allow_trust and _is_remote_trust(fields):  # disabled wherever it is
            found.append({"line": number, "text": line.strip(), "problem": "trust for a non-local address"})
        elif fields[0] != "local" and (span is None or number <= span[0]):
            found.append({"line": number, "text": line.strip(), "problem": "above the mfa-ha block"})
    return found


def _is_remote_trust(fields: list[str]) -> bool:
    if fields[0] == "local" or len(fields) < 5:
        return False
    has_mask = "/" not in fields[3] and len(fields) >= 6 and _is_ip(fields[3]) and _is_ip(fields[4])
    method = fields[5] if has_mask else fields[4]
    address = f"{fields[3]}/{fields[4]}" if has_mask else fields[3]
    return method == "trust" and not HbaEntry(fields[0], "all", "all", address, method).is_local


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def with_block(text: str, entries: list[HbaEntry], foreign: list[dict] = ()) -> str:
    """``text`` with the managed block at the top (first match wins) and every remote
    ``trust`` line in ``foreign`` commented out (kept, never deleted)."""
    lines = text.splitlines()
    disabled = {f["line"] for f in foreign if f["problem"].startswith("trust")}
    lines = [
        f"# disabled by mfa-ha (trust for a non-local address): {line}" if n in disabled else line
        for n, line in enumerate(lines, start=1)
    ]
    span = _block_span(lines)
    if span:
        del lines[span[0] : span[1] + 1]
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(render_block(entries) + [""] + lines) + "\n"


def diff(text: str, entries: list[HbaEntry], allow_trust: bool = False) -> dict:
    have = managed_lines(text) or []
    want = [" ".join(e.line.split()) for e in entries]
    foreign = foreign_lines(text, allow_trust)
    return {
        "missing": [line for line in want if line not in have],
        "unexpected": [line for line in have if line not in want],
        "foreign": foreign,
        "differs": have != want or bool(foreign),
    }


def describe_foreign(path: str, foreign: list[dict]) -> str:
    return f"{path}: " + "; ".join(f"line {f['line']} ({f['text']}) is {f['problem']}" for f in foreign)


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


def apply(server: Server, entries: list[HbaEntry], allow_trust: bool = False, repair: bool = True) -> dict:
    """Write the managed block at the top, disable remote ``trust`` lines, and reload. With
    ``repair`` off, lines outside the block that defeat it fail the call instead. When the
    server would reject the new file (as ``pg_hba_file_rules`` parses it from disk), the old
    file is put back before any reload."""
    path = hba_path(server)
    old = read(path)
    result = diff(old, entries, allow_trust)
    if not result["differs"]:
        return {**result, "path": path, "changed": False}
    if result["foreign"] and not repair:
        raise MfaHaError(
            describe_foreign(path, result["foreign"]) + ": fix them by hand, or set "
            "mfa_ha:hba:foreign: repair to let mfa-ha move its block to the top and disable them"
        )
    replace_keeping_owner(path, with_block(old, entries, result["foreign"]))
    if server.is_running():
        errors = server.query("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")
        if errors:
            replace_keeping_owner(path, old)
            problems = "; ".join(f"line {e['line_number']}: {e['error']}" for e in errors)
            raise MfaHaError(f"PostgreSQL rejects the new {path} ({problems}); the old file is back")
        server.reload()
    return {**result, "path": path, "changed": True}
