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
