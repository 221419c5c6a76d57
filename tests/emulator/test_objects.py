from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import requests

from tests.emu_admin import EmulatorAdmin

from .conftest import Graph, error_of


def test_create_read_objects_and_counters(graph: Graph, emu: EmulatorAdmin) -> None:
    ids = graph.tree("act_42")
    assert len(set(ids.values())) == 4
    assert all(v.isdigit() for v in ids.values())
    ad = graph.ok(graph.get(ids["ad"], fields="name,adset_id,campaign_id,creative,status,account_id"))
    assert ad == {
        "id": ids["ad"],
        "name": "A",
        "adset_id": ids["adset"],
        "campaign_id": ids["campaign"],
        "creative": {"creative_id": ids["creative"]},
        "status": "PAUSED",
        "account_id": "42",
    }
    assert graph.ok(graph.get(ids["campaign"])) == {"id": ids["campaign"], "name": "C"}
    counters = emu.counters()
    assert counters["objects_created"] == 4
    assert counters["objects_created_by_type"] == {"campaign": 1, "adset": 1, "adcreative": 1, "ad": 1}
    assert counters["calls_by_kind"]["create"] == 4
    assert counters["calls_by_kind"]["get_object"] == 2
    assert [o["name"] for o in emu.objects("adset")] == ["S"]
    assert {o["type"] for o in emu.objects()} == {"campaign", "adset", "adcreative", "ad"}
    acct = graph.ok(graph.get("act_42", fields="id,account_id,currency"))
    assert acct == {"id": "act_42", "account_id": "42", "currency": "USD"}
    assert graph.ok(graph.get("me"))["id"].isdigit()


def test_required_fields_and_references_are_validated(graph: Graph, emu: EmulatorAdmin) -> None:
    cases = [
        ("campaigns", {"objective": "OUTCOME_SALES"}, "name"),
        ("campaigns", {"name": "x"}, "objective"),
        ("adsets", {"name": "x"}, "campaign_id"),
        ("adcreatives", {"title": "x"}, "name"),
        ("ads", {"name": "x", "creative": "{}"}, "adset_id"),
    ]
    for edge, data, field in cases:
        err = error_of(graph.post(f"act_1/{edge}", data))
        assert err["code"] == 100
        assert field in err["message"], err
        assert field in err["error_user_title"], err
        assert field in err["error_user_msg"]
    err = error_of(graph.post("act_1/adsets", {"name": "x", "campaign_id": "999"}))
    assert err["code"] == 100
    assert "campaign_id" in err["error_user_title"]
    camp = graph.create("act_1", "campaigns", name="c", objective="OUTCOME_SALES")
    adset = graph.create("act_1", "adsets", name="s", campaign_id=camp)
    err = error_of(
        graph.post("act_1/ads", {"name": "a", "adset_id": adset, "creative": '{"creative_id": "777"}'})
    )
    assert err["code"] == 100
    assert "creative" in err["error_user_title"]
    err = error_of(graph.post("act_1/ads", {"name": "a", "adset_id": adset, "creative": '{"creative_id": '}))
    assert err["code"] == 100
    err = error_of(graph.post("act_1/adsets", {"name": "s", "campaign_id": camp, "daily_budget": "lots"}))
    assert "daily_budget" in err["message"]
    assert emu.counters()["objects_created"] == 2


def test_edges_and_cursor_pagination(emu: EmulatorAdmin, url_token: str) -> None:
    graph = Graph(emu.url, token=url_token)
    camp = graph.create("act_7", "campaigns", name="c", objective="OUTCOME_SALES")
    other = graph.create("act_7", "campaigns", name="c2", objective="OUTCOME_SALES")
    adsets = [graph.create("act_7", "adsets", name=f"s{i}", campaign_id=camp) for i in range(7)]
    graph.create("act_7", "adsets", name="elsewhere", campaign_id=other)
    graph.create("act_8", "campaigns", name="other account", objective="OUTCOME_SALES")

    seen: list[str] = []
    page = graph.ok(graph.get(f"{camp}/adsets", limit=3, fields="name,campaign_id"))
    pages = 1
    while True:
        assert all(item["campaign_id"] == camp for item in page["data"])
        seen += [item["id"] for item in page["data"]]
        nxt = page.get("paging", {}).get("next")
        if not nxt:
            break
        assert nxt.startswith(emu.url + "/v25.0/")
        query = parse_qs(urlsplit(nxt).query)
        assert query["access_token"] == [url_token]  # like Graph: next links carry the token
        assert query["limit"] == ["3"]
        page = requests.get(nxt, timeout=5).json()
        pages += 1
    assert seen == adsets
    assert pages == 3
    names = [c["name"] for c in graph.ok(graph.get("act_7/campaigns"))["data"]]
    assert names == ["c", "c2"]
    assert len(graph.ok(graph.get("act_7/adsets", limit=100))["data"]) == 8
    # previous links go back
    first = graph.ok(graph.get(f"{camp}/adsets", limit=3))
    second = requests.get(first["paging"]["next"], timeout=5).json()
    back = requests.get(second["paging"]["previous"], timeout=5).json()
    assert [x["id"] for x in back["data"]] == adsets[:3]
    assert emu.counters()["calls_by_kind"]["get_edge"] >= 8


