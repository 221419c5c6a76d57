"""AsyncRequestSetTrigger against the emulator over HTTP (no mocked transport)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import socket
import ssl
import time
from typing import Any

import pytest
import requests

from airflow_fb_async.exceptions import AsyncRequestSetError, GraphInputError
from airflow_fb_async.hooks.graph import _shared_ssl_context
from airflow_fb_async.triggers.async_request_set import (
    AsyncRequestSetTrigger,
    event_result,
    make_event,
    normalize_set_ids,
    scrub_text,
    summarize_sets,
)
from tests.conftest import CONN_ENV, TEST_TOKEN, conn_json

CLASSPATH = "airflow_fb_async.triggers.async_request_set.AsyncRequestSetTrigger"


# --------------------------------------------------------------------------------------------------
# helpers shared with tests/sensors
# --------------------------------------------------------------------------------------------------


def create_sets(
    url: str,
    n_sets: int,
    per_set: int = 1,
    bad_per_set: int = 0,
    sizes: list[int] | None = None,
    account: str = "act_1",
) -> list[str]:
    """Create request sets on the emulator with plain HTTP; return their ids."""
    ids = []
    with requests.Session() as session:
        for s in range(n_sets):
            size = sizes[s] if sizes else per_set
            batch = [
                {
                    "name": f"c{s}_{i}",
                    "relative_url": f"{account}/campaigns",
                    "body": f"name=c{s}_{i}&objective=OUTCOME_TRAFFIC",
                }
                for i in range(size)
            ]
            batch += [
                {"name": f"bad{s}_{i}", "relative_url": "999999999999/nonexistent_edge", "body": "name=x"}
                for i in range(bad_per_set)
            ]
            resp = session.post(
                f"{url}/v25.0/{account}/async_batch_requests",
                data={"name": f"set {s}", "adbatch": json.dumps(batch)},
                headers={"Authorization": f"OAuth {TEST_TOKEN}"},
                timeout=30,
            )
            resp.raise_for_status()
            ids.append(str(resp.json()["id"]))
    return ids


def cancel_sets(url: str, set_ids: list[str]) -> None:
    """Cancel sets with plain HTTP: they are completed (all requests CANCELED) as soon as this returns."""
    with requests.Session() as session:
        for set_id in set_ids:
            resp = session.delete(
                f"{url}/v25.0/{set_id}", headers={"Authorization": f"OAuth {TEST_TOKEN}"}, timeout=30
            )
            resp.raise_for_status()


def read_set(url: str, set_id: str) -> dict[str, Any]:
    resp = requests.get(
        f"{url}/v25.0/{set_id}",
        params={"fields": "is_completed,total_count,success_count,error_count,canceled_count"},
        headers={"Authorization": f"OAuth {TEST_TOKEN}"},
        timeout=30,
    )
    resp.raise_for_status()
    return resp.json()


async def first_event(trigger: AsyncRequestSetTrigger, timeout: float = 30) -> dict[str, Any]:
    gen = trigger.run()
    try:
        event = await asyncio.wait_for(gen.__anext__(), timeout)
    finally:
        await gen.aclose()
    return event.payload


def all_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Everything logged: stdlib records (caplog) and Airflow's structlog output (stdout/stderr)."""
    out, err = capfd.readouterr()
    return caplog.text + out + err


def trigger(ids: list[str], **kwargs: Any) -> AsyncRequestSetTrigger:
    kwargs.setdefault("poll_interval", 0.05)
    return AsyncRequestSetTrigger(request_set_ids=ids, **kwargs)


class RoundProbe(AsyncRequestSetTrigger):
    """Records emulator counter deltas per poll round; can run a callback after a given round."""

    emu: Any = None
    after_round: dict[int, Any] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rounds: list[dict[str, int]] = []

    async def _read_round(self, ahook: Any, pending: list[str]) -> dict[str, dict[str, Any]]:
        before = await asyncio.to_thread(self.emu.counters)
        try:
            return await super()._read_round(ahook, pending)
        finally:
            after = await asyncio.to_thread(self.emu.counters)
            self.rounds.append(
                {
                    "pending": len(pending),
                    "http": after["http_calls"] - before["http_calls"],
                    "get_multi": after["calls_by_kind"].get("get_multi", 0)
                    - before["calls_by_kind"].get("get_multi", 0),
                }
            )
            callback = self.after_round.get(len(self.rounds))
            if callback is not None:
                await asyncio.to_thread(callback)


