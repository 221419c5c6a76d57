from __future__ import annotations

import json
from pathlib import Path

import requests

from airflow_fb_async.emulator import GraphEmulator
from tests.emu_admin import EmulatorAdmin
from tests.waits import wait_for


def _get(emu: GraphEmulator, path: str, **params: str) -> dict:  # type: ignore[type-arg]
    return requests.get(f"{emu.url}/v25.0/{path}", params={"access_token": "t", **params}, timeout=5).json()


def test_state_file_keeps_objects_sets_and_resumes_processing(tmp_path: Path) -> None:
    state = tmp_path / "emu.json"
    adbatch = [
        {"name": f"r{i}", "relative_url": "act_4/campaigns", "body": f"name=c{i}&objective=OUTCOME_SALES"}
        for i in range(30)
    ]
    with GraphEmulator(port=0, tokens=["t"], state_file=str(state), async_pace=0) as emu:
        camp = requests.post(
            f"{emu.url}/act_4/campaigns",
            timeout=5,
            data={"access_token": "t", "name": "before", "objective": "OUTCOME_SALES"},
        ).json()["id"]
        set_id = requests.post(
            f"{emu.url}/act_4/async_batch_requests",
            timeout=5,
            data={"access_token": "t", "name": "s", "adbatch": json.dumps(adbatch)},
        ).json()["id"]
        # paused: exactly 12 requests run before the stop, the other 18 after the restart
        assert EmulatorAdmin(emu.url).async_step(12)[set_id]["success_count"] == 12
        before = _get(emu, f"{set_id}/requests", fields="status,result", limit="100")["data"]
    done_before = [r for r in before if r["status"] == "SUCCESS"]
    assert before[:12] == done_before
    assert [r["status"] for r in before[12:]] == ["INITIAL"] * 18
    saved = json.loads(state.read_text())
    assert any(o["id"] == set_id for o in saved["objects"])
    assert not list(tmp_path.glob("*.tmp*"))  # atomic write leaves no temp file

    with GraphEmulator(port=0, tokens=["t"], state_file=str(state), async_pace=200) as emu:
        assert _get(emu, camp, fields="name") == {"id": camp, "name": "before"}
        wait_for(
            lambda: _get(emu, set_id), lambda view: bool(view["is_completed"]), f"set {set_id} to complete"
        )
        after = _get(emu, f"{set_id}/requests", fields="status,result", limit="100")["data"]
        assert [r["status"] for r in after] == ["SUCCESS"] * 30
        # the requests done before the restart keep their results; only the rest ran now
        assert after[: len(done_before)] == done_before
        assert emu.counters()["objects_created"] == 18  # only the rest ran after the restart
        assert len(emu.objects("campaign")) == 31
