from __future__ import annotations

import json
from typing import Any

import requests

from tests.conftest import TEST_TOKEN
from tests.emu_admin import EmulatorAdmin

from .conftest import Graph, error_of


def _bodies(resp: requests.Response) -> list[Any]:
    assert resp.status_code == 200, resp.text
    return [
        None if e is None else (e["code"], json.loads(e["body"]) if e["body"] else None) for e in resp.json()
    ]


def test_batch_shape_order_and_partial_failure(graph: Graph, emu: EmulatorAdmin) -> None:
    camp = graph.create("act_1", "campaigns", name="c", objective="OUTCOME_SALES")
    resp = graph.batch(
        [
            {"method": "GET", "relative_url": f"v25.0/{camp}?fields=name"},
            {"method": "POST", "relative_url": "act_1/campaigns", "body": "name=x"},
            {"method": "POST", "relative_url": "/act_1/campaigns", "body": "name=y&objective=OUTCOME_SALES"},
            {"method": "DELETE", "relative_url": camp},
            {"relative_url": "424242"},
        ]
    )
    raw = resp.json()
    assert all(set(e) == {"code", "headers", "body"} and isinstance(e["body"], str) for e in raw)
    names = {h["name"] for h in raw[0]["headers"]}
    assert {"ETag", "X-App-Usage", "X-Ad-Account-Usage", "X-Business-Use-Case-Usage"} <= names
    bodies = _bodies(resp)
    assert bodies[0] == (200, {"id": camp, "name": "c"})
    assert bodies[1][0] == 400
    assert bodies[1][1]["error"]["code"] == 100
    assert "objective" in bodies[1][1]["error"]["message"]
    assert bodies[2][0] == 200
    assert bodies[2][1]["id"].isdigit()
    assert bodies[3] == (200, {"success": True})
    assert bodies[4][0] == 400
    counters = emu.counters()
    assert counters["calls_by_kind"]["batch"] == 1
    assert counters["batch_entries"] == 5
    assert counters["objects_created"] == 2
    assert emu.calls()[-1]["batch_size"] == 5
    buc = json.loads(resp.headers["X-Business-Use-Case-Usage"])
    assert list(buc) == ["1"]


def test_include_headers_false_and_header_forms(graph: Graph) -> None:
    camp = graph.create("act_1", "campaigns", name="c", objective="OUTCOME_SALES")
    resp = graph.batch([{"method": "GET", "relative_url": camp}], include_headers="false")
    assert resp.json() == [
        {"code": 200, "body": json.dumps({"id": camp, "name": "c"}, separators=(",", ":"))}
    ]
    etag = next(
        h["value"]
        for h in graph.batch([{"method": "GET", "relative_url": camp}]).json()[0]["headers"]
        if h["name"] == "ETag"
    )
    resp = graph.batch(
        [
            {"method": "GET", "relative_url": camp, "headers": [f"If-None-Match: {etag}"]},
            {"method": "GET", "relative_url": camp, "headers": [{"name": "If-None-Match", "value": etag}]},
            {"method": "GET", "relative_url": camp, "headers": ['If-None-Match: "stale"']},
        ]
    )
    out = resp.json()
    assert [e["code"] for e in out] == [304, 304, 200]
    assert out[0]["body"] is None
    assert out[1]["body"] is None
    graph.ok(graph.post(camp, {"name": "changed"}))
    again = graph.batch(
        [{"method": "GET", "relative_url": camp, "headers": [f"If-None-Match: {etag}"]}]
    ).json()
    assert again[0]["code"] == 200
    assert json.loads(again[0]["body"])["name"] == "changed"


def test_batch_limits_and_malformed(graph: Graph, emu: EmulatorAdmin) -> None:
    err = error_of(graph.batch([{"method": "GET", "relative_url": "me"}] * 51))
    assert err["code"] == 100
    assert "50" in err["message"]
    assert graph.batch([{"method": "GET", "relative_url": "me"}] * 50).status_code == 200
    resp = requests.post(
        f"{emu.url}/", data={"access_token": TEST_TOKEN, "batch": "[{'method': 'GET',"}, timeout=5
    )
    assert error_of(resp)["code"] == 100
    resp = requests.post(f"{emu.url}/", data={"access_token": TEST_TOKEN, "batch": '{"a": 1}'}, timeout=5)
    assert error_of(resp)["code"] == 100
    resp = requests.post(
        f"{emu.url}/", data={"access_token": TEST_TOKEN, "batch": '[{"method": "GET"}]'}, timeout=5
    )
    assert error_of(resp)["code"] == 100
    # the top-level token is required even when entries carry one
    resp = requests.post(
        f"{emu.url}/v25.0/",
        timeout=5,
        data={"batch": json.dumps([{"method": "GET", "relative_url": f"me?access_token={TEST_TOKEN}"}])},
    )
    assert error_of(resp)["code"] == 190