# --------------------------------------------------------------------------------------------------
# pure functions (no HTTP)
# --------------------------------------------------------------------------------------------------


def test_serialize_round_trips_plain_json() -> None:
    trig = AsyncRequestSetTrigger(
        request_set_ids=["12", "34"],
        graph_conn_id="other",
        api_version="v24.0",
        poll_interval=5,
        end_time=1234.5,
        fail_on_request_errors=True,
        cancel_on_kill=True,
    )
    classpath, kwargs = trig.serialize()
    assert classpath == CLASSPATH
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs == {
        "request_set_ids": ["12", "34"],
        "graph_conn_id": "other",
        "api_version": "v24.0",
        "poll_interval": 5.0,
        "end_time": 1234.5,
        "fail_on_request_errors": True,
        "cancel_on_kill": True,
    }
    rebuilt = AsyncRequestSetTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_serialize_classpath_follows_subclass() -> None:
    class Sub(AsyncRequestSetTrigger):
        pass

    classpath, _ = Sub(["1"]).serialize()
    assert classpath.endswith("test_serialize_classpath_follows_subclass.<locals>.Sub")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123", ["123"]),
        (123, ["123"]),
        (["1", "2", "1"], ["1", "2"]),
        ('["1", "2"]', ["1", "2"]),
        ("['1', '2']", ["1", "2"]),
        ("1, 2", ["1", "2"]),
        ([["1", "2"], ["3"]], ["1", "2", "3"]),
        (("4", 5), ["4", "5"]),
        ({"7": {"total_count": 1}, "8": {"total_count": 2}}, ["7", "8"]),  # a waiting submit's summary
        ("{'7': {'total_count': 1}}", ["7"]),
    ],
)
def test_normalize_set_ids(value: Any, expected: list[str]) -> None:
    assert normalize_set_ids(value) == expected


@pytest.mark.parametrize("value", [None, "", [], "[]", "abc", ["12", "x1"], [True], {"a": 1}, "act_1", -3])
def test_normalize_set_ids_rejects(value: Any) -> None:
    with pytest.raises(GraphInputError, match="request_set_ids"):
        normalize_set_ids(value)


def test_summarize_sets_coerces_missing_counts() -> None:
    raw = {
        "1": {"id": "1", "is_completed": True, "total_count": 3, "success_count": 2, "error_count": 1},
        "2": {"id": "2", "total_count": "4", "success_count": None},
    }
    assert summarize_sets(raw) == {
        "1": {"total_count": 3, "success_count": 2, "error_count": 1, "canceled_count": 0},
        "2": {"total_count": 4, "success_count": 0, "error_count": 0, "canceled_count": 0},
    }


SUMMARY = {"7": {"total_count": 5, "success_count": 3, "error_count": 2, "canceled_count": 0}}


def test_event_result_success_returns_summary() -> None:
    assert event_result(make_event("success", "ok", SUMMARY)) == SUMMARY


@pytest.mark.parametrize("status", ["error", "timeout"])
def test_event_result_raises_with_message_and_counts(status: str) -> None:
    with pytest.raises(AsyncRequestSetError, match="boom") as info:
        event_result(make_event(status, "boom", SUMMARY))
    assert info.value.status == status  # type: ignore[attr-defined]
    assert info.value.request_sets == SUMMARY  # type: ignore[attr-defined]
    assert "2 failed" in str(info.value)
    assert ("timed out" in str(info.value)) == (status == "timeout")


@pytest.mark.parametrize(
    "event",
    [
        None,
        "success",
        {},
        {"status": "done", "message": "x", "request_sets": {}},
        {"status": "success", "request_sets": {}},
        {"status": "success", "message": "x"},
        {"status": "success", "message": "x", "request_sets": {"1": {"total_count": 1}}},
        {"status": "success", "message": "x", "request_sets": {"1": dict.fromkeys(SUMMARY["7"], "1")}},
    ],
)
def test_event_result_rejects_malformed(event: Any) -> None:
    with pytest.raises(AsyncRequestSetError, match="malformed"):
        event_result(event)


