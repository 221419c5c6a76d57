from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from tests.emu_admin import EmulatorAdmin
from tests.waits import wait_for

from .conftest import Graph, camp_requests, error_of

CAMP_BODY = "name=c&objective=OUTCOME_SALES"


def test_create_process_and_read_set(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(async_pace=0)
    set_id = graph.create_set("act_5", camp_requests(3), name="first")
    assert emu.counters()["request_sets_created"] == 1
    assert emu.counters()["calls_by_kind"]["async_batch_create"] == 1
    view = graph.ok(graph.get(set_id))
    assert view == {"id": set_id, "owner_id": 5, "name": "first", "is_completed": False}
    fields = (
        "total_count,initial_count,in_progress_count,success_count,error_count,canceled_count,"
        "notification_uri,notification_mode,notification_result,notification_status,created_time,updated_time"
    )
    full = graph.ok(graph.get(set_id, fields=fields))
    assert (full["total_count"], full["initial_count"], full["success_count"]) == (3, 3, 0)
    assert full["notification_mode"] == "OFF"
    assert full["notification_status"] == "not_sent"
    assert full["created_time"].endswith("+0000")
    reqs = graph.ok(graph.get(f"{set_id}/requests"))["data"]
    assert [set(r) for r in reqs] == [{"id", "scope_object_id", "status"}] * 3
    assert {r["status"] for r in reqs} == {"INITIAL"}
    assert emu.counters()["objects_created"] == 0  # paused: nothing processed
    emu.config(async_pace=200)
    done = graph.wait_set(set_id)
    assert (done["success_count"], done["error_count"]) == (3, 0)
    reqs = graph.ok(graph.get(f"{set_id}/requests", fields="id,status,result,input,async_request_set"))[
        "data"
    ]
    camp_ids = [o["id"] for o in emu.objects("campaign")]
    assert [r["result"] for r in reqs] == [{"id": c} for c in camp_ids]
    assert reqs[0]["input"] == camp_requests(3)[0]
    assert reqs[0]["async_request_set"] == {"id": set_id}
    assert {r["status"] for r in reqs} == {"SUCCESS"}


def test_pace_controls_processing_speed(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(async_pace=0)  # paused: only async_step moves the set
    set_id = graph.create_set("act_5", camp_requests(8))
    assert emu.async_step(3)[set_id]["success_count"] == 3
    mid = graph.ok(graph.get(set_id, fields="success_count,initial_count,in_progress_count,is_completed"))
    assert mid == {
        "id": set_id,
        "success_count": 3,
        "initial_count": 5,
        "in_progress_count": 0,
        "is_completed": False,
    }
    # 10 a second, at most 2.5 credits banked: the 5 left need 2.5 more credits, so at least
    # 0.25 s after the change. A lower bound only: a slow machine makes it longer, never shorter.
    started = time.monotonic()
    emu.config(async_pace=10)
    assert graph.wait_set(set_id)["success_count"] == 8
    assert time.monotonic() - started >= 0.2


def test_dependencies_errors_and_error_dependency(graph: Graph, emu: EmulatorAdmin) -> None:
    adbatch = [
        {"name": "camp", "relative_url": "act_5/campaigns", "body": CAMP_BODY},
        {"name": "adset", "relative_url": "act_5/adsets", "body": "name=s&campaign_id={result=camp:$.id}"},
        {"name": "broken", "relative_url": "act_5/campaigns", "body": "name=no-objective"},
        {"name": "child", "relative_url": "act_5/adsets", "body": "name=t&campaign_id={result=broken:$.id}"},
        {
            "name": "grandchild",
            "relative_url": "act_5/adsets",
            "body": "name=u&campaign_id={result=child:$.id}",
        },
    ]
    set_id = graph.create_set("act_5", adbatch)
    view = graph.wait_set(set_id)
    assert (view["success_count"], view["error_count"]) == (2, 3)
    reqs = graph.ok(graph.get(f"{set_id}/requests", fields="status,result,scope_object_id"))["data"]
    statuses = [r["status"] for r in reqs]
    assert statuses == ["SUCCESS", "SUCCESS", "ERROR", "ERROR_DEPENDENCY", "ERROR_DEPENDENCY"]
    camp = emu.objects("campaign")[0]["id"]
    assert emu.objects("adset")[0]["campaign_id"] == camp
    assert reqs[1]["scope_object_id"] == int(camp)  # parent of the ad set created
    assert reqs[2]["result"]["error_code"] == 100
    assert "objective" in reqs[2]["result"]["error_message"]
    assert set(reqs[3]["result"]) == {"error_code", "error_message"}


def test_status_filters_pagination_and_other_edges(graph: Graph, emu: EmulatorAdmin) -> None:
    camp = graph.create("act_6", "campaigns", name="c", objective="OUTCOME_SALES")
    adset = graph.create("act_6", "adsets", name="s", campaign_id=camp)
    creative = graph.create("act_6", "adcreatives", name="k")
    ads = [
        {
            "name": f"ad{i}",
            "relative_url": "act_6/ads",
            "body": f'name=a{i}&adset_id={adset}&creative={{"creative_id":"{creative}"}}',
        }
        for i in range(5)
    ]
    ads.append({"name": "bad", "relative_url": "act_6/ads", "body": f"name=x&adset_id={adset}"})
    set_id = graph.create_set("act_6", ads, name="ads")
    graph.wait_set(set_id)
    for key, value in (("status", "success"), ("statuses", "SUCCESS"), ("status", '["Success"]')):
        got = graph.ok(graph.get(f"{set_id}/requests", **{key: value}, limit=100))["data"]
        assert len(got) == 5, (key, value)
    both = graph.ok(graph.get(f"{set_id}/requests", status="success,ERROR", limit=100))["data"]
    assert len(both) == 6
    assert graph.ok(graph.get(f"{set_id}/requests", statuses="canceled"))["data"] == []
    assert error_of(graph.get(f"{set_id}/requests", status="DONE"))["code"] == 100
    # pagination
    page = graph.ok(graph.get(f"{set_id}/requests", limit=4))
    assert len(page["data"]) == 4
    assert "next" in page["paging"]
    rest = graph.ok(graph.get(f"{set_id}/requests", limit=4, after=page["paging"]["cursors"]["after"]))
    assert len(rest["data"]) == 2
    assert "next" not in rest["paging"]
    # GET /requests?id=SET
    via_root = graph.ok(graph.get("requests", id=set_id, fields="result"))["data"]
    assert len(via_root) == 6
    assert all("result" in r for r in via_root)
    # <adset>/asyncadrequests: requests whose scope object is the ad set
    scoped = graph.ok(graph.get(f"{adset}/asyncadrequests", status="SUCCESS,ERROR", limit=100))["data"]
    assert len(scoped) == 6
    assert {r["scope_object_id"] for r in scoped} == {int(adset)}
    assert len(graph.ok(graph.get(f"{adset}/asyncadrequests", status="SUCCESS"))["data"]) == 5
    # act_X/async_requests
    assert len(graph.ok(graph.get("act_6/async_requests", limit=100))["data"]) == 6
    assert emu.counters()["calls_by_kind"]["get_edge"] >= 10


def test_asyncadrequestsets_is_completed_filter(graph: Graph, emu: EmulatorAdmin) -> None:
    done = graph.create_set("act_7", camp_requests(1, "act_7"), name="done")
    graph.wait_set(done)
    emu.config(async_pace=0)
    pending = graph.create_set("act_7", camp_requests(1, "act_7"), name="pending")
    graph.create_set("act_8", camp_requests(1, "act_8"), name="other account")
    listed = graph.ok(graph.get("act_7/asyncadrequestsets"))["data"]
    assert [s["id"] for s in listed] == [done, pending]
    assert set(listed[0]) == {"id", "owner_id", "name", "is_completed"}
    for flag, expected in (("1", [done]), ("true", [done]), ("0", [pending]), ("false", [pending])):
        got = graph.ok(graph.get("act_7/asyncadrequestsets", is_completed=flag))["data"]
        assert [s["id"] for s in got] == expected, flag
    assert error_of(graph.get("act_7/asyncadrequestsets", is_completed="maybe"))["code"] == 100


def test_create_validation(graph: Graph, emu: EmulatorAdmin) -> None:
    ok_batch = json.dumps(camp_requests(1))
    cases: list[dict[str, Any]] = [
        {"adbatch": ok_batch},
        {"name": "n"},
        {"name": "n", "adbatch": "[{'name': 'x',"},
        {"name": "n", "adbatch": "[]"},
        {"name": "n", "adbatch": json.dumps([{"name": "a", "relative_url": "act_1/campaigns"}])},
        {"name": "n", "adbatch": json.dumps([{"name": "a", "relative_url": "act_1/campaigns", "body": 5}])},
        {"name": "n", "adbatch": json.dumps(camp_requests(1) + camp_requests(1))},
        {"name": "n", "adbatch": json.dumps(camp_requests(1001))},
        {"name": "n", "adbatch": ok_batch, "notification_mode": "SOMETIMES"},
        {"name": "n", "adbatch": ok_batch, "notification_uri": "https://example.com/hook"},
        {"name": "n", "adbatch": ok_batch, "notification_uri": "ftp://127.0.0.1/x"},
    ]
    for data in cases:
        err = error_of(graph.post("act_1/async_batch_requests", data))
        assert err["code"] == 100, data
    assert emu.counters()["request_sets_created"] == 0
    assert graph.create_set("act_1", camp_requests(1000)) is not None


def test_update_and_cancel(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(async_pace=0)
    set_id = graph.create_set("act_5", camp_requests(4), name="old")
    assert graph.ok(graph.post(set_id, {"name": "New Name", "notification_mode": "OFF"})) == {"success": True}
    assert graph.ok(graph.get(set_id))["name"] == "New Name"
    reqs = graph.ok(graph.get(f"{set_id}/requests"))["data"]
    assert graph.ok(graph.delete(reqs[0]["id"])) == {"success": True}
    assert graph.ok(graph.get(reqs[0]["id"]))["status"] == "CANCELED"
    assert emu.async_step(1)[set_id]["success_count"] == 1  # the canceled one is skipped
    assert graph.ok(graph.delete(set_id)) == {"success": True}
    view = graph.ok(graph.get(set_id, fields="is_completed,success_count,canceled_count"))
    assert view == {"id": set_id, "is_completed": True, "success_count": 1, "canceled_count": 3}
    assert graph.ok(graph.delete(set_id)) == {"success": True}  # idempotent
    assert emu.counters()["objects_created"] == 1
    assert emu.counters()["calls_by_kind"]["delete"] == 3


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_notification_on_complete_and_update_after_sent(graph: Graph, emu: EmulatorAdmin) -> None:
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}/hook"
        set_id = graph.create_set(
            "act_5",
            [*camp_requests(2), {"name": "bad", "relative_url": "act_5/campaigns", "body": "name=x"}],
            notification_uri=uri,
            notification_mode="ON_COMPLETE",
        )
        graph.wait_set(set_id)
        wait_for(
            lambda: graph.ok(graph.get(set_id, fields="notification_status"))["notification_status"],
            lambda status: status == "sent",
            "the notification to be sent",
        )
        assert len(_Hook.received) == 1
        payload = _Hook.received[0]
        assert payload["id"] == set_id
        assert payload["is_completed"] is True
        assert (payload["success_count"], payload["error_count"], payload["total_count"]) == (2, 1, 3)
        notes = emu.notifications()
        assert notes == [
            {
                "uri": uri,
                "payload": payload,
                "status": "sent",
                "result": notes[0]["result"],
                "ms": notes[0]["ms"],
            }
        ]
        view = graph.ok(graph.get(set_id, fields="notification_result,notification_uri"))
        assert "200" in view["notification_result"]
        assert view["notification_uri"] == uri
        err = error_of(graph.post(set_id, {"notification_mode": "OFF"}))
        assert err["code"] == 100
        assert "notification" in err["message"]
        err = error_of(graph.post(set_id, {"notification_uri": uri + "2"}))
        assert err["code"] == 100
        assert graph.ok(graph.post(set_id, {"name": "renamed after"})) == {"success": True}
        # a set without notification never notifies
        quiet = graph.wait_set(
            graph.create_set("act_5", camp_requests(1), notification_mode="OFF", notification_uri=uri)
        )
        assert quiet["notification_status"] == "not_sent"  # decided when it completed, not later
        assert len(emu.notifications()) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_cancel_leaves_requests_in_progress_to_finish(graph: Graph, emu: EmulatorAdmin) -> None:
    """DELETE <set> cancels what has not started; what is in progress ends SUCCESS/ERROR, and the set
    completes when it does. ``async_hold_in_progress`` keeps started requests running meanwhile."""
    emu.config(async_pace=0, async_hold_in_progress=True)
    set_id = graph.create_set("act_5", camp_requests(300))
    assert emu.async_step(3)[set_id]["in_progress_count"] == 3
    assert graph.ok(graph.delete(set_id)) == {"success": True}
    reqs = graph.ok(graph.get(f"{set_id}/requests", fields="id,status", limit=500))["data"]
    started = [r["id"] for r in reqs if r["status"] == "IN_PROGRESS"]
    canceled = [r["id"] for r in reqs if r["status"] == "CANCELED"]
    assert started == [r["id"] for r in reqs[:3]]
    assert len(canceled) == 297
    assert graph.ok(graph.delete(started[0])) == {"success": True}  # a started request is not canceled
    view = graph.ok(graph.get(set_id, fields="is_completed,in_progress_count,canceled_count"))
    assert view == {
        "id": set_id,
        "is_completed": False,
        "in_progress_count": len(started),
        "canceled_count": len(canceled),
    }
    assert emu.objects("campaign") == []  # held: nothing ran yet
    emu.config(async_hold_in_progress=False)
    done = graph.wait_set(set_id)
    assert (done["success_count"], done["canceled_count"], done["error_count"]) == (
        len(started),
        len(canceled),
        0,
    )
    after = graph.ok(graph.get(f"{set_id}/requests", fields="id,status", limit=500))["data"]
    assert sorted(r["id"] for r in after if r["status"] == "SUCCESS") == sorted(started)
    assert len(emu.objects("campaign")) == len(started)
    listed = graph.ok(graph.get("act_5/asyncadrequestsets", is_completed="true"))["data"]
    assert [s["id"] for s in listed] == [set_id]
