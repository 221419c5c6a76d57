from __future__ import annotations

import json

from tests.emu_admin import EmulatorAdmin

from .conftest import Graph, error_of


def test_etag_and_304(graph: Graph, emu: EmulatorAdmin) -> None:
    camp = graph.create("act_1", "campaigns", name="c", objective="OUTCOME_SALES")
    first = graph.get(camp, fields="name")
    etag = first.headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert len(etag) == 42
    assert graph.get(camp, fields="name").headers["ETag"] == etag  # stable
    assert graph.get(camp, fields="name,status").headers["ETag"] != etag
    cached = graph.get(camp, fields="name", headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert graph.get(camp, fields="name", headers={"If-None-Match": '"nope"'}).status_code == 200
    graph.ok(graph.post(camp, {"name": "d"}))
    changed = graph.get(camp, fields="name", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["name"] == "d"
    # edges get ETags too; POST answers do not
    assert graph.get("act_1/campaigns").headers["ETag"]
    assert "ETag" not in graph.post(camp, {"name": "e"}).headers
    # conditional GETs still count against rate limits
    assert emu.counters()["calls_by_kind"]["get_object"] == 6


def _buc(resp, account: str) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(resp.headers["X-Business-Use-Case-Usage"])[account][0]


def test_usage_headers_budget_and_80004(graph: Graph, emu: EmulatorAdmin) -> None:
    # A ten-minute window and 60 s "minutes": every call below lands in the window and in the
    # block, however slow the machine; unthrottle ends the block instead of waiting for it.
    emu.config(usage_budget=4, usage_window=600, regain_unit_seconds=60)
    pcts = []
    for _ in range(4):
        resp = graph.get("act_77")
        assert resp.status_code == 200
        buc = _buc(resp, "77")
        assert buc["type"] == "ads_management"
        assert buc["estimated_time_to_regain_access"] == 0
        assert {"call_count", "total_cputime", "total_time", "ads_api_access_tier"} <= set(buc)
        pcts.append(buc["call_count"])
        assert json.loads(resp.headers["X-Ad-Account-Usage"])["acc_id_util_pct"] == buc["call_count"]
        assert set(json.loads(resp.headers["X-App-Usage"])) == {"call_count", "total_cputime", "total_time"}
    assert pcts == [25, 50, 75, 100]
    throttled = graph.get("act_77/campaigns")
    err = error_of(throttled)
    assert err["code"] == 80004
    assert err["is_transient"] is False
    regain = _buc(throttled, "77")["estimated_time_to_regain_access"]
    assert 1 <= regain <= 10  # until the oldest call leaves the window: at most 600 s / 60 s
    assert graph.get("act_78").status_code == 200  # other accounts are not affected
    assert (
        error_of(graph.post("act_77/campaigns", {"name": "x", "objective": "OUTCOME_SALES"}))["code"] == 80004
    )
    assert emu.counters()["objects_created"] == 0
    assert emu.unthrottle("act_77") == ["77"]  # ends the block and empties the account's window
    assert graph.get("act_77").status_code == 200
    assert _buc(graph.get("act_77"), "77")["call_count"] == 50
    assert emu.counters()["throttled_calls"] == 2


def test_batch_entries_count_and_carry_usage(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(usage_budget=3, usage_window=30, regain_unit_seconds=10, throttle_code=17)
    out = graph.batch([{"method": "GET", "relative_url": "act_90"}] * 5).json()
    assert [e["code"] for e in out] == [200, 200, 200, 400, 400]
    assert json.loads(out[3]["body"])["error"]["code"] == 17
    headers = {h["name"]: h["value"] for h in out[3]["headers"]}
    assert json.loads(headers["X-Business-Use-Case-Usage"])["90"][0]["estimated_time_to_regain_access"] >= 1
