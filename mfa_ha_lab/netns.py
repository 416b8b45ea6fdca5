"""The lab's hosts as Linux network namespaces: DC1, DC2, the Salt master's site and the
clients, each with one address from 198.18.0.0/15 (reserved for benchmarks), joined through
a "wan" namespace that routes between them. The addresses exist only inside namespaces this
module creates and removes; nothing is routed anywhere else.

A fault is a routing rule in the wan namespace: ``cut("dc1", "dc2")`` drops every packet
from DC1 to DC2 and back (silently, as a cut link does: no reset, no ICMP), ``cut(...,
both=False)`` one direction only, ``isolate("dc1")`` takes a host's link down.

Processes join a host by being started from a thread that entered it (``with
net.entered("dc1"): ...``): ``setns`` switches only the calling thread, and a child process
inherits that thread's namespace, so the product's own ``pg_ctl``, a salt daemon or a
client connection opened there all live on that host, unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import select
import selectors
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
HOSTS = ("dc1", "dc2", "master", "clients")
SUBNET = "198.18.{index}.0/24"
LAB_RANGE = "198.18.0.0/15"
RULE_PRIORITY = 100
MAX_RULES = 16
DELAY_PRIORITY = 90  # before a cut's rules: a delayed packet comes back from the line and is cut then
DELAY_TABLE = "190"
DELAY_READY_SECONDS = 10  # the delay line's process opens its device and says so
ECHO_PORT = 7
_libc = ctypes.CDLL(None, use_errno=True)


class NamespacesUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, or no iproute2)."""


