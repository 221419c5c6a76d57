"""A ``~/.netrc`` entry for the Graph host must not replace the hook's token header.

``requests`` applies netrc credentials to any request that has no ``auth`` of its own, and its
Basic auth overwrites the ``Authorization`` header the hook set: every call would then reach
Graph without the token (code 190) on a machine whose netrc names the host.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fb_async.hooks.graph import GraphHook
from tests.emu_admin import EmulatorAdmin


def test_a_netrc_entry_for_the_host_leaves_the_token_header_alone(
    graph_conn: EmulatorAdmin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-token\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))

    with GraphHook() as hook:
        me = hook.get("me", params={"fields": "id"})
        created = hook.post("act_9090/campaigns", data={"name": "netrc", "objective": "OUTCOME_SALES"})

    assert "id" in me
    assert graph_conn.counters()["objects_created"] == 1
    assert created["id"]
