"""Bad input sweep (issue 9): malformed inputs across every operator and the sensor.

Each case must raise one of the project's own errors (``FacebookGraphError``; for input problems
``GraphInputError``) whose message names the problem, before any HTTP call: the emulator's
``http_calls`` counter does not move.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_fb_async.exceptions import FacebookGraphError, GraphInputError
from airflow_fb_async.operators.async_batch import (
    CancelAsyncRequestSetOperator,
    SubmitAsyncBatchOperator,
    UpdateAsyncRequestSetOperator,
)
from airflow_fb_async.operators.batch import GraphBatchOperator
from airflow_fb_async.operators.results import AsyncRequestResultsOperator
from airflow_fb_async.sensors.async_request_set import AsyncRequestSetSensor
from tests.chaos._support import ctx
from tests.emu_admin import EmulatorAdmin

ACCOUNT = "act_4343"
OK_REQ = {"name": "c1", "relative_url": f"{ACCOUNT}/campaigns", "body": "name=x"}
GET = {"method": "GET", "relative_url": "me"}


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Path], Any]
    keyword: str  # a word the message must contain (case-insensitive)


def batch(requests: Any, **kw: Any) -> Callable[[Path], Any]:
    return lambda tmp: GraphBatchOperator(task_id="b", requests=requests, **kw).execute({})


def submit(requests: Any = (OK_REQ,), **kw: Any) -> Callable[[Path], Any]:
    args = {"ad_account_id": ACCOUNT, "name": "sweep", **kw}
    return lambda tmp: SubmitAsyncBatchOperator(task_id="s", requests=list(requests), **args).execute(ctx())


def sensor(ids: Any) -> Callable[[Path], Any]:
    def run(tmp: Path) -> Any:
        s = AsyncRequestSetSensor(task_id="w", request_set_ids=ids, deferrable=False, poke_interval=0.1)
        return s.poke({})

    return run


def results(**kw: Any) -> Callable[[Path], Any]:
    args = {"request_set_ids": ["123"], **kw}
    return lambda tmp: AsyncRequestResultsOperator(task_id="r", **args).execute({})


def chain(n: int) -> list[dict[str, Any]]:
    out = [{"name": "r0", "relative_url": f"{ACCOUNT}/campaigns", "body": "name=x"}]
    out += [
        {
            "name": f"r{k}",
            "relative_url": f"{ACCOUNT}/adsets",
            "body": f"campaign_id={{result=r{k - 1}:$.id}}",
        }
        for k in range(1, n)
    ]
    return out


CASES = [
    # GraphBatchOperator
    Case("batch not a list", batch({"method": "GET", "relative_url": "me"}), "list"),
    Case("batch is a string", batch("GET me"), "list"),
    Case("batch entry not a dict", batch([GET, "GET me"]), "dict"),
    Case("batch missing method", batch([{"relative_url": "me"}]), "method"),
    Case("batch unknown method", batch([{"method": "PATCH", "relative_url": "me"}]), "method"),
    Case("batch missing relative_url", batch([{"method": "GET"}]), "relative_url"),
    Case("batch relative_url not str", batch([{"method": "GET", "relative_url": 42}]), "relative_url"),
    Case("batch body on GET", batch([{"method": "GET", "relative_url": "me", "body": "a=1"}]), "body"),
    Case("batch unknown reference", batch([{"method": "GET", "relative_url": "{result=nope:$.id}"}]), "nope"),
    Case(
        "batch reference to later entry",
        batch(
            [
                {"method": "GET", "relative_url": "{result=b:$.id}", "name": "a"},
                {"method": "GET", "relative_url": "me", "name": "b"},
            ]
        ),
        "later",
    ),
    Case(
        "batch cycle (self reference)",
        batch([{"method": "GET", "relative_url": "{result=a:$.id}", "name": "a"}]),
        "itself",
    ),
    Case("batch duplicate names", batch([{**GET, "name": "a"}, {**GET, "name": "a"}]), "duplicate"),
    Case("batch name with spaces", batch([{**GET, "name": "a b"}]), "name"),
    Case(
        "batch attached file missing",
        batch([{"method": "POST", "relative_url": f"{ACCOUNT}/adimages", "attached_files": "img"}]),
        "img",
    ),
    Case(
        "batch files path missing",
        lambda tmp: GraphBatchOperator(
            task_id="b",
            requests=[{"method": "POST", "relative_url": f"{ACCOUNT}/adimages", "attached_files": "img"}],
            files={"img": str(tmp / "missing.png")},
        ).execute({}),
        "missing.png",
    ),
    Case("batch unknown key", batch([{**GET, "bodyy": "x"}]), "bodyy"),
    Case("batch bad header", batch([{**GET, "headers": ["no colon"]}]), "header"),
    Case("batch depends_on unknown", batch([{**GET, "depends_on": "ghost"}]), "ghost"),
    Case("batch malformed reference", batch([{"method": "GET", "relative_url": "{result=a}"}]), "reference"),
    # SubmitAsyncBatchOperator
    Case(
        "async request missing body", submit([{"name": "a", "relative_url": f"{ACCOUNT}/campaigns"}]), "body"
    ),
    Case("async duplicate names", submit([OK_REQ, OK_REQ]), "duplicate"),
    Case(
        "async reference to a later entry",
        submit(
            [
                {"name": "a", "relative_url": f"{ACCOUNT}/adsets", "body": "campaign_id={result=b:$.id}"},
                {**OK_REQ, "name": "b"},
            ]
        ),
        "later",
    ),
    Case("async chain larger than a set", submit(chain(5), max_set_size=3), "chain"),
    Case("async max_set_size above 1000", submit(max_set_size=1001), "max_set_size"),
    Case("async notification_uri ftp", submit(notification_uri="ftp://example.com/hook"), "notification_uri"),
    Case("async notification_mode bogus", submit(notification_mode="SOMETIMES"), "notification_mode"),
    Case("async ad account 123abc", submit(ad_account_id="123abc"), "ad_account_id"),
    Case("async method key", submit([{**OK_REQ, "method": "POST"}]), "method"),
    Case("async name empty", submit(name="  "), "name"),
    Case("async request not a dict", submit(["x"]), "dict"),
    # AsyncRequestSetSensor
    Case("sensor ids empty string", sensor(""), "request set id"),
    Case("sensor id non-digit", sensor("12ab"), "digits"),
    Case("sensor ids nested list with a bad id", sensor([["1"], ["x y"]]), "request set id"),
    Case("sensor id a dict", sensor({"1": 2}), "request_set_ids"),
    # AsyncRequestResultsOperator
    Case("results statuses DONE", results(statuses=["DONE"]), "DONE"),
    Case("results fields with spaces", results(fields=["id name"]), "fields"),
    Case("results max_xcom_items 0", results(max_xcom_items=0), "max_xcom_items"),
    Case("results output_path wrong type", results(output_path=123), "output_path"),
    Case("results output_path a directory", results(output_path="/tmp/out/"), "directory"),
    Case("results set id not digits", results(request_set_ids=["abc"]), "request_set_ids"),
    Case("results ids_only without SUCCESS", results(ids_only=True, statuses=["ERROR"]), "SUCCESS"),
    # UpdateAsyncRequestSetOperator
    Case(
        "update with nothing to update",
        lambda tmp: UpdateAsyncRequestSetOperator(task_id="u", request_set_id="123").execute({}),
        "nothing to update",
    ),
    Case(
        "update id with a path",
        lambda tmp: UpdateAsyncRequestSetOperator(
            task_id="u", request_set_id="123/requests", name="x"
        ).execute({}),
        "request_set_id",
    ),
    Case(
        "update notification_uri ftp",
        lambda tmp: UpdateAsyncRequestSetOperator(
            task_id="u", request_set_id="123", notification_uri="ftp://x/y"
        ).execute({}),
        "notification_uri",
    ),
    Case(
        "update notification_mode bogus",
        lambda tmp: UpdateAsyncRequestSetOperator(
            task_id="u", request_set_id="123", notification_mode="LOUD"
        ).execute({}),
        "notification_mode",
    ),
    # CancelAsyncRequestSetOperator
    Case(
        "cancel with empty list",
        lambda tmp: CancelAsyncRequestSetOperator(task_id="c", object_ids=[]).execute({}),
        "empty",
    ),
    Case(
        "cancel with a URL",
        lambda tmp: CancelAsyncRequestSetOperator(task_id="c", object_ids=["http://evil/1"]).execute({}),
        "object_ids",
    ),
]

_SEEN: list[str] = []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    before = graph_conn.http_calls()
    with pytest.raises(FacebookGraphError) as info:
        case.run(tmp_path)
    assert isinstance(info.value, GraphInputError), f"{type(info.value).__name__}: {info.value}"
    assert case.keyword.lower() in str(info.value).lower(), str(info.value)
    assert graph_conn.http_calls() == before, "an HTTP call was made before the input was rejected"
    _SEEN.append(case.id)


def test_sweep_size(request: pytest.FixtureRequest) -> None:
    operators = {"batch", "async", "sensor", "results", "update", "cancel"}
    assert {c.id.split()[0] for c in CASES} == operators
    assert len(CASES) >= 25
    line = f"bad input sweep: {len(CASES)} malformed inputs across {len(operators)} operators/sensor"
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is not None and capman is not None:
        with capman.global_and_fixture_disabled():
            tr.write_line("")
            tr.write_line(line)
    print(line)
