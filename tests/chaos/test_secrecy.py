"""Token secrecy sweep (issue 9): the failing paths of every component, run with the long distinctive
TEST_TOKEN (and a second distinctive *bad* token), scanned for both tokens raw and URL-encoded in:
captured logs at DEBUG (message and raw args), stdout/stderr, exception str/repr/args and the whole
formatted chain (causes included), return values/XComs, trigger event payloads and files written.

The suite-wide sweep (tests/secrecy.py) scans captured output after every test too; this module
drives the paths that are most likely to leak and checks the artefacts the sweep cannot see
(exception objects, return values, event payloads) directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from airflow_fb_async.exceptions import FacebookGraphError
from airflow_fb_async.hooks.graph import GraphAsyncHook, GraphHook
from airflow_fb_async.operators.async_batch import (
    CancelAsyncRequestSetOperator,
    SubmitAsyncBatchOperator,
    UpdateAsyncRequestSetOperator,
)
from airflow_fb_async.operators.batch import GraphBatchOperator
from airflow_fb_async.operators.results import AsyncRequestResultsOperator
from airflow_fb_async.sensors.async_request_set import AsyncRequestSetSensor
from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger
from tests.chaos._support import ctx, report
from tests.conftest import CONN_ENV, TEST_TOKEN, conn_json
from tests.emu_admin import EmulatorAdmin

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

BAD_TOKEN = "EAABADtok3n-Yw7Uu1-also-secret-never-print-0a9b8c7d6e5f4321"
ACCOUNT = "act_7400"
TOKENS = (TEST_TOKEN, BAD_TOKEN)
FORMS = {f for t in TOKENS for f in (t, quote(t, safe=""), quote_plus(t))}


class Artefacts:
    def __init__(self) -> None:
        self.count = 0
        self.chars = 0
        self.hits: list[str] = []

    def scan(self, label: str, value: Any) -> None:
        text = value if isinstance(value, str) else _text(value)
        self.count += 1
        self.chars += len(text)
        for form in FORMS:
            if form in text:
                self.hits.append(f"{label}: {text[max(0, text.index(form) - 80) : text.index(form) + 20]!r}")
                return

    def exception(self, label: str, exc: BaseException) -> None:
        self.scan(f"{label} str", str(exc))
        self.scan(f"{label} repr", repr(exc))
        self.scan(f"{label} args", repr(exc.args))
        self.scan(f"{label} dict", repr(getattr(exc, "__dict__", {})))
        self.scan(f"{label} traceback", "".join(traceback.format_exception(exc)))


def _text(value: Any) -> str:
    try:
        return json.dumps(value, default=repr)
    except (TypeError, ValueError):
        return repr(value)


@pytest.fixture
def art(
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> Iterator[Artefacts]:
    caplog.set_level(logging.DEBUG)
    found = Artefacts()
    yield found
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        found.scan(f"log {record.name}", record.getMessage())
        found.scan(f"log args {record.name}", repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            found.exception(f"log exc {record.name}", record.exc_info[1])
    out = capsys.readouterr()
    found.scan("stdout", out.out)
    found.scan("stderr", out.err)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            found.scan(f"file {path.name}", path.read_text(errors="replace"))
    report(
        request,
        [
            f"token secrecy ({request.node.name}): {found.count} artefacts "
            f"({found.chars / 1000:.0f} k chars) scanned for 2 tokens x 3 spellings: "
            f"{len(found.hits)} hits",
            *[f"  LEAK {h}" for h in found.hits],
        ],
    )
    assert not found.hits


def expect_error(art: Artefacts, label: str, fn: Any, *args: Any, **kwargs: Any) -> BaseException:
    try:
        value = fn(*args, **kwargs)
    except FacebookGraphError as exc:  # every failing path must raise one of ours (others propagate)
        art.exception(label, exc)
        return exc
    art.scan(f"{label} return", value)
    raise AssertionError(f"{label}: no error, got {value!r}")


def test_hook_failing_paths(
    graph_conn: EmulatorAdmin, art: Artefacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = graph_conn
    hook = GraphHook()
    emu.fault("500", count=20)
    expect_error(art, "500s exhausted", hook.get, f"{ACCOUNT}/campaigns")
    emu.clear_faults()
    emu.fault("throttle", count=20, regain_minutes=1)
    expect_error(art, "throttling exhausted", hook.get, f"{ACCOUNT}/campaigns")
    emu.clear_faults()
    time.sleep(0.2)
    emu.fault("drop_after_commit", count=1, method="POST")
    expect_error(
        art,
        "drop after commit",
        hook.post,
        f"{ACCOUNT}/campaigns",
        data={"name": "x", "objective": "OUTCOME_TRAFFIC", "status": "PAUSED"},
    )
    emu.fault("drop_before", count=20)
    expect_error(art, "drops exhausted", hook.get, "me")
    emu.clear_faults()
    # Pagination: the next links carry the token; a failure on a later page must not show them.
    for k in range(5):
        hook.post(
            f"{ACCOUNT}/campaigns",
            data={
                "name": f"p{k}",
                "objective": "OUTCOME_TRAFFIC",
                "status": "PAUSED",
                "special_ad_categories": "[]",
            },
        )
    pages = hook.paginate(f"{ACCOUNT}/campaigns", params={"fields": "id,name"}, page_size=2)
    art.scan("first page item", next(pages))
    emu.fault("500", count=20, method="GET")
    expect_error(art, "pagination error", lambda: list(pages))
    emu.clear_faults()
    expect_error(art, "unknown edge", hook.get, f"{ACCOUNT}/no_such_edge")
    expect_error(art, "bad request set", hook.get_request_set, "999999999999")
    # Bad token and missing appsecret_proof answers.
    emu.config(app_secret="chaos-app-secret")
    expect_error(art, "appsecret_proof required", GraphHook().get, "me")
    emu.config(app_secret=None)
    monkeypatch.setenv(CONN_ENV, conn_json(emu.url, token=BAD_TOKEN))
    bad = GraphHook()
    expect_error(art, "bad token get", bad.get, "me")
    expect_error(art, "bad token batch", bad.batch, [{"method": "GET", "relative_url": "me"}])
    expect_error(
        art,
        "bad token async",
        bad.create_async_batch,
        ACCOUNT,
        [{"name": "a", "relative_url": f"{ACCOUNT}/campaigns", "body": "name=x"}],
        "secrecy",
    )
    art.scan("scrubbed", bad.scrub(f"x {BAD_TOKEN} {quote(BAD_TOKEN)}"))


def test_operator_failing_paths(
    graph_conn: EmulatorAdmin, art: Artefacts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = graph_conn
    # Batch failures with fail_on_error.
    reqs = [
        {"method": "GET", "relative_url": "999999999999"},
        {
            "method": "POST",
            "relative_url": f"{ACCOUNT}/campaigns",
            "body": {
                "name": "ok",
                "objective": "OUTCOME_TRAFFIC",
                "status": "PAUSED",
                "special_ad_categories": [],
            },
        },
        {"method": "GET", "relative_url": f"{ACCOUNT}/nonexistent_edge"},
    ]
    exc = expect_error(art, "batch fail_on_error", GraphBatchOperator(task_id="b", requests=reqs).execute, {})
    art.scan("batch failures", getattr(exc, "failures", None))
    art.scan("batch XCom", GraphBatchOperator(task_id="b2", requests=reqs, fail_on_error=False).execute({}))
    # A batch whose call dropped after commit (ambiguous entries) and whose entries came back null.
    emu.config(null_fraction=0.5)
    emu.fault("drop_after_commit", count=1, method="POST")
    art.scan(
        "batch ambiguous XCom",
        GraphBatchOperator(
            task_id="b3", requests=reqs, fail_on_error=False, batch_options={"round_backoff": 0.01}
        ).execute({}),
    )
    emu.config(null_fraction=0.0)
    # Submit, results (XCom and file), update, cancel.
    sub = [
        {
            "name": f"r{k}",
            "relative_url": f"{ACCOUNT}/campaigns",
            "body": {
                "name": f"s{k}",
                "objective": "OUTCOME_TRAFFIC",
                "status": "PAUSED",
                "special_ad_categories": [],
            },
        }
        for k in range(3)
    ]
    sub.append({"name": "bad", "relative_url": "999999999999/nonexistent_edge", "body": "name=x"})
    emu.fault("drop_after_commit", count=1, method="POST", path_regex="async_batch_requests")
    ids = SubmitAsyncBatchOperator(
        task_id="s",
        ad_account_id=ACCOUNT,
        requests=sub,
        name="secrecy",
        wait_for_completion=True,
        poll_interval=0.1,
        deferrable=False,
    )
    context = ctx(task_id="s")
    art.scan("submit XCom", ids.execute(context))
    art.scan("submit summary XCom", context["ti"].xcoms["summary"])
    set_ids = ids.request_set_ids
    res = AsyncRequestResultsOperator(task_id="r", request_set_ids=set_ids, fields=["input"])
    art.scan("results XCom", res.execute({}))
    out = tmp_path / "results.jsonl"
    art.scan(
        "results file XCom",
        AsyncRequestResultsOperator(
            task_id="rf", request_set_ids=set_ids, output_path=str(out), fields=["input"]
        ).execute({}),
    )
    emu.fault("500", count=30, method="GET")
    expect_error(
        art,
        "results 500s",
        AsyncRequestResultsOperator(
            task_id="r5", request_set_ids=set_ids, output_path=str(tmp_path / "failed.jsonl")
        ).execute,
        {},
    )
    emu.clear_faults()
    expect_error(
        art,
        "results too many",
        AsyncRequestResultsOperator(task_id="rm", request_set_ids=set_ids, max_xcom_items=1).execute,
        {},
    )
    expect_error(
        art,
        "update sent notification",
        UpdateAsyncRequestSetOperator(task_id="u", request_set_id="999999999999", name="new").execute,
        {},
    )
    art.scan("cancel XCom", CancelAsyncRequestSetOperator(task_id="c", object_ids=set_ids).execute({}))
    # Sensor poke with fail_on_request_errors, and with a bad token.
    sensor = AsyncRequestSetSensor(
        task_id="w", request_set_ids=set_ids, fail_on_request_errors=True, deferrable=False
    )
    expect_error(art, "sensor request errors", sensor.poke, {})
    monkeypatch.setenv(CONN_ENV, conn_json(emu.url, token=BAD_TOKEN))
    expect_error(
        art,
        "sensor bad token",
        AsyncRequestSetSensor(task_id="w2", request_set_ids=set_ids, deferrable=False).poke,
        {},
    )
    expect_error(
        art,
        "submit bad token",
        SubmitAsyncBatchOperator(task_id="s2", ad_account_id=ACCOUNT, requests=sub, name="secrecy2").execute,
        ctx(task_id="s2"),
    )


async def test_trigger_failing_paths(
    graph_conn: EmulatorAdmin, art: Artefacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = graph_conn

    async def event(trigger: AsyncRequestSetTrigger) -> dict[str, Any]:
        art.scan("trigger kwargs", trigger.serialize())
        gen = trigger.run()
        try:
            ev = await asyncio.wait_for(gen.__anext__(), timeout=60)
        finally:
            await gen.aclose()
        art.scan("trigger event", ev.payload)
        return ev.payload

    assert (await event(AsyncRequestSetTrigger(["999999999999"], poll_interval=0.05)))["status"] == "error"
    emu.config(async_pace=0)  # before the create: the set must still be pending for the timeouts below
    hook = GraphHook()
    set_id = hook.create_async_batch(
        ACCOUNT, [{"name": "a", "relative_url": "999999999999/nonexistent_edge", "body": "name=x"}], "trig"
    )[0]
    ev = await event(AsyncRequestSetTrigger([set_id], poll_interval=0.05, end_time=time.time() + 0.5))
    assert ev["status"] == "timeout"
    emu.fault("500", count=200, method="GET")
    ev = await event(AsyncRequestSetTrigger([set_id], poll_interval=0.05, end_time=time.time() + 1.0))
    assert ev["status"] == "timeout"
    emu.clear_faults()
    emu.config(async_pace=200)
    ev = await event(AsyncRequestSetTrigger([set_id], poll_interval=0.05, fail_on_request_errors=True))
    assert ev["status"] == "error"
    emu.fault("500", count=3, method="GET")
    monkeypatch.setenv(CONN_ENV, conn_json(emu.url, token=BAD_TOKEN))
    assert (await event(AsyncRequestSetTrigger([set_id], poll_interval=0.05)))["status"] == "error"
    async with GraphAsyncHook() as ahook:
        try:
            await ahook.get("me")
        except FacebookGraphError as exc:
            art.exception("async hook bad token", exc)
