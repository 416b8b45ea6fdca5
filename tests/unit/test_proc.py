"""Running the PostgreSQL tools: bounded, and a long one reports its progress meter while it runs."""

import pytest

from mfa_ha import proc
from mfa_ha.errors import CommandFailed
from mfa_ha.postgres.server import _binary_major

METER = 'for i in 1 2 3 4 5 6; do printf "%d/6 kB (%d%%)\\r" $i $((i*100/6)) >&2; sleep 0.15; done; echo done'


def test_a_long_command_reports_its_latest_meter_line_while_it_runs(monkeypatch):
    monkeypatch.setattr(proc, "REPORT_EVERY", 0.2)
    seen = []
    result = proc.run(["bash", "-c", METER], progress=seen.append)
    assert result.stdout == "done\n" and result.returncode == 0
    assert seen and all(line.startswith("bash: ") and "kB" in line for line in seen)
    assert len(set(seen)) >= 2  # the meter moved between reports


def test_a_command_past_its_bound_is_killed_and_named():
    with pytest.raises(CommandFailed, match="sleep did not finish within 0.3 s"):
        proc.run(["sleep", "10"], timeout=0.3)


def test_a_failure_carries_the_output():
    with pytest.raises(CommandFailed, match=r"bash failed \(exit 3\): no such thing"):
        proc.run(["bash", "-c", "echo no such thing >&2; exit 3"])


def test_the_major_of_a_tool_is_read_from_its_version_line(tmp_path):
    tool = tmp_path / "pg_controldata"
    tool.write_text("#!/bin/sh\necho 'pg_controldata (PostgreSQL) 13.16 (Debian 13.16-0+deb11u1)'\n")
    tool.chmod(0o755)
    assert _binary_major(str(tool)) == 13
