"""The master's history: records appended and read back, a cut-short line skipped and counted,
a failed write reported, and the nodes' timeline history files read when the records are gone."""

from mfa_ha.adapters import master
from mfa_ha.monitoring import history

TIMELINE_3 = "1\t0/3000098\tno recovery target specified\n\n2\t0/5000028\tno recovery target specified\n"


def test_records_are_read_back_oldest_first_and_a_cut_line_is_counted(tmp_path):
    path = str(tmp_path / "mfa_ha" / "history.jsonl")
    for n in range(3):
        history.append(path, history.entry("switchover", "done", f"switch {n}", clock=lambda n=n: 1000.0 + n))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"event": "fence", "outc')  # a write cut short
    records, unreadable = history.read(path)
    assert [r["summary"] for r in records] == ["switch 0", "switch 1", "switch 2"] and unreadable == 1
    assert records[0]["at"] == "1970-01-01T00:16:40Z" and records[0]["time"] == 1000.0
    assert [r["summary"] for r in history.read(path, limit=2)[0]] == ["switch 1", "switch 2"]
    assert history.read(str(tmp_path / "none.jsonl")) == ([], 0)


def test_a_record_a_full_disk_refused_is_reported_and_logged(tmp_path, monkeypatch, caplog):
    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(history.os, "write", full)
    failed = master.remember({"cachedir": str(tmp_path)}, "pause", "paused", "maintenance")
    assert failed == "not recorded: [Errno 28] No space left on device"
    assert "history NOT recorded" in caplog.text and "pause paused: maintenance" in caplog.text


def test_the_timelines_tell_who_was_promoted_at_which_lsn():
    answers = {
        "server_prod": {"timeline": 3, "history": TIMELINE_3},
        "server_dr": {"timeline": 2, "history": "1\t0/3000098\tno recovery target specified\n"},
        "server_x": "no answer",
    }
    records = history.from_timelines(answers)
    assert [(r["timeline"], r["lsn"], r["known_to"]) for r in records] == [
        (2, "0/3000098", ["server_dr", "server_prod"]),
        (3, "0/5000028", ["server_prod"]),
    ]
    assert records[1]["summary"].startswith("timeline 3 began at 0/5000028 (after timeline 2")
    assert "(from timelines)" in history.table(records)
