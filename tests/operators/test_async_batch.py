"""SubmitAsyncBatchOperator, UpdateAsyncRequestSetOperator, CancelAsyncRequestSetOperator.

Against the emulator over HTTP (no mocked transport). ``op.execute(context)`` gets a small context
stub: the operators read only ``ti`` (dag_id, task_id, run_id, map_index, xcom_push) and, when
present, ``task_state_store``.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_fb_async.exceptions import (
    AsyncRequestSetError,
    FacebookGraphError,
    GraphAPIError,
    GraphInputError,
)
from airflow_fb_async.hooks.request_set_plan import key_digest
from airflow_fb_async.operators.async_batch import (
    CancelAsyncRequestSetOperator,
    SubmitAsyncBatchOperator,
    UpdateAsyncRequestSetOperator,
    task_instance_key,
)
from tests.operators.test_batch_retries import xcom
from tests.waits import paused_until_read, wait_done, wait_for

ACCOUNT = "act_4242"


@dataclass
class StubTI:
    dag_id: str = "dag"
    task_id: str = "submit"
    run_id: str = "manual__1"
    map_index: int = -1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


class StubStore:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value


def ctx(**ti: Any) -> Any:
    return {"ti": StubTI(**ti)}


def chains(n: int, creative_id: str = "1", account: str = ACCOUNT) -> list[dict[str, Any]]:
    """n chains campaign -> adset -> ad linked by {result=...} references (the ad body as a string)."""
    creative = urllib.parse.quote(json.dumps({"creative_id": creative_id}), safe="")
    out: list[dict[str, Any]] = []
    for k in range(n):
        out += [
            {
                "name": f"c{k}",
                "relative_url": f"{account}/campaigns",
                "body": {
                    "name": f"campaign {k}",
                    "objective": "OUTCOME_SALES",
                    "status": "PAUSED",
                    "special_ad_categories": [],
                },
            },
            {
                "name": f"s{k}",
                "relative_url": f"{account}/adsets",
                "body": {
                    "name": f"adset {k}",
                    "campaign_id": f"{{result=c{k}:$.id}}",
                    "daily_budget": 1000,
                    "targeting": {"geo_locations": {"countries": ["US"]}},
                    "status": "PAUSED",
                },
            },
            {
                "name": f"a{k}",
                "relative_url": f"{account}/ads",
                "body": f"name=ad+{k}&adset_id={{result=s{k}:$.id}}&creative={creative}&status=PAUSED",
            },
        ]
    return out


def simple(n: int, account: str = ACCOUNT) -> list[dict[str, Any]]:
    return [
        {
            "name": f"r{i}",
            "relative_url": f"{account}/campaigns",
            "body": {"name": f"c{i}", "objective": "OUTCOME_TRAFFIC"},
        }
        for i in range(n)
    ]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Any:
    """Everything logged so far: stdlib logging (caplog) and Airflow's structlog task logger output."""
    caplog.set_level(logging.INFO)
    seen: list[str] = []

    def read() -> str:
        out, err = capfd.readouterr()
        seen.append(out + err)
        return caplog.text + "".join(seen)

    return read


def submit(**kwargs: Any) -> SubmitAsyncBatchOperator:
    base: dict[str, Any] = {
        "task_id": "submit",
        "ad_account_id": ACCOUNT,
        "requests": simple(3),
        "name": "job",
        "poll_interval": 0.1,
        "deferrable": False,
    }
    base.update(kwargs)
    return SubmitAsyncBatchOperator(**base)


def hook() -> Any:
    from airflow_fb_async.hooks.graph import GraphHook

    return GraphHook()


# ------------------------------------------------------------------------------------------------
# naming
# ------------------------------------------------------------------------------------------------


def test_task_instance_key_is_stable_and_distinct() -> None:
    a = task_instance_key(ctx())
    assert a == task_instance_key(ctx())
    assert len(a) == 10
    others = {
        task_instance_key(ctx(map_index=0)),
        task_instance_key(ctx(run_id="r2")),
        task_instance_key(ctx(task_id="t2")),
        task_instance_key(ctx(dag_id="d2")),
    }
    assert a not in others
    assert len(others) == 4


def test_template_fields() -> None:
    assert set(SubmitAsyncBatchOperator.template_fields) >= {
        "ad_account_id",
        "requests",
        "name",
        "notification_uri",
        "notification_mode",
        "graph_conn_id",
        "api_version",
    }
    assert isinstance(SubmitAsyncBatchOperator.template_fields, tuple)
    assert "object_ids" in CancelAsyncRequestSetOperator.template_fields
    assert "request_set_id" in UpdateAsyncRequestSetOperator.template_fields


