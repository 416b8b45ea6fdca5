"""Outputter for ``salt-run mfa_ha.status``: the cluster as a table (like ``patronictl list``)."""

from mfa_ha.monitoring.status import table


def output(data, **_kwargs):
    return table(data)