def test_per_entry_access_token(graph: Graph) -> None:
    resp = graph.batch(
        [
            {"method": "GET", "relative_url": "me?access_token=bogus"},
            {
                "method": "POST",
                "relative_url": "act_1/campaigns",
                "body": "name=x&objective=OUTCOME_SALES&access_token=bad",
            },
            {"method": "GET", "relative_url": "me"},
        ]
    )
    bodies = _bodies(resp)
    assert bodies[0][0] == 400
    assert bodies[0][1]["error"]["code"] == 190
    assert bodies[1][0] == 400
    assert bodies[1][1]["error"]["code"] == 190
    assert bodies[2][0] == 200


def test_references_omit_and_dependencies(graph: Graph, emu: EmulatorAdmin) -> None:
    resp = graph.batch(
        [
            {
                "method": "POST",
                "name": "camp",
                "relative_url": "act_2/campaigns",
                "body": "name=c&objective=OUTCOME_SALES",
            },
            {
                "method": "POST",
                "name": "set",
                "relative_url": "act_2/adsets",
                "body": "name=s&campaign_id={result=camp:$.id}",
                "omit_response_on_success": False,
            },
            {"method": "GET", "relative_url": "{result=set:$.id}?fields=campaign_id"},
            {
                "method": "POST",
                "name": "bad",
                "relative_url": "act_2/campaigns",
                "body": "name=missing-objective",
            },
            {
                "method": "POST",
                "relative_url": "act_2/adsets",
                "body": "name=t&campaign_id={result=bad:$.id}",
            },
            {"method": "GET", "relative_url": "me", "depends_on": "bad"},
            {"method": "GET", "name": "lst", "relative_url": "act_2/campaigns"},
            {"method": "GET", "relative_url": "?ids={result=lst:$.data.*.id}&fields=name"},
            {"method": "GET", "relative_url": "{result=lst:$.data.0.id}?fields=objective"},
        ]
    )
    bodies = _bodies(resp)
    assert bodies[0] is None  # referenced: omitted on success by default
    assert bodies[1][0] == 200  # explicit omit_response_on_success=false keeps it
    camp_id = emu.objects("campaign")[0]["id"]
    assert bodies[2] == (200, {"id": bodies[1][1]["id"], "campaign_id": camp_id})
    assert bodies[3][0] == 400  # a referenced entry that failed is shown
    assert bodies[4][0] == 400
    assert "bad" in bodies[4][1]["error"]["message"]
    assert bodies[5][0] == 400
    assert bodies[6] is None
    assert bodies[7] == (200, {camp_id: {"id": camp_id, "name": "c"}})
    assert bodies[8] == (200, {"id": camp_id, "objective": "OUTCOME_SALES"})
    assert emu.counters()["objects_created_by_type"] == {"campaign": 1, "adset": 1}


def test_url_encoded_references_and_json_bodies(graph: Graph, emu: EmulatorAdmin) -> None:
    from urllib.parse import urlencode

    resp = graph.batch(
        [
            {
                "method": "POST",
                "name": "c",
                "relative_url": "act_2/campaigns",
                "body": {"name": "dict body", "objective": "OUTCOME_SALES"},
            },
            {
                "method": "POST",
                "relative_url": "act_2/adsets",
                "body": urlencode({"name": "enc", "campaign_id": "{result=c:$.id}", "targeting": {"a": 1}}),
            },
        ]
    )
    bodies = _bodies(resp)
    assert bodies[0] is None, bodies
    assert bodies[1][0] == 200, bodies
    assert emu.objects("adset")[0]["campaign_id"] == emu.objects("campaign")[0]["id"]


def test_attached_files(graph: Graph, emu: EmulatorAdmin) -> None:
    entries = [
        {"method": "POST", "name": "img", "relative_url": "act_3/adimages", "attached_files": "f1"},
        {
            "method": "POST",
            "relative_url": "act_3/adcreatives",
            "body": 'name=k&object_story_spec={"link_data": {"image_hash": "{result=img:$.images.*.hash}"}}',
        },
        {"method": "POST", "relative_url": "act_3/adimages", "attached_files": "f2,f3"},
        {"method": "POST", "relative_url": "act_3/adimages", "attached_files": "nope"},
    ]
    resp = requests.post(
        f"{emu.url}/",
        timeout=10,
        data={"access_token": TEST_TOKEN, "batch": json.dumps(entries)},
        files={"f1": ("one.png", b"111"), "f2": ("two.png", b"222"), "f3": ("three.png", b"333")},
    )
    bodies = _bodies(resp)
    assert bodies[0] is None
    assert bodies[1][0] == 200
    creative = emu.objects("adcreative")[0]
    import hashlib

    assert creative["object_story_spec"]["link_data"]["image_hash"] == hashlib.md5(b"111").hexdigest()
    assert sorted(bodies[2][1]["images"]) == ["three.png", "two.png"]
    assert bodies[3][0] == 400
    assert emu.counters()["objects_created_by_type"]["adimage"] == 3


