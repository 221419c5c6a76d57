"""Fixtures of the chaos campaign."""

from __future__ import annotations

import pytest

from tests.chaos._support import CHAOS_MAX_RETRIES
from tests.conftest import CONN_ENV, conn_json
from tests.emu_admin import EmulatorAdmin


@pytest.fixture
def chaos_conn(graph_conn: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch) -> EmulatorAdmin:
    """``graph_conn`` whose connection allows :data:`CHAOS_MAX_RETRIES` retries."""
    monkeypatch.setenv(CONN_ENV, conn_json(graph_conn.url, max_retries=CHAOS_MAX_RETRIES))
    return graph_conn