def test_scrub_text_removes_urls_and_tokens() -> None:
    text = f"GET http://h/v25.0/?ids=1&access_token={TEST_TOKEN} failed; Authorization: OAuth {TEST_TOKEN}"
    out = scrub_text(text)
    assert TEST_TOKEN not in out
    assert "access_token" not in out or "access_token=***" in out
    assert "http://" not in out


# --------------------------------------------------------------------------------------------------
# against the emulator
# --------------------------------------------------------------------------------------------------


async def test_success_event_counts(graph_conn: Any) -> None:
    ids = create_sets(graph_conn.url, 3, per_set=2)
    event = await first_event(trigger(ids))
    assert event["status"] == "success", event
    assert set(event["request_sets"]) == set(ids)
    for counts in event["request_sets"].values():
        assert counts == {"total_count": 2, "success_count": 2, "error_count": 0, "canceled_count": 0}
    assert event_result(event) == event["request_sets"]
    assert len(json.dumps(event)) < 2000


async def test_rebuilt_trigger_gives_same_event(graph_conn: Any) -> None:
    ids = create_sets(graph_conn.url, 4, per_set=2, bad_per_set=1)
    original = trigger(ids, fail_on_request_errors=True, end_time=time.time() + 60)
    classpath, kwargs = original.serialize()
    assert classpath == CLASSPATH
    rebuilt = AsyncRequestSetTrigger(**json.loads(json.dumps(kwargs)))
    first = await first_event(original)
    second = await first_event(rebuilt)
    assert first == second
    assert first["status"] == "error"
    assert "4 of 12 request(s) ended in error" in first["message"]
    with pytest.raises(AsyncRequestSetError, match="ended in error"):
        event_result(first)


async def test_request_errors_tolerated_by_default(graph_conn: Any) -> None:
    ids = create_sets(graph_conn.url, 2, per_set=1, bad_per_set=2)
    event = await first_event(trigger(ids))
    assert event["status"] == "success"
    assert all(c["error_count"] == 2 and c["success_count"] == 1 for c in event["request_sets"].values())


