"""Shared pytest fixtures: factories for real servers (see ``tests/servers.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from tests.servers import Series, Server, start_prometheus, start_victoria

ServerFactory = Callable[[Sequence[Series]], Server]


def _factory(tmp_path_factory: pytest.TempPathFactory, start: Callable[..., Server]) -> Iterator[ServerFactory]:
    """Start servers on demand and stop every one of them when the scope ends."""
    started: list[Server] = []

    def make(series: Sequence[Series]) -> Server:
        server = start(series, tmp_path_factory.mktemp(start.__name__))
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def prometheus_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Module-scoped: ``prometheus_factory(series)`` starts a real Prometheus holding ``series``."""
    yield from _factory(tmp_path_factory, start_prometheus)


@pytest.fixture(scope="module")
def victoria_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Module-scoped: ``victoria_factory(series)`` starts a real VictoriaMetrics holding ``series``."""
    yield from _factory(tmp_path_factory, start_victoria)
