from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.conftest import TEST_TOKEN
from tests.emu_admin import EmulatorAdmin
from tests.waits import wait_for

from .conftest import Graph, error_of

CAMP = {"name": "c", "objective": "OUTCOME_SALES"}


def test_fault_500(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.fault("500", count=2)
    for _ in range(2):
        err = error_of(graph.post("act_1/campaigns", CAMP), 500)
        assert err["is_transient"] is True
    assert graph.post("act_1/campaigns", CAMP).status_code == 200
    counters = emu.counters()
    assert counters["faults_injected"]["500"] == 2
    assert counters["objects_created"] == 1
    assert [c["fault"] for c in emu.calls()] == ["500", "500", None]
    assert [c["status"] for c in emu.calls()] == [500, 500, 200]


def test_drop_before_and_drop_after_commit(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.fault("drop_before")
    with pytest.raises(requests.ConnectionError):
        graph.post("act_1/campaigns", CAMP)
    assert emu.counters()["objects_created"] == 0
    emu.fault("drop_after_commit")
    with pytest.raises(requests.ConnectionError):
        graph.post("act_1/campaigns", CAMP)
    assert emu.counters()["objects_created"] == 1  # the work was done, the answer lost
    counters = emu.counters()
    assert counters["faults_injected"]["drop"] == 2
    assert [c["fault"] for c in emu.calls()] == ["drop_before", "drop_after_commit"]
    assert graph.post("act_1/campaigns", CAMP).status_code == 200


def test_fault_matching_by_method_and_path(graph: Graph, emu: EmulatorAdmin) -> None:
    camp = graph.create("act_1", "campaigns", **CAMP)
    emu.fault("500", count=1, method="POST", path_regex=r"/adsets$")
    assert graph.get("act_1/adsets").status_code == 200  # GET: not matched
    assert graph.post(camp, {"name": "x"}).status_code == 200  # other path
    assert graph.post("act_1/adsets", {"name": "s", "campaign_id": camp}).status_code == 500
    assert graph.post("act_1/adsets", {"name": "s", "campaign_id": camp}).status_code == 200
    emu.fault("500", count=5)
    assert len(requests.get(f"{emu.url}/__admin/faults", timeout=5).json()["faults"]) == 1
    emu.clear_faults()
    assert graph.get("me").status_code == 200


def test_fault_throttle_blocks_the_account(graph: Graph, emu: EmulatorAdmin) -> None:
    # regain_unit_seconds stays 60: a 3-minute block that no slow machine can outrun; unthrottle ends it.
    emu.fault("throttle", regain_minutes=3, path_regex="act_3")
    resp = graph.get("act_3/campaigns")
    err = error_of(resp)
    assert err["code"] == 80004
    assert err["is_transient"] is False
    assert (
        json.loads(resp.headers["X-Business-Use-Case-Usage"])["3"][0]["estimated_time_to_regain_access"] == 3
    )
    assert error_of(graph.get("act_3"))["code"] == 80004  # blocked: the fault queue is empty now
    assert graph.get("act_4").status_code == 200
    assert emu.unthrottle("act_4") == []  # not blocked: nothing to end
    assert emu.unthrottle("act_3") == ["3"]
    assert graph.get("act_3").status_code == 200
    emu.config(throttle_code=613)
    emu.fault("throttle")
    assert error_of(graph.get("act_3"))["code"] == 613
    assert emu.counters()["faults_injected"]["throttle"] == 2
    assert emu.counters()["throttled_calls"] == 1  # the call made during the block


def test_fault_throttle_on_a_batch_blocks_every_account_it_names(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.fault("throttle", regain_minutes=2)
    entries = [{"method": "GET", "relative_url": a} for a in ("act_81/campaigns", "act_82", "act_81")]
    resp = graph.batch(entries)
    assert error_of(resp)["code"] == 80004
    assert set(json.loads(resp.headers["X-Business-Use-Case-Usage"])) == {"81", "82"}
    assert emu.counters()["batch_entries"] == 0  # answered by the fault: no entry ran
    assert [error_of(graph.get(a))["code"] for a in ("act_81", "act_82")] == [80004, 80004]
    assert graph.get("act_83").status_code == 200
    assert emu.unthrottle() == ["81", "82"]


def test_fault_empty_page_continues(emu: EmulatorAdmin, url_token: str) -> None:
    graph = Graph(emu.url, token=url_token)
    ids = [graph.create("act_1", "campaigns", **CAMP) for _ in range(3)]
    first = graph.ok(graph.get("act_1/campaigns", limit=2))
    emu.fault("empty_page")
    assert graph.post("act_1/campaigns", CAMP).status_code == 200  # not an edge read: not consumed
    empty = requests.get(first["paging"]["next"], timeout=5).json()
    assert empty["data"] == []
    assert empty["paging"]["next"]
    assert parse_qs(urlsplit(empty["paging"]["next"]).query)["after"] == [first["paging"]["cursors"]["after"]]
    rest = requests.get(empty["paging"]["next"], timeout=5).json()
    assert [c["id"] for c in rest["data"]] == [*ids[2:], emu.objects("campaign")[-1]["id"]]
    assert emu.counters()["faults_injected"]["empty_page"] == 1


def test_fault_code1_only_hits_batches(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.fault("code1")
    assert graph.get("me").status_code == 200
    err = error_of(graph.batch([{"method": "GET", "relative_url": "me"}]))
    assert err["code"] == 1
    assert graph.batch([{"method": "GET", "relative_url": "me"}]).status_code == 200
    assert emu.counters()["faults_injected"]["code1"] == 1


RANDOM_MIX = {"500": 0.2, "drop_after_commit": 0.1, "throttle": 0.1}


def _random_run(graph: Graph, emu: EmulatorAdmin, seed: int, admin_between: bool = False) -> list[Any]:
    """40 reads, each of its own ad account (a throttle blocks only the account it hit, so no later
    call of the run is throttled by it): the (fault, status) of every call, from the call log."""
    emu.reset()
    emu.config(random_faults={**RANDOM_MIX, "seed": seed}, regain_unit_seconds=0.001)
    statuses: list[int | None] = []
    for i in range(40):
        if admin_between:
            emu.counters()  # admin calls are not part of the call sequence
        try:
            statuses.append(graph.get(f"act_{900 + i}").status_code)
        except requests.ConnectionError:
            statuses.append(None)
    calls = emu.calls()
    assert [c["status"] for c in calls] == statuses
    return [(c["fault"], c["status"]) for c in calls]


def test_random_faults_are_seeded(graph: Graph, emu: EmulatorAdmin) -> None:
    first = _random_run(graph, emu, seed=42)
    assert _random_run(graph, emu, seed=42, admin_between=True) == first
    assert {f for f, _ in first} == {None, "500", "drop_after_commit", "throttle"}
    expected_status = {None: 200, "500": 500, "drop_after_commit": None, "throttle": 400}
    assert all(status == expected_status[f] for f, status in first)
    injected = emu.counters()["faults_injected"]
    assert injected["500"] + injected["drop"] + injected["throttle"] == sum(1 for f, _ in first if f)
    assert _random_run(graph, emu, seed=43) != first
    emu.config(random_faults=None)
    assert all(graph.get(f"act_{900 + i}").status_code == 200 for i in range(20))


def test_random_faults_depend_on_the_call_ordinal_only(graph: Graph, emu: EmulatorAdmin) -> None:
    """A queued fault takes its call, but the random faults of the calls after it do not move."""
    plain = [f for f, _ in _random_run(graph, emu, seed=7)]
    emu.reset()
    emu.config(random_faults={**RANDOM_MIX, "seed": 7}, regain_unit_seconds=0.001)
    for i in range(40):
        if i == 3:
            emu.fault("code1")  # only a batch takes it: call 3 is a batch
        try:
            if i == 3:
                graph.batch([{"method": "GET", "relative_url": "me"}])
            else:
                graph.get(f"act_{900 + i}")
        except requests.ConnectionError:
            pass
    with_queued = [c["fault"] for c in emu.calls()]
    assert with_queued[3] == "code1"
    assert with_queued[:3] + with_queued[4:] == plain[:3] + plain[4:]


def test_call_log_redacts_token_and_proof(emu: EmulatorAdmin, url_token: str) -> None:
    resp = requests.post(
        f"{emu.url}/v25.0/act_1/campaigns",
        timeout=5,
        data=CAMP,
        params={"access_token": url_token, "appsecret_proof": "abc123", "x": f"pre{url_token}"},
    )
    assert resp.status_code == 200
    calls = emu.calls()
    assert calls[0]["query"] == {
        "access_token": "REDACTED",
        "appsecret_proof": "REDACTED",
        "x": "preREDACTED",
    }
    assert set(calls[0]) >= {"seq", "method", "path", "query", "status", "kind", "fault", "ms", "batch_size"}
    assert calls[0]["path"] == "/v25.0/act_1/campaigns"
    assert calls[0]["kind"] == "create"
    assert url_token not in json.dumps(calls)
    assert "abc123" not in json.dumps(calls)


def test_latency_config_and_reset_restores_config(graph: Graph, emu: EmulatorAdmin) -> None:
    cfg = emu.config(latency=0.15, latency_jitter=0.05)
    assert cfg["latency"] == 0.15
    assert cfg["usage_budget"] == 100000
    started = time.monotonic()
    graph.get("me")
    assert time.monotonic() - started >= 0.15  # a lower bound only: sleeping is never shorter
    assert emu.calls()[-1]["ms"] >= 150
    # Admin calls are not delayed: under a ten-minute latency they still answer (within the
    # admin client's 30 s timeout), and nothing was queued behind a sleeping call.
    emu.config(latency=600)
    assert emu.counters()["http_calls"] == 1
    assert len(emu.calls()) == 1
    emu.reset()
    assert requests.get(f"{emu.url}/__admin/config", timeout=5).json()["latency"] == 0.0
    bad = requests.post(f"{emu.url}/__admin/config", json={"nonsense": 1}, timeout=5)
    assert bad.status_code == 400
    bad = requests.post(f"{emu.url}/__admin/faults", json={"type": "meteor"}, timeout=5)
    assert bad.status_code == 400


def test_reset_clears_everything(graph: Graph, emu: EmulatorAdmin) -> None:
    graph.create("act_1", "campaigns", **CAMP)
    emu.fault("500", count=3)
    emu.reset()
    assert emu.objects() == []
    counters = emu.counters()
    assert counters["http_calls"] == 0
    assert counters["objects_created"] == 0
    assert emu.calls() == []
    assert graph.get("me").status_code == 200  # the queued fault is gone


def _in_flight(emu: EmulatorAdmin, n: int, send: Callable[[], None]) -> list[threading.Thread]:
    """Start ``n`` threads calling ``send`` and wait until the emulator counts all of them: under a
    long latency they are then all in flight at once, whatever the thread scheduling was."""
    threads = [threading.Thread(target=send) for _ in range(n)]
    for t in threads:
        t.start()
    wait_for(emu.http_calls, lambda seen: seen == n, f"{n} calls in flight")
    return threads


def test_call_outliving_a_reset_does_not_touch_the_fresh_state(emu: EmulatorAdmin) -> None:
    """A slow create whose client gave up must not land in the world a later /__admin/reset made."""
    emu.config(latency=600)  # in flight until the reset wakes it
    outcome: list[str] = []

    def slow_create() -> None:
        try:
            requests.post(
                f"{emu.url}/v25.0/act_77/campaigns",
                data={"access_token": TEST_TOKEN, "name": "late", "objective": "OUTCOME_SALES"},
                timeout=60,
            )
            outcome.append("answered")
        except requests.ConnectionError:
            outcome.append("dropped")

    (slow,) = _in_flight(emu, 1, slow_create)
    emu.reset()
    slow.join()
    assert outcome == ["dropped"]
    assert emu.objects("campaign") == []
    assert emu.calls() == []
    assert emu.counters()["objects_created"] == 0


def test_max_concurrent_requests_counts_requests_in_flight(emu: EmulatorAdmin) -> None:
    emu.config(latency=600)

    outcome: list[str] = []

    def read() -> None:
        try:
            requests.get(f"{emu.url}/v25.0/me", headers={"Authorization": f"OAuth {TEST_TOKEN}"}, timeout=60)
            outcome.append("answered")
        except requests.ConnectionError:
            outcome.append("dropped")

    threads = _in_flight(emu, 4, read)
    assert emu.counters()["max_concurrent_requests"] == 4
    emu.reset()  # wakes and drops the four sleeping calls
    for t in threads:
        t.join()
    assert outcome == ["dropped"] * 4
    assert emu.counters()["max_concurrent_requests"] == 0
    assert emu.calls() == []


def test_short_batch_fault_runs_every_entry_but_answers_half(emu: EmulatorAdmin) -> None:
    emu.fault("short_batch", count=1)
    batch = [
        {"method": "POST", "relative_url": "act_8/campaigns", "body": f"name=h{i}&objective=OUTCOME_SALES"}
        for i in range(4)
    ]
    resp = requests.post(
        f"{emu.url}/v25.0/", data={"access_token": TEST_TOKEN, "batch": json.dumps(batch)}, timeout=10
    )
    assert resp.status_code == 200
    assert len(resp.json()) == 2
    assert len(emu.objects("campaign")) == 4
    assert emu.counters()["faults_injected"]["short_batch"] == 1
