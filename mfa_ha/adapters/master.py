"""The master's side of the Salt faces: jobs to the nodes, events and alerts, the master's
view of the pillar, and orchestrations run as an operator runs them. The runner and the
witness engine share these; each takes the master's ``opts``.

A node that does not answer a job appears as ``"no answer"`` (or, when no accepted minion key
matches it, as ``NO_KEY``); Salt's own "No minions matched" line goes to stderr, never into
the JSON a script reads from stdout.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import time

import salt.client
import salt.pillar
import salt.utils.event
import salt.utils.minions

from mfa_ha import maintenance, timing
from mfa_ha.errors import MfaHaError
from mfa_ha.files import read_json, write_json
from mfa_ha.monitoring import alerts, history

log = logging.getLogger(__name__)

# salt-run's exit codes for mfa-ha's runner functions (the reference lists them)
EXIT_DONE = 0  # done, healthy, or a check that passed
EXIT_FAILED = 1  # an action ran and did not complete, or the cluster is unhealthy
EXIT_REFUSED = 2  # a check said no before anything ran; nothing was changed
EXIT_BAD_INPUT = 3  # an argument or the pillar is invalid; nothing was changed

NO_ANSWER = "no answer"
NO_KEY = "no answer: no accepted minion key matches it on this master (salt-key -L)"


def pillar(opts) -> dict:
    """``mfa_ha`` as the master's orchestrations render it."""
    compiled = salt.pillar.get_pillar(opts, {}, opts["id"], saltenv=opts.get("saltenv") or "base")
    return compiled.compile_pillar().get("mfa_ha", {})


def pause_path(opts) -> str:
    """The master's pause record (``mfa_ha.maintenance``): the witness reads it every round."""
    return os.path.join(opts["cachedir"], "mfa_ha", maintenance.FILE_NAME)


def standbys_path(opts) -> str:
    """Which standby is behind (``synchronous: on``, ``mfa_ha.unattended.syncguard``)."""
    return os.path.join(opts["cachedir"], "mfa_ha", "standbys.json")


def standby_records(opts) -> dict:
    return read_json(standbys_path(opts))