def test_limit_is_clamped_to_max_page_size(emu: EmulatorAdmin, url_token: str) -> None:
    graph = Graph(emu.url, token=url_token)
    emu.config(max_page_size=4)
    for i in range(6):
        graph.create("act_1", "campaigns", name=f"c{i}", objective="OUTCOME_SALES")
    page = graph.ok(graph.get("act_1/campaigns", limit=1000))
    assert len(page["data"]) == 4
    assert parse_qs(urlsplit(page["paging"]["next"]).query)["limit"] == ["4"]
    assert graph.ok(graph.get("act_1/campaigns", limit=1000, summary="true"))["summary"] == {"total_count": 6}


def test_ads_filtered_by_adset_ids_and_adset_ads_edge(graph: Graph) -> None:
    t1 = graph.tree("act_3")
    adset2 = graph.create("act_3", "adsets", name="S2", campaign_id=t1["campaign"])
    ad2 = graph.create("act_3", "ads", name="A2", adset_id=adset2, creative={"creative_id": t1["creative"]})
    got = graph.ok(graph.get("act_3/ads", adset_ids=f"[{adset2}]", fields="name"))["data"]
    assert got == [{"id": ad2, "name": "A2"}]
    both = graph.ok(graph.get("act_3/ads", adset_ids=json.dumps([t1["adset"], adset2])))["data"]
    assert [a["id"] for a in both] == [t1["ad"], ad2]
    assert [a["id"] for a in graph.ok(graph.get(f"{t1['adset']}/ads"))["data"]] == [t1["ad"]]
    assert [a["id"] for a in graph.ok(graph.get(f"{t1['campaign']}/ads"))["data"]] == [t1["ad"], ad2]


def test_update_redownload_and_delete(graph: Graph, emu: EmulatorAdmin) -> None:
    camp = graph.create("act_1", "campaigns", name="c", objective="OUTCOME_SALES")
    assert graph.ok(graph.post(camp, {"name": "renamed"})) == {"success": True}
    assert graph.ok(graph.get(camp, fields="name"))["name"] == "renamed"
    full = graph.ok(graph.post(camp, {"status": "ACTIVE", "redownload": "1"}))
    assert full["success"] is True
    assert full["id"] == camp
    assert full["status"] == "ACTIVE"
    assert full["name"] == "renamed"
    err = error_of(graph.post(camp, {"status": "SLEEPING"}))
    assert err["code"] == 100
    assert graph.ok(graph.delete(camp)) == {"success": True}
    assert graph.ok(graph.get(camp, fields="status"))["status"] == "DELETED"
    assert graph.ok(graph.get("act_1/campaigns"))["data"] == []
    assert len(graph.ok(graph.get("act_1/campaigns", effective_status='["DELETED"]'))["data"]) == 1
    counters = emu.counters()["calls_by_kind"]
    assert (counters["update"], counters["delete"]) == (3, 1)


def test_multi_id_read(graph: Graph, emu: EmulatorAdmin) -> None:
    t = graph.tree("act_1")
    set_id = graph.create_set(
        "act_1", [{"name": "r", "relative_url": "act_1/campaigns", "body": "name=x&objective=OUTCOME_SALES"}]
    )
    ids = [t["campaign"], t["ad"], set_id, "act_1"]
    got = graph.ok(graph.get("", ids=",".join(ids), fields="id,name"))
    assert list(got) == ids
    assert got[t["ad"]] == {"id": t["ad"], "name": "A"}
    assert got[set_id] == {"id": set_id, "name": "set"}
    assert graph.ok(graph.get("", id=t["adset"], fields="name")) == {"id": t["adset"], "name": "S"}
    err = error_of(graph.get("", ids=f"{t['ad']},123456"))
    assert err["code"] == 803
    assert "123456" in err["message"]
    err = error_of(graph.get("", ids=",".join([t["ad"]] * 51)))
    assert err["code"] == 100
    assert emu.counters()["calls_by_kind"]["get_multi"] == 3


