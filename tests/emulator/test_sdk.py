"""The unmodified official SDK (facebook_business) against the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emu_admin import EmulatorAdmin
from tests.waits import wait_for

facebook_business = pytest.importorskip("facebook_business")


def test_sdk_batch_async_set_and_requests(sdk_api: Any, emu: EmulatorAdmin) -> None:
    from facebook_business.adobjects.adaccount import AdAccount
    from facebook_business.adobjects.adasyncrequestset import AdAsyncRequestSet

    account = AdAccount("act_1")
    ok: list[Any] = []
    failed: list[Any] = []
    batch = sdk_api.new_batch()
    for i in range(3):
        account.create_campaign(
            params={
                "name": f"sdk {i}",
                "objective": "OUTCOME_TRAFFIC",
                "status": "PAUSED",
                "special_ad_categories": [],
            },
            batch=batch,
            success=ok.append,
            failure=failed.append,
        )
    account.create_campaign(
        params={"name": "no objective"}, batch=batch, success=ok.append, failure=failed.append
    )
    account.get_campaigns(fields=["name"], batch=batch, success=ok.append, failure=failed.append)
    assert batch.execute() is None  # no null entry to retry
    assert len(ok) == 4
    assert len(failed) == 1
    created = [r.json()["id"] for r in ok[:3]]
    assert [c["id"] for c in ok[3].json()["data"]] == created
    assert failed[0].error().api_error_code() == 100
    assert emu.counters()["batch_entries"] == 5

    adbatch = [
        {
            "name": f"r{i}",
            "relative_url": "act_1/campaigns",
            "body": f"name=async+{i}&objective=OUTCOME_TRAFFIC",
        }
        for i in range(4)
    ]
    request_set = account.create_async_batch_request(params={"name": "sdk set", "adbatch": adbatch})
    set_id = request_set["id"]
    assert set_id.isdigit()
    wait_for(
        lambda: AdAsyncRequestSet(set_id).api_get(fields=["is_completed"]),
        lambda view: bool(view["is_completed"]),
        f"request set {set_id} to complete",
    )
    requests_ = list(AdAsyncRequestSet(set_id).get_requests(fields=["id", "status", "result"]))
    assert [r["status"] for r in requests_] == ["SUCCESS"] * 4
    assert all(r["result"]["id"].isdigit() for r in requests_)
    only_ok = list(
        AdAsyncRequestSet(set_id).get_requests(fields=["status"], params={"statuses": ["SUCCESS"]})
    )
    assert len(only_ok) == 4
    assert emu.counters()["objects_created_by_type"] == {"campaign": 7}