# ------------------------------------------------------------------------------------------------
# submit
# ------------------------------------------------------------------------------------------------


def test_submit_returns_ids_names_sets_and_logs_sizes(graph_conn: Any, logs: Any) -> None:
    context = ctx()
    op = submit(requests=simple(5), max_set_size=2)
    ids = op.execute(context)
    text = logs()
    assert isinstance(ids, list)
    assert len(ids) == 3
    assert context["ti"].xcoms == {}  # no wait: no summary
    digest = key_digest(ACCOUNT, task_instance_key(context))
    sets = hook().get_request_sets(ids, fields="id,name,total_count")
    assert [sets[i]["name"] for i in ids] == [f"job [part {k}/3 #{digest}]" for k in (1, 2, 3)]
    assert [int(sets[i]["total_count"]) for i in ids] == [2, 2, 1]
    for set_id, size in zip(ids, [2, 2, 1], strict=True):
        assert f"Request set {set_id}" in text
        assert f"{size} request(s), created" in text


def test_thirty_requests_with_references_complete_with_correct_ids(graph_conn: Any) -> None:
    creative = hook().post(f"{ACCOUNT}/adcreatives", data={"name": "creative"})["id"]
    op = submit(requests=chains(10, creative), wait_for_completion=True, name="chains")
    context = ctx()
    (set_id,) = op.execute(context)
    assert list(context["ti"].xcoms) == ["request_set_ids", "summary"]
    assert context["ti"].xcoms["request_set_ids"] == [set_id]
    summary = context["ti"].xcoms["summary"]
    assert list(summary) == [set_id]
    assert summary[set_id] == {"total_count": 30, "success_count": 30, "error_count": 0, "canceled_count": 0}
    results = list(hook().paginate(f"{set_id}/requests", params={"fields": "id,status,result"}))
    assert len(results) == 30
    assert all(r["status"].upper() == "SUCCESS" for r in results)
    result_ids = {r["result"]["id"] for r in results}
    campaigns = {o["id"]: o for o in graph_conn.objects("campaign")}
    adsets = {o["id"]: o for o in graph_conn.objects("adset")}
    ads = {o["id"]: o for o in graph_conn.objects("ad")}
    assert (len(campaigns), len(adsets), len(ads)) == (10, 10, 10)
    assert result_ids == set(campaigns) | set(adsets) | set(ads)
    for ad in ads.values():  # every chain resolved to ids created in the same chain
        adset = adsets[str(ad["adset_id"])]
        campaign = campaigns[str(adset["campaign_id"])]
        assert ad["name"].split()[-1] == adset["name"].split()[-1] == campaign["name"].split()[-1]


def test_dropped_create_then_retry_holds_one_set_per_part(graph_conn: Any) -> None:
    context = ctx(run_id="retry-run")
    requests = simple(5)
    # Try 1: part 1's create is committed but its answer is lost (reconciled by name in the same try);
    # part 2's create then keeps failing with 5xx until the hook gives up: the task fails.
    graph_conn.fault("drop_after_commit", method="POST", path_regex="async_batch_requests")
    graph_conn.fault("500", count=20, method="POST", path_regex="async_batch_requests")
    with pytest.raises(FacebookGraphError):
        submit(requests=requests, max_set_size=3).execute(context)
    graph_conn.clear_faults()
    assert graph_conn.counters()["request_sets_created"] == 1
    # Try 2, as Airflow retries the task instance: part 2's create is dropped after commit too.
    graph_conn.fault("drop_after_commit", method="POST", path_regex="async_batch_requests")
    ids = submit(requests=requests, max_set_size=3).execute(context)
    assert len(ids) == 2
    digest = key_digest(ACCOUNT, task_instance_key(context))
    sets = graph_conn.objects("async_request_set")
    assert sorted(o["name"] for o in sets) == [f"job [part 1/2 #{digest}]", f"job [part 2/2 #{digest}]"]
    assert sorted(str(o["id"]) for o in sets) == sorted(ids)
    assert graph_conn.counters()["request_sets_created"] == 2
    got = hook().get_request_sets(ids, fields="id,name,total_count")
    assert [int(got[i]["total_count"]) for i in ids] == [3, 2]
    # and a third try finds both: nothing new
    assert submit(requests=requests, max_set_size=3).execute(context) == ids
    assert graph_conn.counters()["request_sets_created"] == 2


