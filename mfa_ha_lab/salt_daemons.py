"""A salt-master and one salt-minion per lab node, as plain processes for the demo and the
benchmarks (the tests start theirs through pytest-salt-factories).

Everything binds to 127.0.0.1 on free ports (the master's own address when the lab has hosts
of its own: the master on its site, each minion on its node's host) and lives under
``<lab>/salt``; the daemons are
stopped by the PIDs recorded when they were started. Operator commands run as the real
``salt`` and ``salt-run`` CLIs, so their timings include what an operator waits for.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

from mfa_ha_lab.lab import MASTER_ID, Lab

BIN_DIR = os.path.dirname(sys.executable)
MINION_KEEPALIVE = {"tcp_keepalive": True, "tcp_keepalive_idle": 5, "tcp_keepalive_cnt": 3, "tcp_keepalive_intvl": 2}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SaltLab:
    def __init__(self, lab: Lab, log_level: str = "warning", code: str | None = None):
        """``code``: a checkout of mfa-ha whose product the daemons and the CLIs run instead of
        the installed one (the benchmark's previous version); the lab itself stays this one."""
        self.lab = lab
        self.root = os.path.join(lab.root, "salt")
        self.master_dir = os.path.join(self.root, "master")
        self.log_level = log_level
        self.ports = {"publish_port": _free_port(), "ret_port": _free_port()}
        self.processes: dict[str, subprocess.Popen] = {}
        self.code = code
        self.env = {**os.environ, "PYTHONPATH": code} if code else None

    # -- configuration ----------------------------------------------------------------
    def _write_config(self, directory: str, name: str, config: dict) -> None:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, name), "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2)  # JSON is YAML

    def configure(self, extra_master: dict | None = None) -> None:
        trees = self.lab.write_salt_tree(os.path.join(self.code, "salt") if self.code else None)
        # A silent link is noticed within ~11 s and the connection made again once it is back
        # (Salt's default keepalive idle is 300 s: a minion cut off for a minute stays deaf for minutes).
        common = {"user": "root", "log_level_logfile": "info", **MINION_KEEPALIVE}
        master = {
            **common,
            "interface": self.lab.master_address,
            **self.ports,
            "root_dir": self.master_dir,
            "pki_dir": os.path.join(self.master_dir, "pki"),
            "cachedir": os.path.join(self.master_dir, "cache"),
            "sock_dir": os.path.join(self.master_dir, "sock"),
            "log_file": os.path.join(self.master_dir, "master.log"),
            "pidfile": os.path.join(self.master_dir, "master.pid"),
            "auto_accept": True,
            "open_mode": False,
            "worker_threads": 4,
            **trees,
            # the witness of an unattended failover: idle while mfa_ha:failover:automatic is off
            "engines": [{"mfa_ha_witness": {"pillar_every": 5}}],
            **(extra_master or {}),
        }
        self._write_config(self.master_dir, "master", master)
        for node in self.lab.nodes:
            directory = self.minion_dir(node.minion_id)
            self._write_config(
                directory,
                "minion",
                {
                    **common,
                    "id": node.minion_id,
                    "master": self.lab.master_address,
                    "master_port": self.ports["ret_port"],
                    "publish_port": self.ports["publish_port"],
                    "root_dir": directory,
                    "pki_dir": os.path.join(directory, "pki"),
                    "cachedir": os.path.join(directory, "cache"),
                    "sock_dir": os.path.join(directory, "sock"),
                    "log_file": os.path.join(directory, "minion.log"),
                    "pidfile": os.path.join(directory, "minion.pid"),
                    "loop_interval": 1,
                    "acceptance_wait_time": 1,
                    "random_reauth_delay": 0,
                },
            )

    def minion_dir(self, minion_id: str) -> str:
        return os.path.join(self.root, minion_id)

    # -- processes --------------------------------------------------------------------
    def start(self, timeout: float = 120) -> SaltLab:
        self.configure()
        with self.lab.on_host("master"):
            self._spawn("master", "salt-master", self.master_dir)
        for node in self.lab.nodes:
            with self.lab.on(node):
                self._spawn(node.minion_id, "salt-minion", self.minion_dir(node.minion_id))
        self.wait_for_minions(timeout)
        return self

    def _spawn(self, name: str, program: str, config_dir: str) -> None:
        log = open(os.path.join(config_dir, f"{program}.out"), "ab")
        self.processes[name] = subprocess.Popen(
            [os.path.join(BIN_DIR, program), "-c", config_dir, "-l", self.log_level],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=self.env,
        )

    def kill(self, name: str) -> None:
        """SIGKILL a daemon this lab started (``master`` or a minion id) and every process of its
        group (its running jobs), by the PID recorded at start: a daemon dying mid-job."""
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        _end_group(process.pid, time.monotonic() + 30)

    def start_minion(self, minion_id: str, timeout: float = 120) -> None:
        """Start a minion again (after ``kill``) on its node's host, and wait until it answers."""
        node = self.lab.node(minion_id)
        with self.lab.on(node):
            self._spawn(minion_id, "salt-minion", self.minion_dir(minion_id))
        self.wait_for_minions(timeout)

    def start_master(self, timeout: float = 120) -> None:
        """Start the master again (after ``kill``) on its site, and wait until the minions answer."""
        with self.lab.on_host("master"):
            self._spawn("master", "salt-master", self.master_dir)
        self.wait_for_minions(timeout)

    def wait_for_minions(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ids = sorted(n.minion_id for n in self.lab.nodes)
        while True:
            answered = self.salt("*", "test.ping", timeout=5, check=False)
            if isinstance(answered, dict) and sorted(k for k, v in answered.items() if v is True) == ids:
                return
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}); see its log under {self.root}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"minions {ids} did not answer within {timeout:g} s (got {answered})")
            time.sleep(1)

    def stop(self, timeout: float = 30) -> None:
        """Stop what was started here, by PID: the process groups of the daemons."""
        signalled = [process for process in self.processes.values() if process.poll() is None]
        for process in signalled:
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            _end_group(process.pid, deadline)
        self.processes.clear()

    def __enter__(self) -> SaltLab:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- operator commands --------------------------------------------------------------
    def _cli(self, program: str, args: list[str], timeout: float, check: bool, output: str = "json"):
        command = [os.path.join(BIN_DIR, program), "-c", self.master_dir, f"--out={output}", *args]
        started = time.monotonic()
        with self.lab.on_host("master"):  # the operator works on the master's host
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30, env=self.env)
        self.last_seconds, self.last_returncode = time.monotonic() - started, done.returncode
        if output != "json":
            return done.stdout
        try:
            data = json.loads(done.stdout) if done.stdout.strip() else None
        except ValueError:
            data = _last_json(done.stdout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[2:])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return data

    def salt(self, target: str, function: str, *args, timeout: float = 300, check: bool = True, **kwargs):
        extra = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in kwargs.items()]
        return self._cli("salt", ["-t", str(int(timeout)), "--static", target, function, *args, *extra], timeout, check)

    def run(self, function: str, *args, timeout: float = 600, check: bool = True, output: str = "json", **kwargs):
        extra = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in kwargs.items()]
        return self._cli("salt-run", [function, *args, *extra], timeout, check, output)

    def cpu_seconds(self) -> float:
        """CPU time so far of the daemons started here and every process of their sessions
        (with what they reaped: their jobs and the commands those ran), and of the commands
        this process ran and reaped (the CLIs). PostgreSQL, the app and the lab's services run
        in sessions of their own and are not counted."""
        return sum(self.cpu_by_process().values())

    def cpu_by_process(self) -> dict[str, float]:
        """``cpu_seconds`` split: ``cli`` (what this process reaped), then each daemon's session."""
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        ticks = _session_ticks({process.pid: name for name, process in self.processes.items()})
        per_tick = 1 / os.sysconf("SC_CLK_TCK")
        return {"cli": reaped.ru_utime + reaped.ru_stime, **{name: t * per_tick for name, t in ticks.items()}}

    # -- pillar changes the way an operator makes them ---------------------------------------
    def apply_pillar(self, edit) -> None:
        """``edit(mfa_ha)`` laid over the master's and every node's pillar, then the formula
        applied on each node; every state must succeed."""
        self.lab.edit_overrides([MASTER_ID, *(n.minion_id for n in self.lab.nodes)], edit)
        self.salt("*", "saltutil.refresh_pillar", wait=True)
        applied = self.salt("*", "state.apply", "mfa_ha", timeout=300, check=False)
        for minion, states in applied.items():
            if not (isinstance(states, dict) and all(s["result"] for s in states.values())):
                raise RuntimeError(f"state.apply mfa_ha on {minion} failed: {str(states)[-3000:]}")

    def synchronous_on(self, automatic: dict, timeout: float = 90) -> None:
        """``synchronous: "on"`` with the unattended failover it needs (``automatic``: the
        ``mfa_ha:failover`` keys): applied, the witness armed and the standby recorded as
        holding every commit."""
        before = len(alert_lines(self.lab))

        def edit(mfa):
            mfa.setdefault("failover", {}).update(automatic)
            mfa.setdefault("replication", {})["synchronous"] = "on"

        self.apply_pillar(edit)
        deadline = time.monotonic() + timeout
        while not (witness_armed(self.lab) and promotable_since(self.lab, before)):
            if time.monotonic() >= deadline:
                raise RuntimeError(f"the witness did not arm and record the standby promotable within {timeout:g} s")
            time.sleep(0.5)