@contextlib.contextmanager
def _standbys_locked(opts):
    """The witness (engine) and a failover's prechecks (runner) decide on these records one
    at a time: a standby recorded as behind is never promoted, a failover target never
    recorded as behind once its promotion is decided."""
    lock = standbys_path(opts) + ".lock"
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    with open(lock, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield standby_records(opts)


def record_standby(opts, node: str, record: dict) -> None:
    """Durably, before any node acts on it (raises OSError when it cannot be made). A standby
    whose promotion a failover decided is never recorded as behind (the primary it would be
    dropped by keeps waiting for it): raises ``MfaHaError``."""
    with _standbys_locked(opts) as records:
        primary = records.get(record.get("primary")) or {}
        if record.get("promotable") is False and _failover_decided(primary, node):
            raise MfaHaError(f"a failover to {node} is decided: {record.get('primary')} keeps waiting for it")
        _write_standby(opts, records, node, record)


def record_failover(opts, target: str, left_behind: dict, behind) -> None:
    """A failover to ``target`` is decided: the nodes it leaves behind are recorded so, unless
    ``target`` was recorded as behind meanwhile (``behind(record)``: why, raised as
    ``MfaHaError``; None when it may be promoted)."""
    with _standbys_locked(opts) as records:
        why = behind(records.get(target) or {})
        if why:
            raise MfaHaError(why)
        for node, record in left_behind.items():
            records = _write_standby(opts, records, node, record)


def _failover_decided(record: dict, to: str) -> bool:
    """A failover to ``to`` was decided and may still be under way (past its bound it either
    promoted ``to`` or failed: then it must not keep the old primary waiting for ever)."""
    recent = time.time() - (record.get("recorded_at") or 0) < timing.FAILOVER_DECIDED_SECONDS
    decided = record.get("promotable") is False and record.get("request") == "failover"
    return decided and record.get("primary") == to and recent


def _write_standby(opts, records: dict, node: str, record: dict) -> dict:
    records = {**records, node: {**record, "recorded_at": time.time()}}
    write_json(standbys_path(opts), records)
    promotable = record.get("promotable")
    remember(
        opts,
        "standby",
        "promotable" if promotable else "behind",
        f"{node} {'holds every acknowledged commit again' if promotable else 'dropped from synchronous replication'}",
        node=node,
        **{k: v for k, v in record.items() if k != "promotable"},
    )
    return records


def history_path(opts) -> str:
    return os.path.join(opts["cachedir"], "mfa_ha", "history.jsonl")


def remember(opts, event: str, outcome: str, summary: str, **details) -> str | None:
    """Appends to the master's history (``mfa_ha.monitoring.history``); returns why it could
    not, also logged as CRITICAL, or None once recorded."""
    try:
        history.append(history_path(opts), history.entry(event, outcome, summary, **details))
    except OSError as err:
        log.critical("mfa_ha history NOT recorded (%s): %s %s: %s", err, event, outcome, summary)
        return f"not recorded: {err}"
    return None


def silent(answer) -> bool:
    return isinstance(answer, str) and answer.startswith(NO_ANSWER)


def cmd(opts, targets, function, args, timeout) -> dict:
    """One job to ``targets`` (a list of ids); ``{id: return}``, ``"failed: ..."`` for a
    failing return, or a "no answer" text for a minion that did not return within ``timeout``."""
    client = salt.client.LocalClient(mopts=opts)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            returns = client.cmd(
                targets,
                function,
                args,
                tgt_type="list",
                timeout=timeout,
                full_return=True,
                gather_job_timeout=min(timeout, timing.GATHER_JOB_SECONDS),
            )
    finally:
        client.destroy()
    result = {}
    for node in targets:
        ret = returns.get(node)
        if (
            not isinstance(ret, dict)
            or ret.get("failed")
            or (isinstance(ret.get("ret"), str) and ret["ret"].startswith("Minion did not return"))
        ):
            result[node] = NO_ANSWER
        elif ret.get("retcode", 0):
            result[node] = f"failed: {ret.get('ret')}"
        else:
            result[node] = ret.get("ret")
    return _named_unaccepted(opts, result)


@contextlib.contextmanager
def job(opts, targets, function, args, seconds):
    """Publishes the job at once; yields ``collect()``, which returns what arrived within
    ``seconds`` of the publication (returns that came meanwhile are kept by the subscription)."""
    client = salt.client.LocalClient(mopts=opts)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            pub = client.run_job(targets, function, args, tgt_type="list", timeout=seconds, listen=True)
        deadline = time.monotonic() + seconds
        yield lambda: _named_unaccepted(opts, _collect(client, (pub or {}).get("jid"), targets, deadline))
    finally:
        client.destroy()


def returns_within(opts, targets, function, args, seconds) -> dict:
    """``{id: return}`` of one job, with what returned within ``seconds`` ("no answer" for the
    rest): no find_job, no second wait for a silent minion."""
    with job(opts, targets, function, args, seconds) as collect:
        return collect()


def _collect(client, jid, targets, deadline) -> dict:
    result = {node: NO_ANSWER for node in targets}
    if not jid:
        return result
    pending = set(targets)
    for raw in client.get_returns_no_block(f"salt/job/{jid}/ret/", "startswith"):
        data = (raw or {}).get("data") or {}
        if data.get("id") in pending:
            pending.discard(data["id"])
            ok = data.get("success", True) and not data.get("retcode")
            result[data["id"]] = data.get("return") if ok else f"failed: {data.get('return')}"
        now = time.monotonic()
        if not pending or (raw is None and now >= deadline) or now >= deadline + 2:  # drain what already came
            break
    return result


def _named_unaccepted(opts, result: dict) -> dict:
    """Silent nodes that no accepted key matches get ``NO_KEY``: the job never reached them."""
    silent_nodes = [node for node, answer in result.items() if answer == NO_ANSWER]
    if not silent_nodes:
        return result
    accepted = set(salt.utils.minions.CkMinions(opts).check_minions(silent_nodes, "list").get("minions") or ())
    return {
        node: NO_KEY if node in silent_nodes and node not in accepted else answer for node, answer in result.items()
    }


def fire(opts, tag: str, data: dict) -> None:
    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as bus:
        bus.fire_event(data, tag)


def deliver(opts, severity: str, summary: str, details: dict, alerts_pillar, runners) -> dict:
    """Master event ``mfa_ha/alert/<severity>``, the master log, and every configured target
    (a command, or a runner function from ``runners``)."""
    log.warning("mfa_ha alert [%s] %s", severity, summary)
    fire(opts, f"mfa_ha/alert/{severity}", {"severity": severity, "summary": summary, **details})
    sent = {}
    for i, target in enumerate(alerts.targets(alerts_pillar)):
        try:
            if "command" in target:
                sent[i] = alerts.run_command(target["command"], summary)
            else:
                kwargs = dict(target.get("kwargs") or {})
                kwargs[target.get("message_arg", "message")] = summary
                runners[target["runner"]](**kwargs)
                sent[i] = "sent"
        except Exception as err:  # noqa: BLE001 - one broken target must not stop the others
            sent[i] = f"failed: {err}"
            log.error("mfa_ha alert target %s failed: %s", i, err)
    return sent


def orchestrate_as_operator(opts, mods: str, pillar_override: dict, timeout: float | None = 900) -> dict:
    """``salt-run state.orchestrate`` as its own process, exactly as an operator runs it: a
    runner started by the reactor or the engine cannot publish jobs from inside a nested
    orchestration (Salt refuses that identity there with an authentication error)."""
    command = [
        os.path.join(os.path.dirname(sys.executable), "salt-run"),
        "-c",
        os.path.dirname(opts["conf_file"]),
        "--out=json",
        "state.orchestrate",
        mods,
        f"pillar={json.dumps(pillar_override)}",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"retcode": EXIT_FAILED, "output": f"{mods} gave no result within {timeout:g} s (salt-run ended)"}
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"retcode": done.returncode, "output": (done.stdout + done.stderr)[-2000:]}
