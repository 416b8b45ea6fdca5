"""
Control the application daemon (IBM PowerSC MFA's ``pmfad`` by default).

Backends: AIX System Resource Controller (``startsrc``/``stopsrc``/``lssrc``), chosen on
``os_family: AIX``, and systemd elsewhere; pillar ``mfa_ha:pmfad:manager`` (``src`` or
``systemd``) overrides. Other pillar keys under ``mfa_ha:pmfad``: ``service``,
``src_bin_dir``, ``health_host``, ``health_port`` (6793), ``health_path`` (``/policyAuth/``),
``health_scheme``, ``health_verify_tls``, ``timeout``.
"""

from mfa_ha import app
from mfa_ha.adapters.saltface import call_args, pillar_value, translate_errors

__virtualname__ = "pmfad"


def __virtual__():
    return __virtualname__


def _cfg(kwargs) -> app.AppConfig:
    pillar = pillar_value(__pillar__, "mfa_ha:pmfad", {}, __salt__["sdb.get"])
    return app.app_config(pillar, __grains__.get("os_family"), **call_args(kwargs))


@translate_errors
def backend(**kwargs):
    """
    The service manager in use: ``src`` or ``systemd``.

    CLI Example:

    .. code-block:: bash

        salt '*' pmfad.backend
    """
    return _cfg(kwargs).manager


@translate_errors
def status(**kwargs):
    """
    The daemon's state (``running``/``stopped``), PID and the manager's own words.

    CLI Example:

    .. code-block:: bash

        salt '*' pmfad.status
    """
    cfg = _cfg(kwargs)
    return {"service": cfg.service, "manager": cfg.manager, **app.backend(cfg).status()}


@translate_errors
def start(**kwargs):
    """
    Start the daemon and wait until the manager reports it running. False if it already ran.

    CLI Example:

    .. code-block:: bash

        salt server_dr pmfad.start
    """
    return app.backend(_cfg(kwargs)).start()


@translate_errors
def stop(**kwargs):
    """
    Stop the daemon and wait until the manager reports it stopped (SRC: forced with
    ``stopsrc -f`` after the timeout). False if it was not running.

    CLI Example:

    .. code-block:: bash

        salt server_prod pmfad.stop
    """
    return app.backend(_cfg(kwargs)).stop()


@translate_errors
def restart(**kwargs):
    """
    Stop (if running) and start the daemon.

    CLI Example:

    .. code-block:: bash

        salt '*' pmfad.restart
    """
    service = app.backend(_cfg(kwargs))
    service.stop()
    return service.start()


@translate_errors
def health(wait=0, **kwargs):
    """
    Check the MFA HTTPS endpoint (default ``https://127.0.0.1:6793/policyAuth/``): healthy
    when it answers below HTTP 500. With ``wait`` seconds, retry until healthy or the time
    is up.

    CLI Example:

    .. code-block:: bash

        salt '*' pmfad.health
        salt '*' pmfad.health wait=30
    """
    cfg = _cfg(kwargs)
    return app.wait_healthy(cfg, float(wait)) if float(wait) > 0 else app.health(cfg)