def test_null_fraction_entries_are_not_executed(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(null_fraction=1.0)
    entries = [
        {"method": "POST", "relative_url": "act_1/campaigns", "body": f"name=c{i}&objective=OUTCOME_SALES"}
        for i in range(5)
    ]
    assert graph.batch(entries).json() == [None] * 5
    counters = emu.counters()
    assert counters["objects_created"] == 0
    assert counters["faults_injected"]["null"] == 5
    emu.config(null_fraction=0.5, random_faults={"seed": 7})
    out = graph.batch(entries * 4).json()
    nulls = sum(1 for e in out if e is None)
    assert 0 < nulls < 20
    assert emu.counters()["objects_created"] == 20 - nulls
    assert emu.counters()["faults_injected"]["null"] == 5 + nulls


def test_code1_above(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(code1_above=3)
    entries = [
        {"method": "POST", "relative_url": "act_1/campaigns", "body": f"name=c{i}&objective=OUTCOME_SALES"}
        for i in range(4)
    ]
    err = error_of(graph.batch(entries))
    assert err["code"] == 1
    assert "reduce the amount of data" in err["message"]
    assert emu.counters()["objects_created"] == 0
    assert graph.batch(entries[:3]).status_code == 200
    assert emu.counters()["objects_created"] == 3
    assert emu.counters()["faults_injected"]["code1"] == 1


def test_depends_on_a_list_of_names(graph: Graph, emu: EmulatorAdmin) -> None:
    """Every listed dependency must have succeeded; one failed one fails the entry as a single name does."""
    resp = graph.batch(
        [
            {"method": "POST", "name": "a", "relative_url": "act_3/campaigns", "body": "name=a&objective=X"},
            {"method": "POST", "name": "b", "relative_url": "act_3/campaigns", "body": "name=no-objective"},
            {"method": "GET", "name": "c", "relative_url": "me"},
            {"method": "GET", "relative_url": "act_3/campaigns", "depends_on": ["a", "c"]},
            {
                "method": "POST",
                "relative_url": "act_3/campaigns",
                "body": "name=d&objective=X",
                "depends_on": ["a", "b"],
            },
            {
                "method": "POST",
                "relative_url": "act_3/campaigns",
                "body": "name=e&objective=X",
                "depends_on": "b",
            },
            {"method": "GET", "relative_url": "me", "depends_on": ["a", "nobody"]},
            {"method": "GET", "relative_url": "me", "depends_on": []},
        ]
    )
    bodies = _bodies(resp)
    assert bodies[0] is None  # named in a depends_on list: omitted on success, like a single name
    assert bodies[1][0] == 400
    assert bodies[2] is None
    assert bodies[3][0] == 200
    assert [c["name"] for c in bodies[3][1]["data"]] == ["a"]
    listed_fail, single_fail = bodies[4], bodies[5]
    assert listed_fail[0] == single_fail[0] == 400
    for key in ("code", "type", "message"):
        assert listed_fail[1]["error"][key] == single_fail[1]["error"][key]
    assert "'b'" in listed_fail[1]["error"]["message"]
    assert bodies[6][0] == 400
    assert "nobody" in bodies[6][1]["error"]["message"]
    assert bodies[7][0] == 200
    assert [o["name"] for o in emu.objects("campaign")] == ["a"]  # d and e never ran


def test_depends_on_of_a_wrong_type_is_an_entry_error(graph: Graph, emu: EmulatorAdmin) -> None:
    bodies = _bodies(
        graph.batch(
            [
                {"method": "GET", "name": "a", "relative_url": "me"},
                {"method": "GET", "relative_url": "me", "depends_on": ["a", 3]},
                {"method": "GET", "relative_url": "me", "depends_on": {"a": 1}},
            ]
        )
    )
    for item in bodies[1:]:
        assert item[0] == 400
        assert item[1]["error"]["code"] == 100
        assert "depends_on" in item[1]["error"]["message"]
