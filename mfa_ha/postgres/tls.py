"""TLS between the nodes: pillar ``mfa_ha:tls`` checked, the files a node needs, the server
settings that use them and the client parameters every peer connection carries.

On by default (``enabled: auto``) as soon as one node's address is not a loopback address:
replication then crosses a network. The certificate and key are per node (pillar targeted
at that minion), the CA is shared. Each node's certificate is checked before anything
changes: it parses, its key matches, the CA signed it, it is valid now, and (for
``verify-full``) it names the node's own address, which is what its peers will check.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import stat
from dataclasses import dataclass, field

from mfa_ha.errors import InvalidInput, MfaHaError
from mfa_ha.files import chown_to, replace_file

KEY = "mfa_ha:tls"
TLS_KEYS = {"enabled", "mode", "dir", "ca", "cert", "key"}
MODES = ("verify-full", "verify-ca")
DIR_NAME = "mfa_ha-tls"
CA_FILE, CERT_FILE, KEY_FILE = "root.crt", "server.crt", "server.key"
# TCP keepalives on every peer connection: a silent link is noticed after about
# KEEPALIVES_IDLE + KEEPALIVES_INTERVAL * KEEPALIVES_COUNT seconds (25 s).
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = False
    mode: str = "verify-full"
    dir: str = ""
    ca: str = ""
    cert: str = ""
    key: str = field(default="", repr=False)

    @property
    def ca_path(self) -> str:
        return os.path.join(self.dir, CA_FILE)

    @property
    def cert_path(self) -> str:
        return os.path.join(self.dir, CERT_FILE)

    @property
    def key_path(self) -> str:
        return os.path.join(self.dir, KEY_FILE)

    def client_params(self) -> dict:
        """libpq parameters for a connection to a peer (replication, pg_basebackup, pg_rewind,
        the tool's own checks)."""
        tls = {"sslmode": self.mode, "sslrootcert": self.ca_path} if self.enabled else {}
        return {**tls, **KEEPALIVES}

    def server_settings(self) -> dict[str, str]:
        """This node's own server settings for TLS. They name files of this node, so they are
        re-written after pg_basebackup or pg_rewind copied a peer's configuration."""
        if not self.enabled:
            return {}
        return {"ssl": "on", "ssl_cert_file": self.cert_path, "ssl_key_file": self.key_path}

    def require_files(self) -> None:
        """Refuse to point the server at TLS files that are not there: it would not start."""
        missing = [path for path in self.files() if not os.path.isfile(path)]
        if missing:
            raise MfaHaError(
                f"TLS files missing: {', '.join(missing)}; write them first "
                "(state pgrepl.tls, or salt-call pgrepl.apply_tls)"
            )

    def files(self) -> dict[str, tuple[str, int]]:
        """``{path: (content, mode)}`` of what this node's TLS directory must hold."""
        if not self.enabled:
            return {}
        return {self.ca_path: (self.ca, 0o644), self.cert_path: (self.cert, 0o644), self.key_path: (self.key, 0o600)}


def tls_config(pillar, nodes: dict, data_dir: str, node_id: str | None = None) -> TlsConfig:
    """``mfa_ha:tls`` checked. With ``node_id`` (on a minion) the node's own certificate and
    key are required and verified; without it (the master) only the shared keys."""
    pillar = _mapping(pillar)
    enabled = _enabled(pillar.get("enabled", "auto"), nodes)
    mode = str(pillar.get("mode", "verify-full"))
    if mode not in MODES:
        raise InvalidInput(f"{KEY}:mode: {mode!r} is not one of {', '.join(MODES)}")
    directory = str(pillar.get("dir") or os.path.join(os.path.dirname(data_dir.rstrip("/")), DIR_NAME))
    if not os.path.isabs(directory):
        raise InvalidInput(f"{KEY}:dir: must be an absolute path, got {directory!r}")
    cfg = TlsConfig(enabled, mode, directory, *(_text(pillar.get(k)) for k in ("ca", "cert", "key")))
    if not enabled:
        return cfg
    if not cfg.ca:
        raise InvalidInput(f"{KEY}:ca: missing: the CA certificate (PEM) that signed every node's certificate")
    if node_id is not None:
        check_node(cfg, nodes.get(node_id, {}).get("address"))
    return cfg


def _mapping(pillar) -> dict:
    if pillar is None or pillar == "":
        return {}
    if not isinstance(pillar, dict):
        raise InvalidInput(f"{KEY}: must be a mapping ({', '.join(sorted(TLS_KEYS))})")
    unknown = set(pillar) - TLS_KEYS
    if unknown:
        raise InvalidInput(f"{KEY}: unknown key(s) {', '.join(sorted(unknown))}")
    return pillar


def _enabled(value, nodes: dict) -> bool:
    if value == "auto":
        return any(not _is_loopback(n["address"]) for n in nodes.values())
    if isinstance(value, bool):
        return value
    raise InvalidInput(f"{KEY}:enabled: must be true, false or auto, got {value!r}")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _text(value) -> str:
    return value.strip() + "\n" if isinstance(value, str) and value.strip() else ""


def check_node(cfg: TlsConfig, address: str | None, now: datetime.datetime | None = None) -> None:
    """This node's certificate is one its peers will accept; else InvalidInput naming the key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    for name in ("cert", "key"):
        if not getattr(cfg, name):
            raise InvalidInput(
                f"{KEY}:{name}: missing: this node's TLS {'certificate' if name == 'cert' else 'private key'} (PEM)"
            )
    cas = _load(lambda: x509.load_pem_x509_certificates(cfg.ca.encode()), "ca", "is not a PEM certificate")
    cert = _load(lambda: x509.load_pem_x509_certificate(cfg.cert.encode()), "cert", "is not a PEM certificate")
    key = _load(
        lambda: serialization.load_pem_private_key(cfg.key.encode(), password=None),
        "key",
        "is not an unencrypted PEM private key",
    )
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        raise InvalidInput(f"{KEY}:key: does not belong to the certificate in {KEY}:cert")
    if not any(_issued_by(cert, ca) for ca in cas):
        raise InvalidInput(f"{KEY}:cert: not signed by the CA in {KEY}:ca ({cert.issuer.rfc4514_string()})")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise InvalidInput(
            f"{KEY}:cert: not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
        )
    if cfg.mode == "verify-full" and address and not _names(cert, address):
        raise InvalidInput(
            f"{KEY}:cert: does not name this node's address {address} (subjectAltName "
            f"{', '.join(_san(cert)) or 'none'}): peers connect with sslmode=verify-full"
        )


def _load(loader, name: str, problem: str):
    try:
        return loader()
    except ValueError:
        raise InvalidInput(f"{KEY}:{name}: {problem}") from None


def _issued_by(cert, ca) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except Exception:  # noqa: BLE001 - InvalidSignature, or a CA whose key type cannot sign this
        return False


def _san(cert) -> list[str]:
    from cryptography import x509

    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in names.get_values_for_type(x509.IPAddress)] + names.get_values_for_type(x509.DNSName)


def _names(cert, address: str) -> bool:
    try:
        wanted = str(ipaddress.ip_address(address))
    except ValueError:
        wanted = address.lower()
    return any(
        name.lower() == wanted or (name.startswith("*.") and wanted.split(".", 1)[-1] == name[2:].lower())
        for name in _san(cert)
    )


def file_needs(cfg: TlsConfig, os_user: str) -> list[str]:
    """Paths of this node's TLS files that are missing or differ (content, mode, owner)."""
    owner = pwd.getpwnam(os_user).pw_uid
    return [path for path, (content, mode) in cfg.files().items() if not _file_is(path, content, mode, owner)]


def _file_is(path: str, content: str, mode: int, owner: int) -> bool:
    try:
        info = os.stat(path)
        with open(path, encoding="utf-8") as fh:
            same = fh.read() == content
    except (OSError, UnicodeDecodeError):
        return False
    return same and stat.S_IMODE(info.st_mode) == mode and (os.geteuid() != 0 or info.st_uid == owner)


def write_files(cfg: TlsConfig, os_user: str) -> list[str]:
    """Write what ``file_needs`` lists, atomically, owned by ``os_user``; returns the paths."""
    needs = file_needs(cfg, os_user)
    if needs:
        os.makedirs(cfg.dir, mode=0o700, exist_ok=True)
        chown_to(cfg.dir, os_user)
    for path in needs:
        content, mode = cfg.files()[path]
        replace_file(path, content, mode, os_user)
    return needs
