import os

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = os.path.relpath(str(item.fspath), os.path.dirname(__file__)).split(os.sep)[0]
        item.add_marker(getattr(pytest.mark, tier))


def pytest_unconfigure(config):
    """Salt's deferred start-up log handler flushes its queue to a closed stderr at exit;
    hand the queue to pytest's handlers now instead of printing tracebacks then."""
    from salt._logging import impl

    impl.shutdown_temp_handler()


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionstart(session):
    """salt-factories' log server, bound to loopback (its default is 0.0.0.0); hookwrappers
    run before the plugin starts it."""
    log_server = session.config.pluginmanager.get_plugin("saltfactories-log-server")
    if log_server is not None:
        log_server.log_host = "127.0.0.1"
    yield


@pytest.fixture(scope="session")
def event_listener():
    """salt-factories' event listener, bound to loopback (its default is 0.0.0.0)."""
    from saltfactories.plugins.event_listener import EventListener

    listener = EventListener()
    listener.host = "127.0.0.1"
    listener.address = f"tcp://{listener.host}:{listener.port}"
    with listener:
        yield listener


@pytest.fixture(scope="session")
def salt_factories_default_root_dir():
    """A fresh, short (unix socket paths) root for the daemons' files, removed afterwards."""
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix="mfa-ha-salt.", dir="/tmp")
    yield root
    if not os.environ.get("MFA_HA_KEEP_LAB"):
        shutil.rmtree(root, ignore_errors=True)