async def test_200_sets_at_most_4_calls_per_round(graph_conn: Any) -> None:
    # Processing paused: what completes, and when, is decided by the test between rounds, not by
    # how fast the emulator's worker thread runs beside the trigger.
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 200, sizes=[1] * 100 + [20] * 100)
    small, big = ids[:100], ids[100:]
    RoundProbe.emu = graph_conn
    RoundProbe.after_round = {
        1: lambda: cancel_sets(graph_conn.url, small),  # 100 sets complete before round 2
        2: lambda: graph_conn.config(async_pace=1000),  # the others complete from round 3 on
    }
    trig = RoundProbe(request_set_ids=ids, poll_interval=0.1, end_time=time.time() + 120)
    event = await first_event(trig, timeout=120)
    assert event["status"] == "success", event["message"]
    rounds = trig.rounds
    assert len(rounds) >= 3, rounds
    assert rounds[0] == {"pending": 200, "http": 4, "get_multi": 4}
    assert rounds[1] == {"pending": 200, "http": 4, "get_multi": 4}
    assert rounds[2] == {"pending": 100, "http": 2, "get_multi": 2}  # completed sets are not read again
    for r in rounds:
        assert r["http"] == r["get_multi"] == -(-r["pending"] // 50), rounds
    assert [r["pending"] for r in rounds] == sorted((r["pending"] for r in rounds), reverse=True)
    assert all(event["request_sets"][i]["canceled_count"] == 1 for i in small)
    assert all(event["request_sets"][i]["success_count"] == 20 for i in big)


async def test_survives_500s_and_throttle_mid_wait(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 3, per_set=2)

    def inject() -> None:
        # 3 server errors, then more than the hook's own 5 retries can absorb, then a throttle burst.
        graph_conn.fault("500", count=3, method="GET")
        graph_conn.fault("500", count=8, method="GET")
        graph_conn.fault("throttle", count=3, method="GET", regain_minutes=1)

    def resume() -> None:
        graph_conn.config(async_pace=200)

    RoundProbe.emu = graph_conn
    RoundProbe.after_round = {1: inject, 3: resume}
    trig = RoundProbe(request_set_ids=ids, poll_interval=0.05, end_time=time.time() + 60)
    event = await first_event(trig)
    assert event["status"] == "success", event["message"]
    faults = graph_conn.counters()["faults_injected"]
    assert faults["500"] == 11
    assert faults["throttle"] >= 3
    assert all(c["success_count"] == 2 for c in event["request_sets"].values())


async def test_timeout_event(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 2, per_set=3)
    end_time = time.time() + 0.6
    event = await first_event(trigger(ids, poll_interval=0.1, end_time=end_time))
    # Never before the end time (the trigger sleeps up to it); how late does not matter.
    assert time.time() >= end_time - 0.01
    assert event["status"] == "timeout"
    assert "2 of 2 request set(s) not completed" in event["message"]
    assert set(event["request_sets"]) == set(ids)
    with pytest.raises(AsyncRequestSetError, match="timed out"):
        event_result(event)


async def test_end_time_in_the_past_times_out_without_http(graph_conn: Any) -> None:
    event = await first_event(trigger(["123"], end_time=time.time() - 1))
    assert event["status"] == "timeout"
    assert graph_conn.http_calls() == 0


async def test_bad_token_is_an_error_event_without_the_token(
    graph_conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ids = create_sets(graph_conn.url, 1)
    bad = "EAAbadBADbad-token-that-is-long-enough-to-mask-0123456789"
    monkeypatch.setenv(CONN_ENV, conn_json(graph_conn.url, token=bad))
    caplog.set_level(logging.DEBUG)
    before = graph_conn.http_calls()
    event = await first_event(trigger(ids, end_time=time.time() + 30))
    assert graph_conn.http_calls() - before == 1  # 190 is final: neither the hook nor the trigger retries
    assert event["status"] == "error"
    assert "190" in event["message"]
    assert bad not in json.dumps(event)
    logs = all_logs(caplog, capfd)
    assert "reading request sets failed" in logs
    assert bad not in logs


async def test_unknown_set_is_an_error_event(graph_conn: Any) -> None:
    event = await first_event(trigger(["424242424242"], end_time=time.time() + 30))
    assert event["status"] == "error"
    assert "424242424242" in event["message"] or "100" in event["message"]


async def test_missing_connection_is_an_error_event(graph_conn: Any) -> None:
    event = await first_event(trigger(["1"], graph_conn_id="no_such_conn", end_time=time.time() + 30))
    assert event["status"] == "error"
    assert "not" in event["message"].lower()


async def test_no_token_in_events_or_logs(
    graph_conn: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    graph_conn.config(async_pace=50)
    ids = create_sets(graph_conn.url, 3, per_set=10, bad_per_set=1)
    graph_conn.fault("500", count=7, method="GET")
    graph_conn.fault("throttle", count=2, method="GET")
    event = await first_event(trigger(ids, fail_on_request_errors=True, end_time=time.time() + 60))
    assert event["status"] == "error"
    assert TEST_TOKEN not in json.dumps(event)
    logs = all_logs(caplog, capfd)
    assert TEST_TOKEN not in logs
    assert "request set(s) done" in logs  # progress lines were logged
    assert "retrying in" in logs  # the trigger's own back-off after the hook gave up


async def test_progress_logged_each_round(
    graph_conn: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    graph_conn.config(async_pace=0)  # the first round sees both sets running, whatever the load
    ids = create_sets(graph_conn.url, 2, per_set=5)
    RoundProbe.emu = graph_conn
    RoundProbe.after_round = {1: lambda: graph_conn.config(async_pace=50)}
    trig = RoundProbe(request_set_ids=ids, poll_interval=0.1, end_time=time.time() + 60)
    event = await first_event(trig, timeout=60)
    assert event["status"] == "success"
    lines = all_logs(caplog, capfd).splitlines()
    overall = [line for line in lines if "request set(s) done" in line]
    assert len(overall) >= 2
    assert "2/2 request set(s) done" in overall[-1]
    assert "of 10" in overall[-1]
    assert any("requests/s" in line for line in overall)
    assert any(f"request set {ids[0]} running" in line for line in lines)
    assert any(f"request set {ids[0]} completed" in line for line in lines)


async def test_on_kill_cancels_pending_sets(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 2, per_set=3)
    trig = trigger(ids, cancel_on_kill=True, end_time=time.time() + 30)
    gen = trig.run()
    task = asyncio.ensure_future(gen.__anext__())
    # Kill it mid-wait: once it has read the sets at least once.
    deadline = time.monotonic() + 60
    while (await asyncio.to_thread(graph_conn.counters))["calls_by_kind"].get("get_multi", 0) < 1:
        assert time.monotonic() < deadline, "the trigger never read its sets"
        await asyncio.sleep(0.02)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await trig.on_kill()
    for set_id in ids:
        data = read_set(graph_conn.url, set_id)
        assert data["canceled_count"] == 3, data


async def test_on_kill_without_flag_cancels_nothing(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 1, per_set=2)
    before = graph_conn.http_calls()
    await trigger(ids).on_kill()
    assert graph_conn.http_calls() == before
    assert read_set(graph_conn.url, ids[0])["canceled_count"] == 0


class BlockingCallLog:
    """Wraps functions that block the calling thread (sleeps, sync HTTP, sync connection reads, loading
    a CA bundle) and records which ones were called *on a running event loop*, and which off it.

    Deterministic where a loop-lag measurement is not: a blocking call on the loop is found whether
    it took 1 ms or 1 s, whatever else loads the machine. (The lag itself is measured by
    ``benchmarks/trigger_loop.py``.)
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.on_loop: list[str] = []
        self.off_loop: list[str] = []
        from airflow.sdk import BaseHook, Connection

        targets: list[tuple[Any, str]] = [
            (time, "sleep"),
            (ssl, "create_default_context"),
            (ssl.SSLContext, "load_verify_locations"),
            (socket, "getaddrinfo"),
            (requests.Session, "request"),
            (BaseHook, "get_connection"),
            (Connection, "get"),
        ]
        for owner, name in targets:
            monkeypatch.setattr(
                owner, name, self._wrap(f"{getattr(owner, '__name__', owner)}.{name}", owner, name)
            )
        extra = Connection.extra_dejson
        monkeypatch.setattr(
            Connection, "extra_dejson", property(self._wrap_fn("Connection.extra_dejson", extra.fget))
        )

    def _wrap(self, label: str, owner: Any, name: str) -> Any:
        original = inspect.getattr_static(owner, name)
        if isinstance(original, classmethod | staticmethod):
            inner = self._wrap_fn(label, original.__func__)
            return type(original)(inner)
        return self._wrap_fn(label, getattr(owner, name))

    def _wrap_fn(self, label: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                self.off_loop.append(label)
            else:
                self.on_loop.append(label)
            return fn(*args, **kwargs)

        return wrapper


async def test_triggers_never_block_the_loop(graph_conn: Any) -> None:
    """40 triggers of 5 sets each on one loop, with latency: every trigger fires its own success
    event with its own counts, and no blocking call ever runs on the event loop (the connection is
    read with ``await``, the CA bundle is loaded in a worker thread, HTTP is httpx's async client)."""
    graph_conn.config(async_pace=20, latency=0.05)
    ids = create_sets(graph_conn.url, 200, per_set=2)  # sync HTTP: before the guard is installed
    _shared_ssl_context.cache_clear()  # so that this run loads the CA bundle again, where it must
    triggers = [trigger(ids[i : i + 5], poll_interval=0.2) for i in range(0, 200, 5)]
    with pytest.MonkeyPatch.context() as patch:
        calls = BlockingCallLog(patch)
        events = await asyncio.gather(*(first_event(t, timeout=120) for t in triggers))
    assert calls.on_loop == [], calls.on_loop
    # The guard was live: the CA bundle was loaded (in a worker thread) during the run.
    assert "ssl.create_default_context" in calls.off_loop, calls.off_loop
    assert [e["status"] for e in events] == ["success"] * 40
    for t, e in zip(triggers, events, strict=True):
        assert sorted(e["request_sets"]) == sorted(t.request_set_ids)
        assert all(
            c == {"total_count": 2, "success_count": 2, "error_count": 0, "canceled_count": 0}
            for c in e["request_sets"].values()
        )
    assert graph_conn.counters()["calls_by_kind"]["get_multi"] >= 40  # one multi-id read per trigger round
