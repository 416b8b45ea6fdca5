"""HAProxy (Debian's package, the real one) in front of the pair on the clients' host: TCP to
PostgreSQL, routed by each node's health endpoint (``GET /primary`` over TLS when the lab has
TLS), as the docs show a user to configure it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

from mfa_ha_lab.lab import Lab

PORT = 15432
CHECK_INTERVAL_MS = 500
CONFIG = """\
global
    maxconn 200
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 2s
listen postgres
    bind {bind}:{port}
    option httpchk GET /primary
    http-check expect status 200
    default-server inter {inter}ms fall 2 rise 1 on-marked-down shutdown-sessions port {check_port} {tls}
{servers}
"""


def config(lab: Lab, bind: str, check_port: int, ca_file: str | None) -> str:
    tls = f"check-ssl verify required ca-file {ca_file}" if ca_file else ""
    servers = "\n".join(f"    server {n.minion_id} {n.address}:{n.port} check" for n in lab.nodes)
    return CONFIG.format(bind=bind, port=PORT, inter=CHECK_INTERVAL_MS, check_port=check_port, tls=tls, servers=servers)


class Haproxy:
    """``with Haproxy(lab, check_port) as proxy:`` HAProxy runs on the clients' host, listening
    on ``proxy.address:PORT``; stopped by its PID afterwards."""

    def __init__(self, lab: Lab, check_port: int):
        self.lab, self.check_port = lab, check_port
        self.address = lab.network.address("clients") if lab.network else "127.0.0.1"
        self.dir = os.path.join(lab.root, "haproxy")
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Haproxy:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        os.makedirs(self.dir, exist_ok=True)
        ca_file = None
        if self.lab.ca:
            ca_file = os.path.join(self.dir, "root.crt")
            with open(ca_file, "w", encoding="ascii") as fh:
                fh.write(self.lab.ca.pem)
        path = os.path.join(self.dir, "haproxy.cfg")
        with open(path, "w", encoding="ascii") as fh:
            fh.write(config(self.lab, self.address, self.check_port, ca_file))
        subprocess.run([binary, "-c", "-q", "-f", path], check=True, capture_output=True, timeout=30)
        with self.lab.on_clients(), open(os.path.join(self.dir, "haproxy.log"), "ab") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", path], stdout=log, stderr=log)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