def test_rerun_of_a_succeeded_task_instance_creates_nothing(graph_conn: Any) -> None:
    context = ctx(run_id="rerun")
    ids = submit(requests=simple(4), max_set_size=2).execute(context)
    created = graph_conn.counters()["request_sets_created"]
    creates = graph_conn.counters()["calls_by_kind"]["async_batch_create"]
    again = submit(requests=simple(4), max_set_size=2).execute(context)
    assert again == ids
    assert graph_conn.counters()["request_sets_created"] == created == 2
    assert graph_conn.counters()["calls_by_kind"]["async_batch_create"] == creates
    # another map index is another task instance: its own sets
    other = submit(requests=simple(4), max_set_size=2).execute(ctx(run_id="rerun", map_index=1))
    assert set(other).isdisjoint(ids)


def test_task_state_store_remembers_ids_and_skips_listing(graph_conn: Any) -> None:
    store = StubStore()
    context = {"ti": StubTI(run_id="stored"), "task_state_store": store}
    ids = submit().execute(context)
    assert store.data["fb_async_request_set_ids"] == {"v": 2, "gens": [ids]}
    listings = graph_conn.counters()["calls_by_kind"].get("get_edge", 0)
    assert submit().execute(context) == ids
    assert graph_conn.counters()["calls_by_kind"].get("get_edge", 0) == listings
    assert graph_conn.counters()["request_sets_created"] == 1


