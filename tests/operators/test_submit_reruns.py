"""SubmitAsyncBatchOperator exactly once across tries, renames and reruns (issue 12.5).

Against the emulator over HTTP. The operator keys its sets by task instance: a retry whose rendered
name changed, or whose sets were renamed, finds them again; a rerun after a cancel submits exactly
the canceled requests again, and its XCom lists every set that now holds the work.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_fb_async.exceptions import GraphAPIError
from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.hooks.request_set_plan import key_digest
from airflow_fb_async.operators.async_batch import (
    STATE_KEY,
    CancelAsyncRequestSetOperator,
    UpdateAsyncRequestSetOperator,
    task_instance_key,
)
from tests.operators.test_async_batch import ACCOUNT, StubStore, StubTI, chains, simple, submit
from tests.waits import wait_done


def context(run_id: str, store: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"ti": StubTI(run_id=run_id)}
    if store:
        out["task_state_store"] = StubStore()
    return out


def request_names(set_id: str) -> list[str]:
    return [r["input"]["name"] for r in GraphHook().list_requests(set_id, fields="id,input")]


def creates(emu: Any) -> int:
    return int(emu.counters()["calls_by_kind"].get("async_batch_create", 0))


@pytest.mark.parametrize("store", [True, False], ids=["state store", "no state store"])
def test_changed_name_between_tries_finds_the_sets(graph_conn: Any, store: bool) -> None:
    ctx = context("renamed-template", store)
    ids = submit(requests=simple(4), max_set_size=2, name="job, try 1").execute(ctx)
    again = submit(requests=simple(4), max_set_size=2, name="job, try 2").execute(ctx)
    assert again == ids
    assert graph_conn.counters()["request_sets_created"] == 2
    assert creates(graph_conn) == 2


def test_first_try_with_a_state_store_lists_nothing(graph_conn: Any) -> None:
    """No intent recorded in the store means nothing was ever created: no listing of the account."""
    ctx = context("fresh")
    ids = submit(requests=simple(4), max_set_size=2).execute(ctx)
    assert graph_conn.counters()["calls_by_kind"].get("get_edge", 0) == 0
    assert ctx["task_state_store"].data[STATE_KEY] == {"v": 2, "gens": [ids]}


def test_lost_answer_and_failed_lookup_are_settled_by_the_next_try(graph_conn: Any) -> None:
    ctx = context("lost")
    graph_conn.fault("error_after_commit", method="POST", path_regex="async_batch_requests")
    graph_conn.fault("500", count=6, method="GET", path_regex="asyncadrequestsets")  # 1 + max_retries
    with pytest.raises(GraphAPIError):
        submit(requests=simple(4), max_set_size=2, name="try 1").execute(ctx)
    assert ctx["task_state_store"].data[STATE_KEY] == {"v": 2, "gens": [[None, None]]}  # the intent
    ids = submit(requests=simple(4), max_set_size=2, name="try 2").execute(ctx)
    assert len(ids) == 2
    assert graph_conn.counters()["request_sets_created"] == 2
    assert creates(graph_conn) == 2  # part 1 found by its marker, part 2 created
    names = GraphHook().get_request_sets(ids, fields="name")
    assert names[ids[0]]["name"].startswith("try 1 [part 1/2 #")
    assert names[ids[1]]["name"].startswith("try 2 [part 2/2 #")


def test_an_intent_recorded_for_another_split_is_not_an_error(graph_conn: Any) -> None:
    """A try died after recording its intent (1 part, nothing created); the requests now make 2 parts."""
    ctx = context("intent")
    ctx["task_state_store"].data[STATE_KEY] = {"v": 2, "gens": [[None]]}
    ids = submit(requests=simple(4), max_set_size=2).execute(ctx)
    assert len(ids) == 2
    assert graph_conn.counters()["request_sets_created"] == 2
    assert ctx["task_state_store"].data[STATE_KEY] == {"v": 2, "gens": [ids]}


def test_rename_between_tries_never_duplicates(graph_conn: Any) -> None:
    ctx = context("renamed-by-hand")
    ids = submit(requests=simple(4), max_set_size=2).execute(ctx)
    for set_id in ids:  # a rename drops the key marker: the ids remembered by the task find them
        UpdateAsyncRequestSetOperator(task_id="u", request_set_id=set_id, name=f"mine now {set_id}").execute(
            {}
        )
    again = submit(requests=simple(4), max_set_size=2).execute(ctx)
    assert again == ids
    assert graph_conn.counters()["request_sets_created"] == 2
    assert len(graph_conn.objects("async_request")) == 4


@pytest.mark.parametrize("store", [True, False], ids=["state store", "no state store"])
def test_rerun_after_cancel_resubmits_exactly_the_canceled_requests(graph_conn: Any, store: bool) -> None:
    graph_conn.config(async_pace=0)  # nothing runs until the cancels are done
    ctx = context("cancel-rerun", store)
    requests = simple(6)
    first, second = submit(requests=requests, max_set_size=3).execute(ctx)
    r0 = next(
        r["id"] for r in GraphHook().list_requests(first, fields="id,input") if r["input"]["name"] == "r0"
    )
    CancelAsyncRequestSetOperator(task_id="c", object_ids=[second, r0]).execute({})
    graph_conn.config(async_pace=1000)
    wait_done(graph_conn, first, second)  # r1, r2 ran; r0 and the whole second set were canceled

    rerun = submit(requests=requests, max_set_size=3).execute(ctx)
    assert len(rerun) == 3
    assert rerun[0] == first  # still holds r1 and r2; the second set holds nothing any more
    assert not {first, second} & set(rerun[1:])
    assert [request_names(i) for i in rerun[1:]] == [["r0", "r3", "r4"], ["r5"]]
    digest = key_digest(ACCOUNT, f"{task_instance_key(ctx)}|resubmit 1")
    names = GraphHook().get_request_sets(rerun[1:], fields="name")
    assert [names[i]["name"] for i in rerun[1:]] == [
        f"job (resubmit 1) [part {k}/2 #{digest}]" for k in (1, 2)
    ]
    wait_done(graph_conn, *rerun[1:])
    campaigns = sorted(o["name"] for o in graph_conn.objects("campaign"))
    assert campaigns == [f"c{i}" for i in range(6)]  # every request ran exactly once

    sets_before = graph_conn.counters()["request_sets_created"]
    assert submit(requests=requests, max_set_size=3).execute(ctx) == rerun  # nothing left to do
    assert graph_conn.counters()["request_sets_created"] == sets_before == 4


def test_resubmitted_request_gets_the_result_it_referenced(graph_conn: Any) -> None:
    """The campaign ran, its ad set and ad were canceled: the ad set is sent again with the id written in."""
    creative = GraphHook().post(f"{ACCOUNT}/adcreatives", data={"name": "creative"})["id"]
    graph_conn.config(async_pace=0)
    ctx = context("cancel-chain")
    requests = chains(1, creative)
    (set_id,) = submit(requests=requests).execute(ctx)
    ids = {r["input"]["name"]: r["id"] for r in GraphHook().list_requests(set_id, fields="id,input")}
    CancelAsyncRequestSetOperator(task_id="c", object_ids=[ids["s0"], ids["a0"]]).execute({})
    graph_conn.config(async_pace=1000)
    wait_done(graph_conn, set_id)

    rerun = submit(requests=requests).execute(ctx)
    assert rerun[0] == set_id
    assert request_names(rerun[1]) == ["s0", "a0"]
    wait_done(graph_conn, rerun[1])
    [campaign] = graph_conn.objects("campaign")
    [adset] = graph_conn.objects("adset")
    [ad] = graph_conn.objects("ad")
    assert str(adset["campaign_id"]) == str(campaign["id"])
    assert str(ad["adset_id"]) == str(adset["id"])


@pytest.mark.parametrize("fault", ["error_after_commit", "drop_after_commit"])
def test_dag_retry_with_a_try_number_in_the_name_holds_one_set(
    graph_conn: Any, airflow_db: None, fault: str
) -> None:
    """Try 1: the create commits but its answer is lost, and the lookup that would find it fails,
    so the task fails. Try 2 renders another name ("try 2") and still finds try 1's set."""
    from tests.conftest import run_dag

    graph_conn.fault(fault, method="POST", path_regex="async_batch_requests")
    # 1 + max_retries (5) failing listings: the reconcile of try 1 gives up, try 2's listing works.
    graph_conn.fault("500", count=6, method="GET", path_regex="asyncadrequestsets")
    dag_run: Any = run_dag("test_submit_exactly_once")
    assert "success" in str(dag_run.state), dag_run.state
    assert dag_run.get_task_instance("submit").try_number == 2
    sets = graph_conn.objects("async_request_set")
    assert len(sets) == 1
    assert sets[0]["name"].startswith("exactly once, try 1 [#")
    assert creates(graph_conn) == 1
    assert len(graph_conn.objects("async_request")) == 3
    # the sensor waited on exactly that set: the submit's XCom held its id
    waits = [
        c for c in graph_conn.calls() if c["kind"] == "get_multi" and str(sets[0]["id"]) in str(c["query"])
    ]
    assert waits
