"""
States for the application daemon (``pmfad``): ``running`` and ``dead``, with ``mod_watch``.

.. code-block:: yaml

    pmfad:
      pmfad.running

    pmfad on a standby:
      pmfad.dead
"""

from mfa_ha.adapters.saltface import FAILURES

__virtualname__ = "pmfad"


def __virtual__():
    return __virtualname__


def running(name="pmfad", **kwargs):
    """The daemon runs (started through its service manager)."""
    return _converge(name, "running", kwargs)


def dead(name="pmfad", **kwargs):
    """The daemon is stopped."""
    return _converge(name, "stopped", kwargs)


def mod_watch(name, sfun=None, **kwargs):
    """On a watched change: restart a running daemon, stop a dead one."""
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if sfun == "dead":
        return dead(name, **kwargs)
    try:
        if __opts__["test"]:
            ret.update(result=None, changes={"restarted": name}, comment=f"would restart {name}")
            return ret
        __salt__["pmfad.restart"](service=name, **kwargs)
        ret.update(changes={"restarted": name}, comment=f"restarted {name}")
    except FAILURES as err:
        ret.update(result=False, comment=str(err))
    return ret


def _converge(name, wanted, kwargs):
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        before = __salt__["pmfad.status"](service=name, **kwargs)["state"]
        if before == wanted:
            ret["comment"] = f"{name} is {wanted}"
            return ret
        ret["changes"] = {"state": {"old": before, "new": wanted}}
        verb = "start" if wanted == "running" else "stop"
        if __opts__["test"]:
            ret.update(result=None, comment=f"would {verb} {name}")
            return ret
        __salt__[f"pmfad.{verb}"](service=name, **kwargs)
        after = __salt__["pmfad.status"](service=name, **kwargs)["state"]
        if after != wanted:
            ret.update(result=False, changes={"begun": ret["changes"]}, comment=f"{name} is {after} after {verb}")
            return ret
        ret["comment"] = f"{verb}ed {name}".replace("stoped", "stopped")
    except FAILURES as err:
        # a failure once the start or stop was asked for may have changed the state: say so
        begun = {"begun": ret["changes"]} if ret["changes"] and not __opts__["test"] else {}
        ret.update(result=False, changes=begun, comment=str(err))
    return ret
