"""STAND-IN for AIX's System Resource Controller commands (not IBM code).

``startsrc -s NAME``, ``stopsrc [-f] -s NAME`` and ``lssrc -s NAME`` behave like AIX's as
far as mfa-ha relies on them: the same messages (0513-059, 0513-044, 0513-029, 0513-004,
0513-085), the ``Subsystem Group PID Status`` table with an empty Group column, and
``stopsrc`` returning before the daemon has exited. Subsystems are defined by JSON files
``<root>/subsystems/NAME.json`` (``{"command": [...], "group": ""}``), as ``mkssys`` would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys


def _paths(root: str, name: str) -> tuple[str, str, str]:
    return (
        os.path.join(root, "subsystems", f"{name}.json"),
        os.path.join(root, "run", f"{name}.pid"),
        os.path.join(root, "run", f"{name}.log"),
    )


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None when it is gone or a zombie.
    With its PID, it names one process: a PID alone may since have been given to another."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def running_pid(root: str, name: str) -> int | None:
    """The subsystem's PID while the very process ``startsrc`` started still runs. SRC is its
    parent and knows when it exits; the stand-in records the PID with its start time instead."""
    try:
        with open(_paths(root, name)[1], encoding="ascii") as fh:
            pid, started = (int(field) for field in fh.read().split())
    except (OSError, ValueError):
        return None
    return pid if _start_time(pid) == started else None


def _definition(root: str, name: str) -> dict | None:
    try:
        with open(_paths(root, name)[0], encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def startsrc(root: str, name: str) -> int:
    definition = _definition(root, name)
    if definition is None:
        print(f"0513-085 The {name} Subsystem is not on file.", file=sys.stderr)
        return 1
    if running_pid(root, name):
        print(
            f"0513-029 The {name} Subsystem is already active.\nMultiple instances are not supported.", file=sys.stderr
        )
        return 1
    _, pid_file, log_file = _paths(root, name)
    os.makedirs(os.path.dirname(pid_file), exist_ok=True)
    with open(log_file, "ab") as log:
        child = subprocess.Popen(
            definition["command"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd="/",
            env=definition.get("env") or None,
        )
    started = _start_time(child.pid)
    with open(pid_file, "w", encoding="ascii") as fh:
        fh.write(f"{child.pid} {-1 if started is None else started}")
    print(f"0513-059 The {name} Subsystem has been started. Subsystem PID is {child.pid}.")
    return 0


def stopsrc(root: str, name: str, force: bool) -> int:
    if _definition(root, name) is None:
        print(f"0513-085 The {name} Subsystem is not on file.", file=sys.stderr)
        return 1
    pid = running_pid(root, name)
    if not pid:
        print(f"0513-004 The Subsystem or Group, {name}, is currently inoperative.", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGKILL if force else signal.SIGTERM)
    print(f"0513-044 The {name} Subsystem was requested to stop.")
    return 0


def lssrc(root: str, name: str) -> int:
    definition = _definition(root, name)
    if definition is None:
        print(f"0513-085 The {name} Subsystem is not on file.", file=sys.stderr)
        return 1
    pid = running_pid(root, name)
    print(f"{'Subsystem':<18}{'Group':<17}{'PID':<13}Status")
    print(f" {name:<17}{definition.get('group', ''):<17}{str(pid or ''):<13}{'active' if pid else 'inoperative'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="AIX SRC stand-in")
    parser.add_argument("--root", required=True)
    parser.add_argument("command", choices=("startsrc", "stopsrc", "lssrc"))
    parser.add_argument("-s", dest="subsystem", required=True)
    parser.add_argument("-f", dest="force", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "startsrc":
        return startsrc(args.root, args.subsystem)
    if args.command == "stopsrc":
        return stopsrc(args.root, args.subsystem, args.force)
    return lssrc(args.root, args.subsystem)


if __name__ == "__main__":
    sys.exit(main())
