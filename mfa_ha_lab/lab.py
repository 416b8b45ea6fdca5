"""Build and tear down the two-node lab: real PostgreSQL clusters owned by ``postgres``,
"prod" (minion ``server_prod``) and "dr" (``server_dr``), each with its own socket
directory, SRC stand-in, pmfad stand-in and lease keeper registration.

On hosts of their own (``network``: ``mfa_ha_lab.netns``) the nodes listen on DC1's and
DC2's addresses and pg_hba names each peer's address. Without one, on 127.0.0.2 and
127.0.0.3 of this machine's loopback, where every TCP client appears from 127.0.0.1: the
lab's pg_hba then admits the replication user from 127.0.0.1 by password.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import psycopg2

from mfa_ha import proc
from mfa_ha.loader import formula_root
from mfa_ha.postgres.naming import slot_name
from mfa_ha_lab import pgversions
from mfa_ha_lab.certs import LabCA
from mfa_ha_lab.standins import pmfad as pmfad_standin
from mfa_ha_lab.standins.src import running_pid

FORMULA_ROOT = formula_root()  # the installed package's formula when the tests run against a wheel
# The repository's example pillar (top file and mfa_ha.sls, as shipped): the lab's master serves it.
EXAMPLE_PILLAR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pillar")
# The master's own pillar id ends in "_master", as a master's default id ("<host>_master") does:
# the example top file targets it so that the runner and the orchestrations see mfa_ha:nodes.
MASTER_ID = "mfa-ha_master"
# The master's reactor wiring, as docs/runbook.md shows it.
REACTORS = [
    {"salt/minion/*/start": ["salt://mfa_ha/reactor/fence.sls"]},
    {"salt/beacon/*/pgrepl/heartbeat": ["salt://mfa_ha/reactor/fence.sls"]},
    {"salt/beacon/*/pgrepl/*/*": ["salt://mfa_ha/reactor/alert.sls"]},
    {"mfa_ha/switchover/request": ["salt://mfa_ha/reactor/switchover_request.sls"]},
]
# The beacon as the lab's minions run it: thresholds low enough to trip in a test.
BEACON = [
    {"interval": 1},
    {"report_interval": 30},
    {"lag_warn_bytes": 262144},
    {"lag_crit_bytes": 1073741824},
    {"receiver_down_after": 2},
]
# The version every lab runs unless told otherwise: MFA_HA_PG_MAJOR=13 bash scripts/test.sh tests/functional
PG_MAJOR = int(os.environ.get("MFA_HA_PG_MAJOR") or pgversions.SYSTEM_MAJOR)
PORT = 5432
APP_PORT = 6793
KEEPER_SERVICE = "mfahalease"
ENDPOINT_SERVICE = "mfahahealth"
OS_USER = "postgres"
REPLICATION_USER = "replicamfa"
# A lab-only secret: real deployments keep theirs in an encrypted pillar.
LAB_PASSWORD = "lab-only-Secret-1"
APP_DB = "mfadb"
APP_USER = "mfa"  # the lab's direct writer logs in as this role (password LAB_PASSWORD)

PG_HBA = """\
# mfa-ha lab pg_hba.conf
local   all          all                       peer map=mfa_ha
host    replication  {user}   127.0.0.1/32     scram-sha-256
host    postgres     {user}   127.0.0.1/32     scram-sha-256
"""
PG_IDENT = """\
mfa_ha  root      postgres
mfa_ha  postgres  postgres
"""


def pg_bin_dir(major: int = PG_MAJOR) -> str:
    """The server binaries of ``major`` (mfa_ha_lab.pgversions installs them on first use)."""
    return pgversions.bin_dir(major)


@dataclass
class LabNode:
    name: str
    minion_id: str
    address: str
    root: str
    bin_dir: str
    port: int = PORT
    tls: dict | None = None  # {ca, cert, key} PEMs from the lab's CA, or None for no TLS
    host: str | None = None  # its network namespace host (mfa_ha_lab.netns), or None on loopback

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "mfadb")

    @property
    def socket_dir(self) -> str:
        return os.path.join(self.root, "run")

    @property
    def pgpass(self) -> str:
        return os.path.join(self.root, "pgpass")

    @property
    def src_root(self) -> str:
        return os.path.join(self.root, "src")

    @property
    def src_bin_dir(self) -> str:
        return os.path.join(self.root, "bin")

    @property
    def lease_dir(self) -> str:
        return os.path.join(self.root, "lease")

    @property
    def server_options(self) -> str:
        return f"-c listen_addresses={self.address} -c unix_socket_directories={self.socket_dir}"

    @property
    def slot(self) -> str:
        return slot_name(self.minion_id)

    def postgres_pillar(self) -> dict:
        return {
            "data_dir": self.data_dir,
            "bin_dir": self.bin_dir,
            "port": self.port,
            "host": self.socket_dir,
            "os_user": OS_USER,
            "pgpass": self.pgpass,
            "log_file": os.path.join(self.root, "postgresql.log"),
            "options": self.server_options,
        }

    def pmfad_pillar(self) -> dict:
        return {
            "manager": "src",
            "service": "pmfad",
            "src_bin_dir": self.src_bin_dir,
            "health_host": self.address,
            "health_port": APP_PORT,
            "timeout": 15,
        }

    def pillar(self, peers: list[LabNode], clients: str | None = None, synchronous: str = "off") -> dict:
        return {"mfa_ha": {**shared_pillar(peers, clients, synchronous)["mfa_ha"], **self.own_pillar()["mfa_ha"]}}

    def own_pillar(self) -> dict:
        """What differs per node: the lab's two "hosts" share one machine; each has its own
        TLS certificate and key."""
        own = {
            "postgres": self.postgres_pillar(),
            "pmfad": self.pmfad_pillar(),
            "failover": {"run_dir": self.lease_dir},
        }
        if self.tls:
            own["tls"] = {"enabled": True, **self.tls}
        return {"mfa_ha": own}

    def connect(self, dbname: str = "postgres"):
        conn = psycopg2.connect(host=self.socket_dir, port=self.port, user="postgres", dbname=dbname, connect_timeout=5)
        conn.autocommit = True
        return conn

    def sql(self, query: str, params=(), dbname: str = "postgres"):
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def pg_ctl(self, *args, check=True, timeout=60):
        return _as_postgres([os.path.join(self.bin_dir, "pg_ctl"), *args], check=check, timeout=timeout)

    def is_running(self) -> bool:
        return self.pg_ctl("status", "-D", self.data_dir, check=False).returncode == 0

    def app_pid(self) -> int | None:
        return running_pid(self.src_root, "pmfad")

    def keeper_pid(self) -> int | None:
        return running_pid(self.src_root, KEEPER_SERVICE)


def shared_pillar(nodes: list[LabNode], clients: str | None = None, synchronous: str = "off") -> dict:
    """What every node (and the master's orchestrations) sees. ``clients``: the clients'
    host address in a namespaced lab (then pg_hba names each peer's real address);
    ``synchronous``: ``mfa_ha:replication:synchronous``."""
    tls = nodes[0].tls
    sync = {} if synchronous == "off" else {"synchronous": synchronous}
    return {
        "mfa_ha": {
            "tls": {"enabled": True, "ca": tls["ca"]} if tls else {"enabled": False},
            "nodes": {n.minion_id: {"address": n.address, "port": n.port} for n in nodes},
            "primary": nodes[0].minion_id,
            "replication": {"user": REPLICATION_USER, "password": LAB_PASSWORD, "connection_limit": 5, **sync},
            "alerts": {
                "thresholds": {"lag_warn_bytes": 262144},
                "targets": [{"command": ["tee", "-a", os.path.join(os.path.dirname(nodes[0].root), "alerts.log")]}],
            },
            "hba": {"entries": _hba_entries(tls, clients)},
        }
    }


def _hba_entries(tls, clients: str | None) -> list[dict]:
    kind = "hostssl" if tls else "host"
    if clients:  # hosts of their own: peers come from their real addresses, the writers from the clients'
        return [{"type": kind, "database": APP_DB, "user": APP_USER, "address": f"{clients}/32"}]
    # On one loopback interface every TCP client comes from 127.0.0.1.
    return [
        {"type": kind, "database": db, "user": user, "address": "127.0.0.1/32"}
        for db, user in (("replication", REPLICATION_USER), ("postgres", REPLICATION_USER), (APP_DB, APP_USER))
    ]


def _require_free(address: str, port: int) -> None:
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex((address, port)) == 0:
            raise RuntimeError(
                f"{address}:{port} is already in use (another lab still running?): the lab needs it free"
            )


def _as_postgres(args, check=True, timeout=60):
    return proc.run(args, user=OS_USER, check=check, timeout=timeout)


class Lab:
    """Two nodes under one temporary, world-traversable root (``postgres`` must reach it)."""

    def __init__(
        self,
        root: str | None = None,
        major: int = PG_MAJOR,
        tls: bool | None = None,
        network=None,
        synchronous: str = "off",
    ):
        """``network``: an ``mfa_ha_lab.netns.Network`` whose dc1/dc2 hosts the nodes live on
        (their own addresses from 198.18.0.0/15), or None for 127.0.0.2/127.0.0.3. ``tls``:
        None for TLS between the nodes whenever the server was built with OpenSSL.
        ``synchronous``: the pillar's ``mfa_ha:replication:synchronous`` (off or strict)."""
        self.synchronous = synchronous
        self.root = root or tempfile.mkdtemp(prefix="mfa-ha-lab.", dir="/tmp")
        os.chmod(self.root, 0o755)
        bin_dir = pg_bin_dir(major)
        self.major = major
        self.ca = LabCA() if (pgversions.built_with_openssl(bin_dir) if tls is None else tls) else None
        self.network = network
        places = (
            [("dc1", network.address("dc1")), ("dc2", network.address("dc2"))]
            if network
            else [(None, "127.0.0.2"), (None, "127.0.0.3")]
        )
        (prod_host, prod_address), (dr_host, dr_address) = places
        self.prod = LabNode(
            "prod",
            "server_prod",
            prod_address,
            os.path.join(self.root, "prod"),
            bin_dir,
            tls=self._node_tls("server_prod", prod_address),
            host=prod_host,
        )
        self.dr = LabNode(
            "dr",
            "server_dr",
            dr_address,
            os.path.join(self.root, "dr"),
            bin_dir,
            tls=self._node_tls("server_dr", dr_address),
            host=dr_host,
        )
        self.clients = network.address("clients") if network else None
        self.nodes = [self.prod, self.dr]
        self.cert, self.key = os.path.join(self.root, "pmfad.crt"), os.path.join(self.root, "pmfad.key")

    def _node_tls(self, minion_id: str, address: str) -> dict | None:
        if not self.ca:
            return None
        cert, key = self.ca.issue(minion_id, [address])
        return {"ca": self.ca.pem, "cert": cert, "key": key}

    def node(self, minion_id: str) -> LabNode:
        return next(n for n in self.nodes if minion_id in (n.minion_id, n.name))

    def pillar(self, node: LabNode) -> dict:
        return node.pillar(self.nodes, self.clients, self.synchronous)

    def on(self, node: LabNode):
        """The block runs on ``node``'s host (its network namespace), if it has one."""
        return self.on_host(node.host)

    def on_host(self, host: str | None):
        """The block runs on the lab's host ``host`` (dc1, dc2, master, clients) when the lab
        has hosts of its own; on this machine's loopback otherwise."""
        return self.network.entered(host) if self.network and host else contextlib.nullcontext()

    def on_clients(self):
        return self.on_host("clients")

    @property
    def master_address(self) -> str:
        return self.network.address("master") if self.network else "127.0.0.1"

    def edit_overrides(self, ids, edit) -> dict:
        """Change what the lab lays over the example pillar for each minion id in ``ids`` (the
        master's own id where the runner or the witness must see it): ``edit(mfa_ha)``.
        Returns the files' previous texts for ``restore_overrides``. Minions see it after
        ``saltutil.refresh_pillar``."""
        previous = {}
        for minion_id in ids:
            path = os.path.join(self.root, "pillar-lab", f"{minion_id}.json")
            with open(path, encoding="utf-8") as fh:
                previous[path] = fh.read()
            data = json.loads(previous[path])
            edit(data["mfa_ha"])
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
        return previous

    @staticmethod
    def restore_overrides(previous: dict) -> None:
        for path, text in previous.items():
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)

    def write_salt_tree(self, formula: str | None = None) -> dict:
        """The master's ``file_roots``, ``pillar_roots``, ``ext_pillar`` and ``reactor`` for this
        lab. The pillar is the repository's example (``pillar/``, as shipped: its top file and
        ``mfa_ha.sls``), with only what this lab must have differently laid over it per minion
        id by an external pillar: the nodes' addresses and paths, the lab's TLS files and
        password, the SRC stand-in, the alert file. The formula comes from the package
        (or from ``formula``, another version's)."""
        overrides, states_dir = os.path.join(self.root, "pillar-lab"), os.path.join(self.root, "states")
        os.makedirs(overrides, exist_ok=True)
        os.makedirs(states_dir, exist_ok=True)
        shared = shared_pillar(self.nodes, self.clients, self.synchronous)
        per_id = {MASTER_ID: shared, **{n.minion_id: self.pillar(n) for n in self.nodes}}
        for minion_id, data in per_id.items():
            with open(os.path.join(overrides, f"{minion_id}.json"), "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)
        stack = os.path.join(overrides, "stack.cfg")  # Salt's PillarStack: no process per pillar render
        with open(stack, "w", encoding="utf-8") as fh:  # another minion id matches no file: nothing from the lab
            fh.write("{{ minion_id }}.json\n")
        with open(os.path.join(states_dir, "top.sls"), "w", encoding="utf-8") as fh:
            fh.write("base:\n" + "".join(f"  {n.minion_id}:\n    - mfa_ha\n" for n in self.nodes))
        return {
            "id": MASTER_ID,
            "file_roots": {"base": [states_dir, formula or FORMULA_ROOT]},
            "pillar_roots": {"base": [EXAMPLE_PILLAR]},
            "ext_pillar": [{"stack": stack}],
            "reactor": REACTORS,
        }

    # -- build --------------------------------------------------------------
    def create(self) -> Lab:
        """Both nodes as after an MFA install: each has its own database, prod runs pmfad."""
        for node in self.nodes:
            with self.on(node):
                _require_free(node.address, node.port)
                _require_free(node.address, APP_PORT)
        self._make_cert()
        for node in self.nodes:
            self._init_node(node)
        self._create_app_db(self.prod)
        self.start_app(self.prod)
        return self

    def _init_node(self, node: LabNode) -> None:
        for path in (node.root, node.socket_dir):
            os.makedirs(path, mode=0o755, exist_ok=True)
            shutil.chown(path, OS_USER, OS_USER)
        _as_postgres(
            [
                os.path.join(node.bin_dir, "initdb"),
                "-D",
                node.data_dir,
                "-U",
                "postgres",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            timeout=120,
        )
        self._write(
            node,
            "postgresql.conf",
            (
                f"\n# mfa-ha lab (addresses and sockets are per node: pg_ctl -o)\nport = {node.port}\n"
                "fsync = off\n"
                "password_encryption = 'scram-sha-256'\n"  # the default before 14 is md5
                "log_connections = on\n"  # the TLS tests read "SSL enabled" per connection
                "log_line_prefix = '%m [%p] '\n"
            ),
            append=True,
        )
        self._write(node, "pg_hba.conf", PG_HBA.format(user=REPLICATION_USER))
        self._write(node, "pg_ident.conf", PG_IDENT)
        self._register_app(node)
        self.start_db(node)

    def _write(self, node: LabNode, name: str, text: str, append: bool = False) -> None:
        path = os.path.join(node.data_dir, name)
        with open(path, "a" if append else "w", encoding="utf-8") as fh:
            fh.write(text)
        shutil.chown(path, OS_USER, OS_USER)

    def _make_cert(self) -> None:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=pmfad-standin",
                "-keyout",
                self.key,
                "-out",
                self.cert,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def _register_app(self, node: LabNode) -> None:
        """mkssys, as AIX would have it after the MFA install, plus SRC stand-in commands."""
        os.makedirs(os.path.join(node.src_root, "subsystems"), exist_ok=True)
        os.makedirs(node.src_bin_dir, exist_ok=True)
        dsn = f"host={node.socket_dir} port={node.port} user=postgres dbname={APP_DB}"
        command = [
            sys.executable,
            "-m",
            "mfa_ha_lab.standins.pmfad",
            "--listen",
            node.address,
            "--port",
            str(APP_PORT),
            "--dsn",
            dsn,
            "--node",
            node.minion_id,
            "--cert",
            self.cert,
            "--key",
            self.key,
        ]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(sys.path)}
        _register(node, "pmfad", command, env)
        # mfa-ha's own services (not stand-ins): registered as docs/runbook.md tells an AIX admin to.
        _register(node, KEEPER_SERVICE, _own_service("mfa_ha.unattended.keeper", node, "config.json"), env)
        _register(node, ENDPOINT_SERVICE, _own_service("mfa_ha.monitoring.endpoint", node, "endpoint.json"), env)
        for name in ("startsrc", "stopsrc", "lssrc"):
            path = os.path.join(node.src_bin_dir, name)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(
                    f"#!/bin/sh\n# STAND-IN for AIX {name} (mfa-ha lab)\n"
                    f"PYTHONPATH='{os.pathsep.join(sys.path)}' exec '{sys.executable}' "
                    f"-m mfa_ha_lab.standins.src --root '{node.src_root}' {name} \"$@\"\n"
                )
            os.chmod(path, 0o755)

    def _create_app_db(self, node: LabNode) -> None:
        node.sql(f"CREATE DATABASE {APP_DB}")
        node.sql(pmfad_standin.SCHEMA, dbname=APP_DB)
        node.sql(f"CREATE ROLE {APP_USER} LOGIN PASSWORD %s", (LAB_PASSWORD,))
        node.sql(
            f"GRANT INSERT, SELECT ON auth_events TO {APP_USER}; "
            f"GRANT USAGE ON SEQUENCE auth_events_id_seq TO {APP_USER}",
            dbname=APP_DB,
        )

    # -- run ----------------------------------------------------------------
    def start_db(self, node: LabNode) -> None:
        if not node.is_running():
            with self.on(node):
                node.pg_ctl(
                    "start",
                    "-D",
                    node.data_dir,
                    "-l",
                    os.path.join(node.root, "postgresql.log"),
                    "-o",
                    node.server_options,
                    "-w",
                    "-t",
                    60,
                    timeout=70,
                )

    def stop_db(self, node: LabNode, mode: str = "fast") -> None:
        if os.path.isfile(os.path.join(node.data_dir, "PG_VERSION")) and node.is_running():
            node.pg_ctl("stop", "-D", node.data_dir, "-m", mode, "-w", "-t", 60, timeout=70)

    def start_app(self, node: LabNode) -> None:
        with self.on(node):
            subprocess.run([os.path.join(node.src_bin_dir, "startsrc"), "-s", "pmfad"], capture_output=True, timeout=30)

    def stop_app(self, node: LabNode, timeout: float = 15) -> None:
        _stop_subsystem(node, "pmfad", timeout)

    def stop_keeper(self, node: LabNode, timeout: float = 15) -> None:
        _stop_subsystem(node, KEEPER_SERVICE, timeout)

    def rows(self, node: LabNode) -> int:
        return node.sql("SELECT count(*) FROM auth_events", dbname=APP_DB)[0][0]

    def destroy(self, keep: bool = False) -> None:
        """Stop what the lab started (by PID / its own data dirs) and remove the lab root."""
        for node in self.nodes:
            self.stop_app(node)
            self.stop_keeper(node)
            _stop_subsystem(node, ENDPOINT_SERVICE, 15)
            for data_dir in _data_dirs(node.root):
                if (
                    _as_postgres(
                        [os.path.join(node.bin_dir, "pg_ctl"), "status", "-D", data_dir], check=False
                    ).returncode
                    == 0
                ):
                    _as_postgres(
                        [
                            os.path.join(node.bin_dir, "pg_ctl"),
                            "stop",
                            "-D",
                            data_dir,
                            "-m",
                            "immediate",
                            "-w",
                            "-t",
                            30,
                        ],
                        check=False,
                        timeout=40,
                    )
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Lab:
        try:
            return self.create()
        except BaseException:
            self.destroy()
            raise

    def __exit__(self, *exc) -> None:
        self.destroy(keep=bool(os.environ.get("MFA_HA_KEEP_LAB")))  # servers stopped either way


def _own_service(module: str, node: LabNode, config: str) -> list[str]:
    return [sys.executable, "-m", module, "--config", os.path.join(node.lease_dir, config)]


def _register(node: LabNode, subsystem: str, command: list[str], env: dict) -> None:
    """The SRC stand-in's registration of ``subsystem`` (what ``mkssys`` records)."""
    with open(os.path.join(node.src_root, "subsystems", subsystem + ".json"), "w", encoding="utf-8") as fh:
        json.dump({"command": command, "group": "", "env": env}, fh)


def _stop_subsystem(node: LabNode, name: str, timeout: float) -> None:
    """SIGTERM (then SIGKILL) the process the SRC stand-in started for ``name``, by its PID."""
    pid = running_pid(node.src_root, name)
    if not pid:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running_pid(node.src_root, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running_pid(node.src_root, name):
        os.kill(pid, signal.SIGKILL)


def _data_dirs(root: str) -> list[str]:
    if not os.path.isdir(root):
        return []
    return [os.path.join(root, d) for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "PG_VERSION"))]