def available() -> str | None:
    """None when the lab can make namespaces, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode != 0:
        return "iproute2 (ip) is not installed"
    return None


@contextlib.contextmanager
def hosts_if_possible(loopback: bool = False):
    """``(network, None)``: the lab's hosts, made now and removed afterwards; or ``(None,
    why not)`` when namespaces cannot be made here or ``loopback`` asks for none. The demo
    and the benchmarks run on whichever they get, and say which."""
    reason = "asked for" if loopback else available()
    if reason:
        yield None, reason
        return
    with Network() as network:
        yield network, None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    index: int
    veth: str  # its end in the wan namespace

    @property
    def address(self) -> str:
        return f"198.18.{self.index}.2"

    @property
    def gateway(self) -> str:
        return f"198.18.{self.index}.1"

    @property
    def subnet(self) -> str:
        return SUBNET.format(index=self.index)


class Network:
    def __init__(self, tag: str | None = None):
        self.tag = tag or secrets.token_hex(2)
        self.wan = f"mfaha-{self.tag}-wan"
        self.hosts = {
            name: Host(name, f"mfaha-{self.tag}-{name}", i + 1, f"w{self.tag}{i + 1}") for i, name in enumerate(HOSTS)
        }
        self.created = False
        self.guarded = False
        self._delay: tuple[subprocess.Popen, list[tuple[str, str]]] | None = None

    def address(self, host: str) -> str:
        return self.hosts[host].address

    # -- build and remove -----------------------------------------------------------------
    def create(self) -> Network:
        reason = available()
        if reason:
            raise NamespacesUnavailable(reason)
        self.created = True
        # A guard: from the machine's own namespace nothing is sent towards the lab's range
        # (a connection opened from a thread that did not enter a host would otherwise leave
        # the machine). Removed again by destroy().
        self.guarded = _ip("route", "add", "blackhole", LAB_RANGE, check=False).returncode == 0
        _ip("netns", "add", self.wan)
        _ip("-n", self.wan, "link", "set", "lo", "up")
        subprocess.run(
            ["ip", "netns", "exec", self.wan, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for host in self.hosts.values():
            self._attach(host)
        return self

    def _attach(self, host: Host) -> None:
        inner = f"h{self.tag}{host.index}"
        _ip("netns", "add", host.namespace)
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        _ip("-n", self.wan, "link", "add", host.veth, "type", "veth", "peer", "name", inner, "netns", host.namespace)
        _ip("-n", self.wan, "addr", "add", f"{host.gateway}/24", "dev", host.veth)
        _ip("-n", self.wan, "link", "set", host.veth, "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inner)
        _ip("-n", host.namespace, "link", "set", inner, "up")
        # Only the lab's range is routed; anything else fails at once on the host itself (a DNS
        # query to the machine's resolver must not wait for a timeout, nor leave the lab).
        _ip("-n", host.namespace, "route", "add", LAB_RANGE, "via", host.gateway)
        _ip("-n", host.namespace, "route", "add", "unreachable", "default")

    def destroy(self) -> None:
        """Remove every namespace this network made (their processes must be stopped first)."""
        if not self.created:
            return
        self.undelay()
        for namespace in [h.namespace for h in self.hosts.values()] + [self.wan]:
            _ip("netns", "del", namespace, check=False)
        if self.guarded:
            _ip("route", "del", "blackhole", LAB_RANGE, check=False)
        self.created = False

    def __enter__(self) -> Network:
        try:
            return self.create()
        except BaseException:
            self.destroy()
            raise

    def __exit__(self, *exc) -> None:
        self.destroy()

    # -- faults ---------------------------------------------------------------------------
    def cut(self, a: str, b: str, both: bool = True) -> None:
        """Drop every packet from ``a`` to ``b`` (and back unless ``both`` is False)."""
        for src, dst in [(a, b), (b, a)] if both else [(a, b)]:
            _ip(
                "-n",
                self.wan,
                "rule",
                "add",
                "priority",
                str(RULE_PRIORITY),
                "from",
                self.hosts[src].subnet,
                "to",
                self.hosts[dst].subnet,
                "blackhole",
            )

    def restore(self, a: str, b: str) -> None:
        """Undo ``cut`` between ``a`` and ``b`` (both directions, whichever were cut)."""
        for src, dst in [(a, b), (b, a)]:
            for _ in range(MAX_RULES):  # a rule per cut() call; deleted until none is left
                if (
                    _ip(
                        "-n",
                        self.wan,
                        "rule",
                        "del",
                        "priority",
                        str(RULE_PRIORITY),
                        "from",
                        self.hosts[src].subnet,
                        "to",
                        self.hosts[dst].subnet,
                        "blackhole",
                        check=False,
                    ).returncode
                    != 0
                ):
                    break

    def delay(self, a: str, b: str, rtt_ms: float, jitter_ms: float = 0.0, loss: float = 0.0) -> None:
        """Add ``rtt_ms`` to every round trip between ``a`` and ``b`` (± ``jitter_ms``, and a
        share ``loss`` of the packets dropped each way): their traffic goes through a delay
        line in the wan namespace (``mfa_ha_lab.delayline``; the netem qdisc where a kernel
        has it would do the same). Replaces an earlier delay."""
        self.undelay()
        device = f"d{self.tag}"
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.wan, sys.executable, "-m", "mfa_ha_lab.delayline", "--device", device]
            + ["--rtt-ms", str(rtt_ms), "--jitter-ms", str(jitter_ms), "--loss", str(loss)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._delay = (proc, [])
        ready, _, _ = select.select([proc.stdout], [], [], DELAY_READY_SECONDS)
        if not ready or proc.stdout.readline().strip() != "ready":
            self.undelay()
            raise RuntimeError(f"the delay line did not open its device within {DELAY_READY_SECONDS} s")
        _ip("-n", self.wan, "link", "set", device, "up")
        for name in ("all", device):
            self._sysctl(f"net.ipv4.conf.{name}.rp_filter=0")  # packets come back from the line
        for src, dst in ((a, b), (b, a)):
            rule = ["priority", str(DELAY_PRIORITY), "iif", self.hosts[src].veth, "to", self.hosts[dst].subnet]
            _ip("-n", self.wan, "rule", "add", *rule, "lookup", DELAY_TABLE)
            self._delay[1].append((src, dst))
            _ip("-n", self.wan, "route", "replace", self.hosts[dst].subnet, "dev", device, "table", DELAY_TABLE)

    def undelay(self) -> None:
        """Remove the delay line: the hosts' traffic is routed directly again."""
        if self._delay is None:
            return
        proc, routed = self._delay
        for src, dst in routed:
            rule = ["priority", str(DELAY_PRIORITY), "iif", self.hosts[src].veth, "to", self.hosts[dst].subnet]
            _ip("-n", self.wan, "rule", "del", *rule, "lookup", DELAY_TABLE, check=False)
        if proc.poll() is None:
            proc.terminate()  # the line we started, by its PID
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        proc.stdout.close()
        self._delay = None

    def round_trip_ms(self, a: str, b: str, count: int = 20) -> list[float]:
        """Round trips measured from ``a`` to ``b``: a TCP echo on ``b``, ``count`` small
        messages from ``a``, each timed (milliseconds)."""
        with self.entered(b):
            server = socket.create_server((self.address(b), ECHO_PORT))
        server.settimeout(10)
        echo = threading.Thread(target=_echo_once, args=(server,), daemon=True)
        echo.start()
        times = []
        try:
            with self.entered(a):
                client = socket.create_connection((self.address(b), ECHO_PORT), timeout=10)
            with client:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(count):
                    started = time.perf_counter()
                    client.sendall(b"x")
                    if client.recv(1) != b"x":
                        raise RuntimeError("the echo did not answer")
                    times.append((time.perf_counter() - started) * 1000)
        finally:
            server.close()
            echo.join(timeout=10)
        return times

    def _sysctl(self, setting: str) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.wan, "sysctl", "-q", "-w", setting],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def isolate(self, host: str) -> None:
        """Take ``host``'s link down: it reaches no one and no one reaches it."""
        _ip("-n", self.wan, "link", "set", self.hosts[host].veth, "down")

    def reconnect(self, host: str) -> None:
        _ip("-n", self.wan, "link", "set", self.hosts[host].veth, "up")

    # -- processes ------------------------------------------------------------------------
    @contextlib.contextmanager
    def entered(self, host: str):
        """Run the block with this thread inside ``host``'s namespace (children inherit it)."""
        with (
            open("/proc/thread-self/ns/net", "rb") as own,
            open(f"/run/netns/{self.hosts[host].namespace}", "rb") as target,
        ):
            _setns(target.fileno())
            try:
                yield self.hosts[host]
            finally:
                _setns(own.fileno())


