"""The ``stack`` marker: the full compose stack test (test_deploy_stack.py)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stack: brings up the whole compose stack (make stack-test)")