def test_adimages_multipart_and_bytes(graph: Graph, emu: EmulatorAdmin) -> None:
    data = bytes(range(256)) * 3 + b"\r\n\r\n--x\r\n"
    resp = graph.post("act_9/adimages", files={"file1": ("pic.jpg", data, "image/jpeg")})
    images = graph.ok(resp)["images"]
    assert list(images) == ["pic.jpg"]
    assert images["pic.jpg"]["hash"] == hashlib.md5(data).hexdigest()
    assert images["pic.jpg"]["url"].startswith("https://")
    b64 = base64.b64encode(b"other image").decode()
    img2 = graph.ok(graph.post("act_9/adimages", {"bytes": b64}))["images"]["bytes"]
    assert img2["hash"] == hashlib.md5(b"other image").hexdigest()
    listed = graph.ok(graph.get("act_9/adimages", fields="hash,name"))["data"]
    assert [i["hash"] for i in listed] == [images["pic.jpg"]["hash"], img2["hash"]]
    err = error_of(graph.post("act_9/adimages", {"bytes": "%%%not base64"}))
    assert err["code"] == 100
    err = error_of(graph.post("act_9/adimages", {"name": "nothing"}))
    assert err["code"] == 100
    assert emu.counters()["calls_by_kind"]["upload"] == 4
    assert emu.counters()["objects_created_by_type"] == {"adimage": 2}


def test_insights_and_reach_estimate_shapes(graph: Graph) -> None:
    t = graph.tree("act_19643108")
    rows = graph.ok(graph.get(f"{t['ad']}/insights"))["data"]
    assert len(rows) == 1
    assert rows[0]["ad_id"] == t["ad"]
    assert {"impressions", "clicks", "spend", "date_start", "date_stop", "account_id"} <= set(rows[0])
    filtered = graph.ok(
        graph.get(
            "act_19643108/insights", filtering=f"[{{field:'ad.id',operator:'IN',value:[{t['ad']},123]}}]"
        )
    )["data"]
    assert [r["ad_id"] for r in filtered] == [t["ad"], "123"]
    by_level = graph.ok(graph.get("act_19643108/insights", level="campaign"))["data"]
    assert [r["campaign_id"] for r in by_level] == [t["campaign"]]
    err = error_of(graph.get("act_19643108/insights", filtering="[{field:"))
    assert err["code"] == 100
    est = graph.ok(
        graph.get("act_600335/reachestimate", targeting_spec="{'geo_locations': {'countries':['US']}}")
    )
    assert est["data"]["users_lower_bound"] < est["data"]["users_upper_bound"]
    assert est["data"]["estimate_ready"] is True
    assert error_of(graph.get("act_600335/reachestimate", targeting_spec="{'geo'"))["code"] == 100


def test_unknown_paths_and_malformed_input_are_graph_errors(graph: Graph, emu: EmulatorAdmin) -> None:
    camp = graph.create("act_1", "campaigns", name="c", objective="OUTCOME_SALES")
    assert error_of(graph.get("424242"))["code"] == 100
    assert error_of(graph.get("424242"))["error_subcode"] == 33
    assert error_of(graph.get(f"{camp}/nonsense"))["code"] == 100
    assert error_of(graph.get("act_1/frobnicate"))["code"] == 100
    assert error_of(graph.get("a/b/c/d"))["code"] in (100, 2500)
    assert (
        error_of(graph.post("act_1/adsets", {"name": "s", "campaign_id": camp, "targeting": "{bad"}))["code"]
        == 100
    )
    assert error_of(graph.get("act_1/campaigns", after="!!notacursor"))["code"] == 100
    assert error_of(graph.get("act_1/campaigns", limit="ten"))["code"] == 100
    resp = graph.session.post(
        graph.u("act_1/campaigns"), data=b"{not json", timeout=5, headers={"Content-Type": "application/json"}
    )
    assert error_of(resp)["code"] == 100
    resp = graph.session.post(
        graph.u("act_1/adimages"),
        data=b"garbage",
        timeout=5,
        headers={"Content-Type": "multipart/form-data; boundary=zzz"},
    )
    assert error_of(resp)["code"] == 100
    assert error_of(graph.batch([]))["code"] == 100
    assert error_of(graph.get("", ids="[1,"))["code"] == 100
    assert emu.counters()["http_calls"] == 13
