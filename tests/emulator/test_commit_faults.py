"""Faults after commit (issue 12, point 8): the work is done and counted, the answer is a 500.

These are what the hook's exactly-once logic is tested against: each test checks both what the
client was told and what the emulator actually did (objects, counters, call log).
"""

from __future__ import annotations

import json
from typing import Any

import requests

from tests.emu_admin import EmulatorAdmin

from .conftest import Graph, error_of

CAMP = {"name": "c", "objective": "OUTCOME_SALES"}
CODE2_MESSAGE = "An unexpected error has occurred. Please retry your request later."


def _camp_entry(i: int, account: str = "act_1") -> dict[str, Any]:
    return {
        "method": "POST",
        "relative_url": f"{account}/campaigns",
        "body": f"name=c{i}&objective=OUTCOME_SALES",
    }


def _assert_code2(err: dict[str, Any]) -> None:
    assert set(err) == {"message", "type", "code", "is_transient", "fbtrace_id"}, err
    assert (err["message"], err["type"], err["code"], err["is_transient"]) == (
        CODE2_MESSAGE,
        "OAuthException",
        2,
        True,
    )
    assert err["fbtrace_id"]


def _entry_error(item: dict[str, Any]) -> dict[str, Any]:
    assert item["code"] == 500, item
    body = json.loads(item["body"])
    assert set(body) == {"error"}
    _assert_code2(body["error"])
    return body["error"]


# ------------------------------------------------------------------------------ error_after_commit


