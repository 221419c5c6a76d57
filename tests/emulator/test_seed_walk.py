"""Every curl example of the seed doc (shared/seed/graph-async-batch-requests.txt), rewritten to the
emulator URL with real ids, checking the documented response shapes.

Rewrites: ``<API_VERSION>`` -> ``v25.0``; ids the doc invents are objects created first; the doc's
mangled ``°rees_of_freedom_spec`` (an HTML-entity accident for ``&degrees_of_freedom_spec``) and its
``v6004251716039`` typo are fixed. ``-F`` becomes a multipart form, ``-d`` with ``-G`` a query.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from tests.conftest import TEST_TOKEN
from tests.emu_admin import EmulatorAdmin

from .conftest import Graph

V = "v25.0"


def _form(**fields: str) -> dict[str, tuple[None, str]]:
    """curl -F: multipart fields."""
    return {k: (None, v) for k, v in fields.items()}


def _batch(
    emu: EmulatorAdmin, entries: list[dict[str, Any]], files: dict[str, Any] | None = None
) -> list[Any]:
    resp = requests.post(
        f"{emu.url}/",
        files={**_form(access_token=TEST_TOKEN, batch=json.dumps(entries)), **(files or {})},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _body(entry: dict[str, Any]) -> Any:
    assert entry["code"] == 200, entry
    return json.loads(entry["body"])


def test_seed_curl_walk(graph: Graph, emu: EmulatorAdmin) -> None:
    g = graph  # GETs: token in the Authorization header (curl's -d access_token works too, see test_auth)
    # ---- objects the doc assumes
    acct = "act_187687683"
    camp = g.create(acct, "campaigns", name="seed", objective="OUTCOME_TRAFFIC")
    adset = g.create(acct, "adsets", name="seed set", campaign_id=camp)
    adset2 = g.create(acct, "adsets", name="seed set 2", campaign_id=camp)

    # ---- batch: adimage upload + creative referencing its hash + 3 ads referencing the creative
    opt_out = '{"creative_features_spec": {"standard_enhancements": {"enroll_status": "OPT_OUT"}}}'
    creative_body = (
        'name=sample creative&object_story_spec={"link_data": {"image_hash": '
        '"{result=create_adimage:$.images.*.hash}", "link": "https://www.test12345.com", '
        '"message": "this is a sample message"}, "page_id":"12345678"}'
        f"&degrees_of_freedom_spec={opt_out}"
    )
    ad_body = (
        "adset_id={adset}&redownload=1&status=PAUSED&optimization_goal=REACH&billing_event=IMPRESSIONS&&"
        'creative={{"creative_id":"{{result=create_creative:$.id}}"}}&targeting={{"countries":["US"]}}&name={name}'
    )
    entries = [
        {
            "method": "POST",
            "name": "create_adimage",
            "relative_url": f"{V}/{acct}/adimages",
            "attached_files": "test1",
        },
        {
            "method": "POST",
            "name": "create_creative",
            "relative_url": f"{V}/{acct}/adcreatives",
            "attached_files": "test1",
            "body": creative_body,
        },
        *[
            {
                "method": "POST",
                "relative_url": f"{V}/{acct}/ads",
                "body": ad_body.format(adset=adset, name=f"test{i}"),
            }
            for i in (1, 2, 3)
        ],
    ]
    out = _batch(emu, entries, files={"test1": ("test1.jpg", b"\xff\xd8\xff fake jpeg")})
    assert out[0] is None
    assert out[1] is None
    ads = [_body(e) for e in out[2:]]
    creative = emu.objects("adcreative")[0]
    image = emu.objects("adimage")[0]
    assert creative["object_story_spec"]["link_data"]["image_hash"] == image["hash"]
    assert creative["degrees_of_freedom_spec"]["creative_features_spec"]["standard_enhancements"]
    assert [a["name"] for a in ads] == ["test1", "test2", "test3"]  # redownload=1: full objects
    assert all(a["creative"] == {"creative_id": creative["id"]} and a["adset_id"] == adset for a in ads)
    ad_ids = [a["id"] for a in ads]

    # ---- batch: updates with redownload=1
    out = _batch(
        emu,
        [
            {"method": "POST", "relative_url": f"{V}/{ad_id}", "body": "redownload=1&name=new name"}
            for ad_id in ad_ids
        ],
    )
    assert [(_body(e)["id"], _body(e)["name"]) for e in out] == [(a, "new name") for a in ad_ids]

    # ---- batch: multi-id read, ad set ads (the doc's '&fields' typo), ads by ad set ids
    ad3 = g.create(acct, "ads", name="other", adset_id=adset2, creative={"creative_id": creative["id"]})
    out = _batch(
        emu,
        [
            {"method": "GET", "relative_url": f"{V}/?ids={ad_ids[0]},{ad_ids[1]}&fields=name,adset_id"},
            {"method": "GET", "relative_url": f"{V}/{adset}/ads&fields=name"},
            {"method": "GET", "relative_url": f"{V}/{acct}/ads?adset_ids=[{adset}, {adset2}]&fields=name"},
        ],
    )
    assert set(_body(out[0])) == {ad_ids[0], ad_ids[1]}
    assert [a["id"] for a in _body(out[1])["data"]] == ad_ids
    assert [a["id"] for a in _body(out[2])["data"]] == [*ad_ids, ad3]

    # ---- batch: insights with filtering (unquoted keys, single quotes)
    out = _batch(
        emu,
        [
            {
                "method": "GET",
                "relative_url": f"{V}/act_19643108/insights?filtering=[{{field:'ad.id',operator:'IN',"
                f"value:[{ad_ids[0]},{ad_ids[1]}]}}]",
            },
            {"method": "GET", "relative_url": f"{V}/{ad_ids[0]}/insights"},
            {
                "method": "GET",
                "relative_url": f"{V}/{acct}/insights?filtering=[{{field:'adset.id',operator:'IN',"
                f"value:[{adset}, {adset2}]}}]",
            },
        ],
    )
    assert [r["ad_id"] for r in _body(out[0])["data"]] == ad_ids[:2]
    assert _body(out[1])["data"][0]["ad_id"] == ad_ids[0]
    assert [r["adset_id"] for r in _body(out[2])["data"]] == [adset, adset2]

    # ---- batch: reach estimates
    out = _batch(
        emu,
        [
            {
                "method": "GET",
                "relative_url": f"{V}/act_600335/reachestimate?targeting_spec={{'geo_locations': "
                f"{{'countries':['{c}']}}}}",
            }
            for c in ("US", "FR")
        ],
    )
    assert all({"users_lower_bound", "users_upper_bound"} <= set(_body(e)["data"]) for e in out)

    # ---- async batch: the doc's adbatch (single quotes, trailing commas, URL-encoded bodies)
    adbatch = """[
{
'name': 'create-campaign',
'relative_url': 'act_123456/campaigns',
'body': 'name%3DTest+Campaign%26objective%3DLINK_CLICKS%26status%3DPAUSED%26buying_type%3DAUCTION',
},
{
'name': 'create-adset',
'relative_url': 'act_123456/adsets',
'body': 'targeting%3D%7B%22geo_locations%22%3A%7B%22countries%22%3A%5B%22US%22%5D%7D%7D%26daily_budget%3D5000%26campaign_id%3D%7Bresult%3Dcreate-campaign%3A%24.id%7D%26bid_amount%3D2%26name%3DFirst%2BAd%2BSet%20Test%26billing_event%3DLINK_CLICKS',
},
]"""
    resp = requests.post(
        f"{emu.url}/{V}/act_123456/async_batch_requests",
        timeout=10,
        files=_form(access_token=TEST_TOKEN, name="batchapiexample", adbatch=adbatch),
    )
    set_id = resp.json()["id"]
    assert set(resp.json()) == {"id"}
    g.wait_set(set_id)
    new_camp = emu.objects("campaign")[-1]
    new_adset = emu.objects("adset")[-1]
    assert new_camp["name"] == "Test Campaign"
    assert new_camp["objective"] == "LINK_CLICKS"
    assert new_adset["name"] == "First Ad Set Test"
    assert new_adset["campaign_id"] == new_camp["id"]
    assert new_adset["targeting"] == {"geo_locations": {"countries": ["US"]}}

    # curl -G -d 'fields=name,success_count,error_count,is_completed' <REQUEST_SET_ID>
    view = g.ok(g.get(set_id, fields="name,success_count,error_count,is_completed"))
    assert view == {
        "id": set_id,
        "name": "batchapiexample",
        "success_count": 2,
        "error_count": 0,
        "is_completed": True,
    }
    fields = "id,owner_id,name,total_count,success_count,error_count,is_completed"
    assert set(g.ok(g.get(set_id, fields=fields))) == set(fields.split(","))
    # curl -G -d 'fields=id,status' <REQUEST_SET_ID>/requests
    reqs = g.ok(g.get(f"{set_id}/requests", fields="id,status"))
    assert [set(r) for r in reqs["data"]] == [{"id", "status"}] * 2
    assert set(reqs["paging"]["cursors"]) == {"before", "after"}
    full = g.ok(
        g.get(f"{set_id}/requests", fields="id,scope_object_id,status,result,input,async_request_set")
    )
    assert full["data"][0]["result"] == {"id": new_camp["id"]}
    # curl -G act_<AD_ACCOUNT_ID>/asyncadrequestsets ; ?is_completed=1
    sets = g.ok(g.get("act_123456/asyncadrequestsets"))["data"]
    assert sets == [{"id": set_id, "owner_id": 123456, "name": "batchapiexample", "is_completed": True}]
    assert g.ok(g.get("act_123456/asyncadrequestsets", is_completed="1", pretty="true"))["data"] == sets
    # curl -G -d 'fields=id,status' <AD_SET_ID>/asyncadrequests ; -d status=SUCCESS,ERROR
    ad_set_batch = [
        {
            "name": f"ad{i}",
            "relative_url": f"{acct}/ads",
            "body": f'name=async ad {i}&adset_id={adset}&creative={{"creative_id":"{creative["id"]}"}}',
        }
        for i in range(2)
    ]
    ads_set = g.create_set(acct, ad_set_batch, name="ads")
    g.wait_set(ads_set)
    scoped = g.ok(g.get(f"{adset}/asyncadrequests", fields="id,status"))["data"]
    assert [r["status"] for r in scoped] == ["SUCCESS", "SUCCESS"]
    by_status = g.ok(g.get(f"{adset}/asyncadrequests", status="SUCCESS,ERROR", pretty="true"))["data"]
    assert [set(r) for r in by_status] == [{"id", "scope_object_id", "status"}] * 2
    assert {r["scope_object_id"] for r in by_status} == {int(adset)}
    # curl -G -d id=<SET> -d pretty=true /v25.0/
    assert g.ok(g.get("", id=set_id, pretty="true")) == sets[0]
    # curl -G -d id=<SET> -d fields=result /v25.0/requests
    via_root = g.ok(g.get("requests", id=set_id, pretty="true", fields="result"))
    assert [set(r) for r in via_root["data"]] == [{"id", "result"}] * 2
    assert via_root["data"][1]["result"] == {"id": new_adset["id"]}
    # curl -G act_<AD_ACCOUNT_ID>/async_requests
    assert len(g.ok(g.get("act_123456/async_requests"))["data"]) == 2
    # curl -F 'name=New Name' -F 'notification_mode=OFF' <REQUEST_SET_ID>  -> true
    resp = requests.post(
        f"{emu.url}/{V}/{set_id}",
        timeout=5,
        files=_form(name="New Name", notification_mode="OFF", access_token=TEST_TOKEN),
    )
    assert resp.json() == {"success": True}
    assert g.ok(g.get(set_id, fields="name,notification_mode")) == {
        "id": set_id,
        "name": "New Name",
        "notification_mode": "OFF",
    }

    # ---- cancellation: curl -X DELETE -d access_token <REQUEST_ID> / <REQUEST_SET_ID>
    emu.config(async_pace=0)
    slow = g.create_set(
        "act_123456",
        [
            {"name": f"c{i}", "relative_url": "act_123456/campaigns", "body": "name=x&objective=LINK_CLICKS"}
            for i in range(3)
        ],
    )
    first_req = g.ok(g.get(f"{slow}/requests"))["data"][0]["id"]
    resp = requests.delete(f"{emu.url}/{V}/{first_req}", data={"access_token": TEST_TOKEN}, timeout=5)
    assert resp.json() == {"success": True}
    resp = requests.delete(f"{emu.url}/{V}/{slow}", data={"access_token": TEST_TOKEN}, timeout=5)
    assert resp.json() == {"success": True}
    assert g.ok(g.get(slow, fields="canceled_count,is_completed")) == {
        "id": slow,
        "canceled_count": 3,
        "is_completed": True,
    }

    # ---- ETag: GET me/adaccounts, then If-None-Match -> 304, Content-Length 0
    first = g.get("me/adaccounts")
    etag = first.headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    again = g.get("me/adaccounts", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["Content-Length"] == "0"

    # ---- ETag in a batch: ids + ads by campaign_ids, then the same with If-None-Match headers
    urls = [f"?ids={ad_ids[0]},{ad_ids[1]}", f"{acct}/ads?campaign_ids=[{camp}, 6004164259439]"]
    out = _batch(emu, [{"method": "GET", "relative_url": u} for u in urls])
    etags = [next(h["value"] for h in e["headers"] if h["name"] == "ETag") for e in out]
    assert set(_body(out[0])) == {ad_ids[0], ad_ids[1]}
    assert [a["id"] for a in _body(out[1])["data"]] == [
        o["id"] for o in emu.objects("ad") if o["campaign_id"] == camp
    ]
    out = _batch(
        emu,
        [
            {"method": "GET", "headers": [f"If-None-Match: {t}"], "relative_url": u}
            for t, u in zip(etags, urls, strict=True)
        ],
    )
    assert [(e["code"], e["body"]) for e in out] == [(304, None), (304, None)]