def test_wait_not_deferrable_times_out(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    op = submit(wait_for_completion=True, timeout=0.5)
    context = ctx(run_id="timeout")
    with pytest.raises(AsyncRequestSetError, match="timed out"):
        op.execute(context)
    # The wait failed, yet the sets exist: their ids are in XCom before the wait starts.
    assert len(op.request_set_ids) == 1
    assert context["ti"].xcoms == {"request_set_ids": op.request_set_ids}


def test_wait_fails_on_request_errors(graph_conn: Any) -> None:
    requests = [{"name": "bad", "relative_url": f"{ACCOUNT}/adsets", "body": "campaign_id=999999999"}]
    op = submit(requests=requests, wait_for_completion=True, fail_on_request_errors=True)
    context = ctx(run_id="errors")
    with pytest.raises(AsyncRequestSetError, match="ended in error"):
        op.execute(context)
    assert context["ti"].xcoms["request_set_ids"] == op.request_set_ids


def test_deferrable_defers_to_the_trigger_then_completes(graph_conn: Any) -> None:
    from airflow_fb_async._compat import TaskDeferred
    from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger

    graph_conn.config(async_pace=0)
    context = ctx(run_id="defer")
    op = submit(wait_for_completion=True, deferrable=True, timeout=60, poll_interval=5)
    start = time.time()
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    trigger = info.value.trigger
    assert isinstance(trigger, AsyncRequestSetTrigger)
    assert trigger.request_set_ids == op.request_set_ids
    assert trigger.poll_interval == 5
    assert trigger.end_time is not None
    assert start + 59 < trigger.end_time < time.time() + 61
    assert info.value.method_name == "execute_complete"
    assert info.value.timeout is not None
    assert info.value.timeout.total_seconds() == 60
    assert context["ti"].xcoms == {
        "request_set_ids": op.request_set_ids
    }  # no summary before the wait is over
    counts = {"total_count": 3, "success_count": 3, "error_count": 0, "canceled_count": 0}
    event = {"status": "success", "message": "ok", "request_sets": {op.request_set_ids[0]: counts}}
    # On resume the operator is a fresh instance (no ids in memory): the ids come from the event.
    resumed = submit(wait_for_completion=True, deferrable=True, timeout=60, poll_interval=5)
    assert resumed.execute_complete(context, event) == op.request_set_ids
    assert context["ti"].xcoms == {
        "request_set_ids": op.request_set_ids,
        "summary": {op.request_set_ids[0]: counts},
    }
    failed = ctx(run_id="defer")
    with pytest.raises(AsyncRequestSetError, match="boom"):
        resumed.execute_complete(failed, {**event, "status": "error", "message": "boom"})
    assert failed["ti"].xcoms == {}


def test_deferrable_returns_at_once_when_already_complete(graph_conn: Any) -> None:
    context = ctx(run_id="done")
    ids = submit().execute(context)
    wait_done(graph_conn, *ids)
    again = ctx(run_id="done")
    assert submit(wait_for_completion=True, deferrable=True).execute(again) == ids  # no TaskDeferred
    assert again["ti"].xcoms == {
        "request_set_ids": ids,
        "summary": {ids[0]: {"total_count": 3, "success_count": 3, "error_count": 0, "canceled_count": 0}},
    }


# ------------------------------------------------------------------------------------------------
# update
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Any]]]:
    """A loopback HTTP server recording what it receives (the notification endpoint)."""
    received: list[Any] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append(
                {"method": self.command, "path": self.path, "body": self.rfile.read(length).decode()}
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = _record
        do_GET = _record

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_update_before_and_after_the_notification(graph_conn: Any, receiver: tuple[str, list[Any]]) -> None:
    url, received = receiver
    graph_conn.config(async_pace=0)
    (set_id,) = submit(notification_uri=f"{url}/first", notification_mode="ON_COMPLETE").execute(
        ctx(run_id="upd")
    )
    ok = UpdateAsyncRequestSetOperator(
        task_id="update",
        request_set_id=set_id,
        name="renamed",
        notification_uri=f"{url}/second",
        notification_mode="on_complete",
    ).execute(ctx())
    assert ok is True
    got = hook().get(set_id, params={"fields": "name,notification_uri,notification_mode"})
    assert (got["name"], got["notification_uri"], got["notification_mode"]) == (
        "renamed",
        f"{url}/second",
        "ON_COMPLETE",
    )

    graph_conn.config(async_pace=200)
    wait_for(lambda: list(received), bool, "the notification to arrive")
    assert received[0]["path"] == "/second"
    wait_for(
        lambda: hook().get(set_id, params={"fields": "notification_status"}).get("notification_status"),
        lambda status: status == "sent",
        "notification_status 'sent'",
    )

    with pytest.raises(GraphAPIError, match="notification was already sent"):
        UpdateAsyncRequestSetOperator(
            task_id="update2", request_set_id=set_id, notification_uri=f"{url}/third"
        ).execute(ctx())
    # the name alone can still change
    assert UpdateAsyncRequestSetOperator(task_id="u3", request_set_id=set_id, name="final").execute(ctx())


# ------------------------------------------------------------------------------------------------
# cancel
# ------------------------------------------------------------------------------------------------


def test_cancel_a_slow_set_and_a_single_request(graph_conn: Any, logs: Any) -> None:
    graph_conn.config(async_pace=0)  # paused: only the step below moves a set
    (slow,) = submit(requests=simple(40), name="slow").execute(ctx(run_id="cancel"))
    (other,) = submit(requests=simple(10), name="other").execute(ctx(run_id="cancel2"))
    assert graph_conn.async_step(3, set_id=slow)[slow]["success_count"] == 3
    pending = list(hook().paginate(f"{other}/requests", params={"fields": "id,status"}))
    assert [r["status"] for r in pending] == ["INITIAL"] * 10
    one_request = pending[-1]["id"]
    out = CancelAsyncRequestSetOperator(task_id="cancel", object_ids=[slow, one_request]).execute(ctx())
    text = logs()
    assert json.loads(json.dumps(out)) == out  # plain JSON for XCom
    assert out[slow]["type"] == "request_set"
    assert out[slow]["is_completed"] is True
    assert out[slow]["canceled"] == 37
    assert (out[slow]["success_count"], out[slow]["canceled_count"], out[slow]["error_count"]) == (3, 37, 0)
    assert out[one_request]["type"] == "request"
    assert out[one_request]["canceled"] == 1
    assert out[one_request]["status"] == "CANCELED"
    assert f"Request set {slow}: canceled {out[slow]['canceled']} request(s)" in text
    assert (
        f"Canceled {out[slow]['canceled'] + out[one_request]['canceled']} request(s) across 2 object(s)"
        in text
    )
    sets = hook().get_request_sets([slow], fields="is_completed,canceled_count")
    assert sets[slow]["is_completed"] in (True, "true")


def test_cancel_completed_set_cancels_nothing(graph_conn: Any) -> None:
    (set_id,) = submit(requests=simple(2), wait_for_completion=False).execute(ctx(run_id="c-done"))
    wait_done(graph_conn, set_id)
    out = CancelAsyncRequestSetOperator(task_id="cancel", object_ids=set_id).execute(ctx())
    assert out[set_id]["canceled"] == 0
    assert not [c for c in graph_conn.calls() if c["method"] == "DELETE"]


# ------------------------------------------------------------------------------------------------
# bad inputs: clear errors, zero HTTP calls
# ------------------------------------------------------------------------------------------------

BAD_OPERATOR_INPUTS: list[tuple[str, Any, str]] = [
    ("account", lambda: submit(ad_account_id="act_12x"), "ad_account_id"),
    ("requests not list", lambda: submit(requests="oops"), "requests must be a list"),
    ("method", lambda: submit(requests=[{**simple(1)[0], "method": "GET"}]), "POST-only"),
    ("body type", lambda: submit(requests=[{**simple(1)[0], "body": 5}]), "'body' must be"),
    ("duplicate", lambda: submit(requests=simple(1) + simple(1)), "duplicate name"),
    ("forward ref", lambda: submit(requests=list(reversed(chains(1)))), "earlier"),
    ("uri", lambda: submit(notification_uri="mailto:x@y"), "notification_uri"),
    ("mode", lambda: submit(notification_mode="SOMETIMES"), "notification_mode"),
    ("name", lambda: submit(name=""), "name must be a non-empty string"),
    ("long name", lambda: submit(name="x" * 250), "at most 255"),
    ("max_set_size", lambda: submit(max_set_size=5000), "max_set_size"),
    ("chain too big", lambda: submit(requests=chains(1), max_set_size=2), "chain of 3"),
    ("poll_interval", lambda: submit(poll_interval=0), "poll_interval"),
    (
        "update nothing",
        lambda: UpdateAsyncRequestSetOperator(task_id="u", request_set_id="1"),
        "nothing to update",
    ),
    (
        "update mode",
        lambda: UpdateAsyncRequestSetOperator(task_id="u", request_set_id="1", notification_mode="X"),
        "notification_mode",
    ),
    (
        "update uri",
        lambda: UpdateAsyncRequestSetOperator(task_id="u", request_set_id="1", notification_uri="x"),
        "notification_uri",
    ),
    (
        "update id",
        lambda: UpdateAsyncRequestSetOperator(task_id="u", request_set_id="", name="n"),
        "request_set_id",
    ),
    (
        "cancel empty",
        lambda: CancelAsyncRequestSetOperator(task_id="c", object_ids=[]),
        "object_ids is empty",
    ),
    (
        "cancel path",
        lambda: CancelAsyncRequestSetOperator(task_id="c", object_ids="1/requests"),
        "single Graph",
    ),
]


@pytest.mark.parametrize(
    ("case", "make", "expected"), BAD_OPERATOR_INPUTS, ids=[c[0] for c in BAD_OPERATOR_INPUTS]
)
def test_bad_operator_inputs_fail_clearly_without_http(
    graph_conn: Any, case: str, make: Any, expected: str
) -> None:
    before = graph_conn.http_calls()
    with pytest.raises(GraphInputError) as info:
        make().execute(ctx())
    assert expected in str(info.value), str(info.value)
    assert graph_conn.http_calls() == before


# ------------------------------------------------------------------------------------------------
# end to end through dag.test() (deferral, trigger run inline)
# ------------------------------------------------------------------------------------------------


def test_dag_submit_and_wait_deferrable(graph_conn: Any, airflow_db: None) -> None:
    from tests.conftest import run_dag

    # The task's own check before deferring is the first multi-id read: paused until the trigger
    # has read the sets too, so the task must defer however slow the machine.
    with paused_until_read(graph_conn, 2):
        dag_run: Any = run_dag("test_submit_async_batch", account="act_777")
    assert "success" in str(dag_run.state), dag_run.state
    sets = [o for o in graph_conn.objects("async_request_set") if str(o.get("name", "")).startswith("e2e [")]
    assert len(sets) == 2
    # After the deferral: return_value is the id list, the counts are under "summary".
    ids = xcom(dag_run, "submit")
    assert ids == [str(s["id"]) for s in sorted(sets, key=lambda s: str(s["name"]))]  # part order
    summary = xcom(dag_run, "submit", key="summary")
    assert list(summary) == ids
    assert [summary[i]["success_count"] for i in ids] == [3, 2]
    views = hook().get_request_sets([str(s["id"]) for s in sets], fields="is_completed,success_count")
    assert sorted(int(v["success_count"]) for v in views.values()) == [2, 3]
    multi_reads = [c for c in graph_conn.calls() if c["kind"] == "get_multi"]
    assert len(multi_reads) >= 2  # the check before deferring, then the trigger's polls
    run_dag("test_submit_async_batch", account="act_777")  # another run id: its own sets
    assert graph_conn.counters()["request_sets_created"] == 4


# ------------------------------------------------------------------------------------------------
# review regressions: on_kill, rendered/summary XComs as ids, worker-side waiting
# ------------------------------------------------------------------------------------------------


def _set_counts(set_id: str) -> dict[str, Any]:
    return dict(hook().get_request_sets([set_id], fields="id,is_completed,canceled_count")[set_id])


def test_submit_on_kill_with_cancel_on_kill_cancels_its_sets(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)  # nothing is processed: everything is still cancelable
    op = submit(requests=simple(5), max_set_size=3, cancel_on_kill=True)
    ids = op.execute(ctx(run_id="kill"))
    assert len(ids) == 2
    op.on_kill()
    assert [int(_set_counts(i)["canceled_count"]) for i in ids] == [3, 2]


def test_submit_killed_midway_cancels_the_parts_already_created(graph_conn: Any) -> None:
    """Part 1 exists, part 2's create keeps failing: the kill cancels part 1 (its id was recorded)."""
    graph_conn.config(async_pace=0)
    op = submit(requests=simple(5), max_set_size=3, cancel_on_kill=True)
    real_request = op.hook.request
    creates = {"n": 0}

    def request_then_fail_second_create(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        # Every create from the second one on is refused with code 100 (real HTTP calls).
        if method == "POST" and path.endswith("async_batch_requests"):
            creates["n"] += 1
            if creates["n"] == 2:
                kwargs["data"] = {**kwargs["data"], "adbatch": "not json"}
        return real_request(method, path, *args, **kwargs)

    op.hook.request = request_then_fail_second_create  # type: ignore[method-assign]
    with pytest.raises(GraphAPIError):
        op.execute(ctx(run_id="midway"))
    assert len(op.request_set_ids) == 1
    graph_conn.clear_faults()
    op.on_kill()
    assert int(_set_counts(op.request_set_ids[0])["canceled_count"]) == 3


def test_submit_on_kill_without_cancel_on_kill_cancels_nothing(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    op = submit(requests=simple(2))
    (set_id,) = op.execute(ctx(run_id="kill-no"))
    op.on_kill()
    assert int(_set_counts(set_id).get("canceled_count") or 0) == 0
    assert not [c for c in graph_conn.calls() if c["method"] == "DELETE"]


def test_cancel_reads_an_xcom_list_rendered_to_text(graph_conn: Any) -> None:
    # object_ids="{{ ti.xcom_pull(task_ids='submit') }}" renders (non-native) to "['1', '2']".
    graph_conn.config(async_pace=0)
    ids = submit(requests=simple(4), max_set_size=2).execute(ctx(run_id="rendered"))
    out = CancelAsyncRequestSetOperator(task_id="cancel", object_ids=str(ids)).execute(ctx())
    assert sorted(out) == sorted(ids)
    assert all(out[i]["canceled"] == 2 for i in ids)


def test_cancel_rejects_a_rendered_garbage_list_before_http(graph_conn: Any) -> None:
    before = graph_conn.http_calls()
    with pytest.raises(GraphInputError, match=r"object_ids\[1\]"):
        CancelAsyncRequestSetOperator(task_id="c", object_ids="['12', 'oops']").execute(ctx())
    assert graph_conn.http_calls() == before


def test_wait_not_deferrable_logs_request_progress(graph_conn: Any, logs: Any) -> None:
    context = ctx(run_id="progress")
    with paused_until_read(graph_conn, 1):  # pending at the first check: the wait loop runs
        (set_id,) = submit(requests=simple(3), wait_for_completion=True).execute(context)
    assert list(context["ti"].xcoms["summary"]) == [set_id]
    text = logs()
    assert "1/1 request set(s) done; requests: 3 succeeded, 0 failed, 0 canceled of 3" in text
    assert f"request set {set_id} completed: 3 succeeded" in text


def test_wait_not_deferrable_rides_out_transient_read_errors(graph_conn: Any, logs: Any) -> None:
    # More 5xx on the status reads than the hook's own retries: the wait goes on, like the sensor's.
    graph_conn.fault("500", count=8, method="GET", path_regex="ids=")
    context = ctx(run_id="transient")
    ids = submit(requests=simple(2), wait_for_completion=True).execute(context)
    assert list(context["ti"].xcoms["summary"]) == ids
    (counts,) = context["ti"].xcoms["summary"].values()
    assert counts["success_count"] == 2
    assert "Reading request sets failed" in logs() or "First check failed" in logs()