class LoopbackRelay:
    """This machine's loopback ``ports`` made reachable at 127.0.0.1 inside lab ``hosts``.

    For the test harness only: pytest-salt-factories' event listener and log server listen on
    the machine's own loopback, and the daemons it starts on a lab host report to 127.0.0.1
    there, which is the host's own. Each host gets a listener on those ports that carries the
    bytes to the machine's loopback. Loopback to loopback: nothing leaves the machine."""

    POLL_SECONDS = 0.5

    def __init__(self, network: Network, hosts, ports):
        self.network, self.hosts, self.ports = network, tuple(hosts), tuple(ports)
        self._listeners: dict[socket.socket, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> LoopbackRelay:
        try:
            for host in self.hosts:
                with self.network.entered(host):  # a socket belongs to the namespace it is made in
                    for port in self.ports:
                        listener = socket.create_server(("127.0.0.1", port), backlog=64)
                        self._listeners[listener] = port
            self._spawn(self._accept_loop)  # from this thread: in the machine's own namespace
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for listener in self._listeners:
            listener.close()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            for listener in self._listeners:
                selector.register(listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=self.POLL_SECONDS):
                    inner, _ = key.fileobj.accept()
                    try:
                        outer = socket.create_connection(("127.0.0.1", self._listeners[key.fileobj]), timeout=5)
                        outer.settimeout(None)
                    except OSError:
                        inner.close()
                        continue
                    self._spawn(self._pump, inner, outer)
                    self._spawn(self._pump, outer, inner)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(source, selectors.EVENT_READ)
                while not self._stop.is_set():
                    if not selector.select(timeout=self.POLL_SECONDS):
                        continue
                    data = source.recv(65536)
                    if not data:
                        break
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _echo_once(server: socket.socket) -> None:
    """Echo one connection's bytes back until it closes (bounded by the socket's timeout)."""
    try:
        conn, _ = server.accept()
    except OSError:
        return
    with conn:
        conn.settimeout(10)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
        except OSError:
            pass


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")
