"""Outputter for ``salt-run mfa_ha.history``: one line per record, oldest first, and where they came from."""

from mfa_ha.monitoring.history import table


def output(data, **_kwargs):
    if not isinstance(data, dict) or "entries" not in data:
        return str(data)
    source = {"master": "the master's records", "timelines": "the nodes' timeline history files"}.get(
        data.get("source"), str(data.get("source"))
    )
    lines = [table(data["entries"]), f"(from {source})"]
    if data.get("unreadable_lines"):
        lines.append(f"{data['unreadable_lines']} unreadable line(s) skipped")
    return "\n".join(lines)
