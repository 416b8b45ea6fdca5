import os

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = os.path.relpath(str(item.fspath), os.path.dirname(__file__)).split(os.sep)[0]
        item.add_marker(getattr(pytest.mark, tier))