def _end_group(pgid: int, deadline: float) -> None:
    """Wait until no process is left in the group of a daemon started here, its leader
    reaped: its children end after it, and a daemon started again before they did would find
    its sockets taken. What is left at ``deadline`` gets SIGKILL and a few more seconds. A
    process alive under the leader's id is someone else's (the id was given out again once
    the group was empty): then nothing is waited for or signalled."""
    if os.path.exists(f"/proc/{pgid}"):
        return
    try:
        _group_alive_until(pgid, deadline)
        os.killpg(pgid, signal.SIGKILL)
        _group_alive_until(pgid, time.monotonic() + 5)
    except ProcessLookupError:
        return


def _group_alive_until(pgid: int, deadline: float) -> None:
    """Returns at ``deadline`` if the group still has a process; ProcessLookupError once it has none."""
    while True:
        os.killpg(pgid, 0)
        if time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def _session_ticks(sessions: dict[int, str]) -> dict[str, int]:
    """utime + stime + cutime + cstime of every live process in each session (/proc/PID/stat),
    by the session's name."""
    ticks = dict.fromkeys(sessions.values(), 0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue  # gone meanwhile: its time is in its parent's cutime once reaped
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
        session = int(fields[3])  # field 6
        if session in sessions:
            ticks[sessions[session]] += sum(int(f) for f in fields[11:15])  # fields 14-17
    return ticks


def alert_lines(lab: Lab) -> list[str]:
    """The alerts the lab's nodes and master have sent, oldest first."""
    path = os.path.join(lab.root, "alerts.log")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return fh.read().splitlines()


def witness_armed(lab: Lab) -> bool:
    """Armed since its last failover (it re-arms once it sees a healthy pair)."""
    lines = alert_lines(lab)
    last = {
        what: max((i for i, line in enumerate(lines) if what in line), default=-1)
        for what in ("witness armed", "failing over to")
    }
    return last["witness armed"] > last["failing over to"]


def promotable_since(lab: Lab, before: int) -> bool:
    """The master recorded the standby as holding every commit since alert line ``before``."""
    return any("promotable" in line and "holds every commit" in line for line in alert_lines(lab)[before:])


def recorded_promotable(lab: Lab, node: str) -> bool:
    """The master's last word on ``node`` (as alerted) is that it holds every commit: after
    the last time it was recorded as behind (by the witness, or by a switchover's prechecks)."""
    lines = alert_lines(lab)

    def last(*patterns) -> int:
        return max((i for i, line in enumerate(lines) if any(p in line for p in patterns)), default=-1)

    behind = last(f"{node} stopped acknowledging", f"{node} recorded as not promotable")
    return last(f"{node} holds every commit") > behind


def _last_json(text: str):
    """salt-run prints progress lines before the JSON document: take the last document."""
    start = text.rfind("\n{")
    try:
        return json.loads(text[start + 1 if start >= 0 else 0 :])
    except ValueError:
        return {"raw": text}