def test_error_after_commit_on_create_and_update(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.fault("error_after_commit", count=2, method="POST")
    assert graph.get("act_1/campaigns").status_code == 200  # a GET does not take a POST fault
    _assert_code2(error_of(graph.post("act_1/campaigns", CAMP), 500))
    (camp,) = emu.objects("campaign")
    assert camp["name"] == "c"  # created although the answer was an error
    _assert_code2(error_of(graph.post(camp["id"], {"name": "renamed"}), 500))
    assert emu.objects("campaign")[0]["name"] == "renamed"  # updated too
    assert graph.ok(graph.post("act_1/campaigns", CAMP))["id"]  # the queue is used up
    counters = emu.counters()
    assert counters["objects_created"] == 2
    assert counters["faults_injected"]["error_after_commit"] == 2
    calls = emu.calls()
    assert [c["fault"] for c in calls] == [None, "error_after_commit", "error_after_commit", None]
    assert [c["status"] for c in calls] == [200, 500, 500, 200]


def test_error_after_commit_on_batch_and_set_create(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.fault("error_after_commit", path_regex=r"^/$")
    _assert_code2(error_of(graph.batch([_camp_entry(i) for i in range(3)]), 500))
    assert len(emu.objects("campaign")) == 3  # every entry ran and committed
    assert emu.counters()["batch_entries"] == 3
    emu.fault("error_after_commit", path_regex="async_batch_requests")
    adbatch = [{"name": "r0", "relative_url": "act_5/campaigns", "body": "name=a&objective=OUTCOME_SALES"}]
    resp = graph.post("act_5/async_batch_requests", {"name": "lost answer", "adbatch": json.dumps(adbatch)})
    _assert_code2(error_of(resp, 500))
    (listed,) = graph.ok(graph.get("act_5/asyncadrequestsets", fields="id,name"))["data"]
    assert listed["name"] == "lost answer"  # the set exists and is processed
    assert graph.wait_set(listed["id"])["success_count"] == 1
    counters = emu.counters()
    assert counters["request_sets_created"] == 1
    assert counters["objects_created"] == 4
    assert counters["faults_injected"]["error_after_commit"] == 2
    assert [c["fault"] for c in emu.calls()[:2]] == ["error_after_commit"] * 2


def test_random_error_after_commit_hits_posts_only(graph: Graph, emu: EmulatorAdmin) -> None:
    camp = graph.create("act_1", "campaigns", **CAMP)
    emu.config(random_faults={"error_after_commit": 1.0, "seed": 1})
    assert graph.get("act_1/campaigns").status_code == 200
    assert graph.ok(graph.delete(camp)) == {"success": True}
    for _ in range(3):
        _assert_code2(error_of(graph.post("act_1/campaigns", CAMP), 500))
    assert len(emu.objects("campaign")) == 4
    assert emu.counters()["faults_injected"]["error_after_commit"] == 3


# ------------------------------------------------------------------------ entry_error_after_commit


def test_entry_error_after_commit_by_position(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.fault("entry_error_after_commit", entries=[0, 2])
    assert graph.post("act_1/campaigns", CAMP).status_code == 200  # not a batch: left queued
    out = graph.batch([_camp_entry(i) for i in range(4)]).json()
    for i in (0, 2):
        _entry_error(out[i])
    assert [out[i]["code"] for i in (1, 3)] == [200, 200]
    normal_headers = {h["name"] for h in out[1]["headers"]}
    assert {h["name"] for h in out[0]["headers"]} == normal_headers
    assert "X-Business-Use-Case-Usage" in normal_headers
    created = [o["name"] for o in emu.objects("campaign")]
    assert created == ["c", "c0", "c1", "c2", "c3"]  # replaced entries committed too
    assert json.loads(out[1]["body"])["id"] == emu.objects("campaign")[2]["id"]
    assert emu.counters()["faults_injected"]["entry_error_after_commit"] == 2
    assert [c["fault"] for c in emu.calls()] == [None, "entry_error_after_commit"]
    assert all(e["code"] == 200 for e in graph.batch([_camp_entry(9)]).json())  # used up


def test_entry_error_after_commit_by_regex_all_entries_and_count(graph: Graph, emu: EmulatorAdmin) -> None:
    camps = [graph.create("act_1", "campaigns", **CAMP) for _ in range(2)]
    emu.fault("entry_error_after_commit", entry_regex=r"^DELETE ")
    out = graph.batch(
        [
            {"method": "GET", "relative_url": camps[0]},
            {"method": "DELETE", "relative_url": camps[0]},
            _camp_entry(0),
        ]
    ).json()
    assert [e["code"] for e in out] == [200, 500, 200]
    _entry_error(out[1])
    assert emu.objects("campaign")[0]["status"] == "DELETED"
    emu.fault("entry_error_after_commit", count=2, entries=None, entry_regex=None)
    for _ in range(2):
        out = graph.batch([_camp_entry(1), {"method": "GET", "relative_url": camps[1]}]).json()
        for item in out:
            _entry_error(item)
    assert graph.batch([_camp_entry(2)]).json()[0]["code"] == 200
    assert emu.counters()["faults_injected"]["entry_error_after_commit"] == 5
    assert len(emu.objects("campaign")) == 6


def test_entry_error_after_commit_keeps_the_real_outcome_for_dependents(
    graph: Graph, emu: EmulatorAdmin
) -> None:
    """The entry committed; only its answer is lost: entries that reference it still run."""
    emu.fault("entry_error_after_commit", entries=[0])
    out = graph.batch(
        [
            {**_camp_entry(0, "act_2"), "name": "camp"},
            {
                "method": "POST",
                "relative_url": "act_2/adsets",
                "body": "name=s&campaign_id={result=camp:$.id}",
            },
        ]
    ).json()
    _entry_error(out[0])
    assert out[1]["code"] == 200
    (camp,) = emu.objects("campaign")
    assert emu.objects("adset")[0]["campaign_id"] == camp["id"]


def test_random_entry_error_after_commit_is_seeded_and_hits_writes_only(
    graph: Graph, emu: EmulatorAdmin
) -> None:
    camp = graph.create("act_1", "campaigns", **CAMP)
    reads = [{"method": "GET", "relative_url": camp} for _ in range(5)]

    def run(seed: int) -> list[int]:
        emu.config(random_faults={"entry_error_after_commit": 0.5, "seed": seed})
        codes = [e["code"] for e in graph.batch([_camp_entry(i) for i in range(20)] + reads).json()]
        assert codes[20:] == [200] * 5  # GET entries are never hit
        return codes[:20]

    first = run(42)
    assert set(first) == {200, 500}
    again = run(42)
    assert again == first  # the ordinals start again when random_faults is configured
    other = run(43)
    assert other != first
    injected = emu.counters()["faults_injected"]["entry_error_after_commit"]
    assert injected == first.count(500) + again.count(500) + other.count(500)
    emu.config(random_faults={"entry_error_after_commit": 1.0})
    out = graph.batch([{"method": "DELETE", "relative_url": camp}, *reads[:1]]).json()
    assert [e["code"] for e in out] == [500, 200]
    assert len(emu.objects("campaign")) == 1 + 3 * 20


def test_fault_spec_validation(emu: EmulatorAdmin) -> None:
    for body in (
        {"type": "entry_error_after_commit", "entries": [0, "1"]},
        {"type": "entry_error_after_commit", "entries": 2},
        {"type": "entry_error_after_commit", "entry_regex": "("},
        {"type": "500", "path_regex": "("},
    ):
        resp = requests.post(f"{emu.url}/__admin/faults", json=body, timeout=5)
        assert resp.status_code == 400, body
        message = resp.json()["error"]["message"]
        assert any(key in message for key in ("entries", "entry_regex", "path_regex")), message
    for cfg in (
        {"random_faults": {"error_after_commit": 0.6, "500": 0.6}},
        {"random_faults": {"entry_error_after_commit": 1.5}},
    ):
        assert requests.post(f"{emu.url}/__admin/config", json=cfg, timeout=5).status_code == 400
    ok = emu.config(random_faults={"500": 0.5, "error_after_commit": 0.5, "entry_error_after_commit": 1.0})
    assert ok["random_faults"]["entry_error_after_commit"] == 1.0


# ---------------------------------------------------------------------------------- token_rejected


def _assert_token_rejected(err: dict[str, Any], subcode: int | None = 463) -> None:
    assert (err["code"], err["type"], err["is_transient"]) == (190, "OAuthException", False), err
    assert err.get("error_subcode") == subcode, err
    assert "access token" in err["message"], err


def test_token_rejected_after_skipping_matching_calls_does_no_work(graph: Graph, emu: EmulatorAdmin) -> None:
    """The token is refused on the 3rd matching call and the next one, as when it expires midway."""
    emu.fault("token_rejected", count=2, method="POST", path_regex="/campaigns$", after=2)
    assert graph.get("act_1/campaigns").status_code == 200  # a GET does not match
    ids = [graph.ok(graph.post("act_1/campaigns", {**CAMP, "name": f"c{i}"}))["id"] for i in range(2)]
    for _ in range(2):
        _assert_token_rejected(error_of(graph.post("act_1/campaigns", CAMP), 400))
    assert [o["id"] for o in emu.objects("campaign")] == ids  # the rejected calls did nothing
    assert graph.ok(graph.post("act_1/campaigns", CAMP))["id"]  # the queue is used up
    assert emu._get("faults")["faults"] == []
    counters = emu.counters()
    assert counters["faults_injected"]["token_rejected"] == 2
    assert counters["objects_created"] == 3
    calls = emu.calls()
    assert [c["fault"] for c in calls] == [None, None, None, "token_rejected", "token_rejected", None]
    assert [c["status"] for c in calls] == [200, 200, 200, 400, 400, 200]


def test_token_rejected_on_a_batch_runs_none_of_its_entries(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.fault("token_rejected", subcode=None)
    err = error_of(graph.batch([_camp_entry(i) for i in range(3)]), 400)
    _assert_token_rejected(err, subcode=None)
    assert emu.objects("campaign") == []
    assert emu.counters()["batch_entries"] == 0
    listed = emu.fault("token_rejected", after=1)["faults"]
    assert [(f["type"], f["after"], f["subcode"]) for f in listed] == [("token_rejected", 1, 463)]


def test_token_rejected_spec_validation(emu: EmulatorAdmin) -> None:
    for body, key in (
        ({"type": "token_rejected", "after": -1}, "after"),
        ({"type": "token_rejected", "after": "2"}, "after"),
        ({"type": "token_rejected", "subcode": "463"}, "subcode"),
    ):
        resp = requests.post(f"{emu.url}/__admin/faults", json=body, timeout=5)
        assert resp.status_code == 400, body
        assert key in resp.json()["error"]["message"], resp.text
    assert emu._get("faults")["faults"] == []


def test_after_skips_matching_calls_for_any_fault_type(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.fault("error_after_commit", method="POST", after=1)
    assert graph.get("act_1/campaigns").status_code == 200  # not matching: not counted
    assert graph.ok(graph.post("act_1/campaigns", CAMP))["id"]  # skipped
    _assert_code2(error_of(graph.post("act_1/campaigns", CAMP), 500))
    assert graph.ok(graph.post("act_1/campaigns", CAMP))["id"]
    assert [c["fault"] for c in emu.calls()] == [None, None, "error_after_commit", None]
    assert len(emu.objects("campaign")) == 3
