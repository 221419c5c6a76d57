"""AsyncRequestSetTrigger against the emulator over HTTP (no mocked transport)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import json
import logging
import socket
import ssl
import time
from typing import Any

import httpx
import pytest
import requests

from airflow_fb_async.exceptions import AsyncRequestSetError
from airflow_fb_async.hooks.graph_async import _shared_ssl_context
from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger
from airflow_fb_async.waiting.events import event_result
from airflow_fb_async.waiting.poller import (
    DELIVERY_SLICE,
    PollerKey,
    RoundStats,
    SharedPoller,
    open_hook_reader,
    shared_poller,
)
from airflow_fb_async.waiting.sets import REQUEST_SET_KIND
from tests.conftest import CONN_ENV, TEST_TOKEN, conn_json
from tests.waits import read_set, wait_for

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


class RoundWatch:
    """Observes the shared poller of the running loop: per round, the poller's own figures and the
    emulator's count of multi-id reads during it; runs a callback (in a thread, so sync HTTP is fine)
    after a given round, before that round's results reach the triggers."""

    def __init__(self, emu: Any, after: dict[int, Any] | None = None) -> None:
        self.emu = emu
        self.after = after or {}
        self.rounds: list[dict[str, Any]] = []
        #: The poller's delivery slice counter as each round began (before its results went out).
        self.slices_at: list[int] = []
        self.poller: SharedPoller | None = None
        self._get_multi = 0
        self._joins: asyncio.Future[None] | None = None

    async def attach(self, members: int = 1, conn_id: str = "facebook_graph_default") -> SharedPoller:
        """Hook into the poller the triggers of this loop will join (created here), whose first read
        waits until ``members`` triggers have joined: triggers started together then share their
        first round whatever the machine's load (a running triggerer converges to shared rounds
        within two rounds; the test wants the exact first one)."""
        self._get_multi = await self._count()
        joined = asyncio.Event()

        async def open_when_joined(key: PollerKey) -> Any:
            await joined.wait()
            return await open_hook_reader(key)

        poller = self.poller = shared_poller(conn_id, None, REQUEST_SET_KIND, open_reader=open_when_joined)
        poller.observers.append(self._observe)

        async def watch_joins() -> None:
            while len(poller.members) < members:
                await asyncio.sleep(0.01)
            joined.set()

        self._joins = asyncio.ensure_future(watch_joins())
        return poller

    async def _count(self) -> int:
        counters = await asyncio.to_thread(self.emu.counters)
        return int(counters["calls_by_kind"].get("get_multi", 0))

    def slices_per_round(self) -> list[int]:
        """How many delivery slices (loop iterations waking members) each round's results took."""
        assert self.poller is not None
        marks = [*self.slices_at, self.poller.slices]
        return [after - before for before, after in itertools.pairwise(marks)]

    async def _observe(self, stats: RoundStats) -> None:
        assert self.poller is not None
        self.slices_at.append(self.poller.slices)
        count = await self._count()
        self.rounds.append(
            {
                "members": stats.members,
                "ids": stats.ids,
                "calls": stats.calls,
                "get_multi": count - self._get_multi,
                "failed": stats.failed,
            }
        )
        callback = self.after.get(stats.index)
        if callback is not None:
            await asyncio.to_thread(callback)
        self._get_multi = await self._count()


# --------------------------------------------------------------------------------------------------
# serialization (no HTTP; the shared helpers are tested in tests/waiting/test_events.py)
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
    watch = RoundWatch(
        graph_conn,
        after={
            1: lambda: cancel_sets(graph_conn.url, small),  # 100 sets complete before round 2
            2: lambda: graph_conn.config(async_pace=1000),  # the others complete from round 3 on
        },
    )
    await watch.attach()
    trig = trigger(ids, poll_interval=0.1, end_time=time.time() + 120)
    event = await first_event(trig, timeout=120)
    assert event["status"] == "success", event["message"]
    rounds = watch.rounds
    assert len(rounds) >= 3, rounds
    assert rounds[0] == {"members": 1, "ids": 200, "calls": 4, "get_multi": 4, "failed": False}
    assert rounds[1]["ids"] == 200
    assert rounds[1]["get_multi"] == 4
    assert rounds[2]["ids"] == 100
    assert rounds[2]["get_multi"] == 2
    for r in rounds:
        assert r["get_multi"] == r["calls"] == -(-r["ids"] // 50), rounds
    assert [r["ids"] for r in rounds] == sorted((r["ids"] for r in rounds), reverse=True)
    assert all(event["request_sets"][i]["canceled_count"] == 1 for i in small)
    assert all(event["request_sets"][i]["success_count"] == 20 for i in big)


async def _shared_rounds(graph_conn: Any, k: int) -> None:
    """K triggers with one set each on one loop: one shared poller, ceil(K/50) calls a round, and every
    trigger its own event with its own counts."""
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, k, sizes=[1, 2] * (k // 2))
    half = ids[: k // 2]
    watch = RoundWatch(
        graph_conn,
        after={
            1: lambda: cancel_sets(graph_conn.url, half),  # half complete (canceled) before round 2
            2: lambda: graph_conn.config(async_pace=1000),  # the rest runs from round 3 on
        },
    )
    poller = await watch.attach(members=k)
    triggers = [trigger([i], poll_interval=0.1, end_time=time.time() + 300) for i in ids]
    events = await asyncio.gather(*(first_event(t, timeout=300) for t in triggers))
    rounds = watch.rounds
    assert rounds[0] == {
        "members": k,
        "ids": k,
        "calls": -(-k // 50),
        "get_multi": -(-k // 50),
        "failed": False,
    }
    assert rounds[1]["ids"] == k  # round 1 saw every set pending
    assert rounds[2]["ids"] == k - len(half)  # the canceled ones are not read again
    for r in rounds:
        assert r["get_multi"] == r["calls"] == -(-r["ids"] // 50), rounds
    assert poller.calls == sum(r["get_multi"] for r in rounds)
    # No round hands out its results in one go: at most DELIVERY_SLICE members are woken per loop
    # iteration (1,000 triggers: 40 slices, with a yield to the loop between two).
    assert watch.slices_per_round() == [-(-r["members"] // DELIVERY_SLICE) for r in rounds]
    assert watch.slices_per_round()[0] == -(-k // DELIVERY_SLICE)
    for set_id, event in zip(ids, events, strict=True):
        assert event["status"] == "success", event
        assert list(event["request_sets"]) == [set_id]  # its own event, its own set only
    sizes = {i: size for i, size in zip(ids, [1, 2] * (k // 2), strict=True)}
    for set_id, event in zip(ids, events, strict=True):
        counts = event["request_sets"][set_id]
        assert counts["total_count"] == sizes[set_id]
        key = "canceled_count" if set_id in half else "success_count"
        assert counts[key] == sizes[set_id], (set_id, counts)


async def test_200_triggers_share_rounds_of_4_calls(graph_conn: Any) -> None:
    await _shared_rounds(graph_conn, 200)


async def test_1000_triggers_share_rounds_of_20_calls(graph_conn: Any) -> None:
    await _shared_rounds(graph_conn, 1000)


async def test_cancelled_trigger_leaves_the_others_alone(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 3, per_set=2)
    stay_a, leaver, stay_b = (trigger([i], poll_interval=0.05, end_time=time.time() + 60) for i in ids)
    tasks: list[asyncio.Task[Any]] = []
    watch = RoundWatch(graph_conn, after={4: lambda: graph_conn.config(async_pace=1000)})

    async def cancel_leaver(stats: RoundStats) -> None:
        if stats.index == 2:
            tasks[1].cancel()  # reassigned or killed mid-wait: its task is cancelled

    poller = await watch.attach(members=3)
    poller.observers.append(cancel_leaver)
    tasks.extend(asyncio.ensure_future(first_event(t, timeout=60)) for t in (stay_a, leaver, stay_b))
    first, second = await asyncio.gather(tasks[0], tasks[2])
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    assert first["status"] == second["status"] == "success"
    assert [r["ids"] for r in watch.rounds[:2]] == [3, 3]
    # Round 3 may start before the cancellation has reached the leaver's task; round 4 cannot.
    assert [r["ids"] for r in watch.rounds[3:]] == [2] * len(watch.rounds[3:]) != []
    reads = [c for c in graph_conn.calls() if c["kind"] == "get_multi"]
    assert len(reads) == len(watch.rounds)
    assert all(ids[1] not in json.dumps(c["query"]) for c in reads[3:])
    assert all(ids[0] in json.dumps(c["query"]) for c in reads)  # the others kept being read
    assert read_set(graph_conn, ids[1])["canceled_count"] == 0  # no on_kill: nothing canceled


async def test_unknown_set_ends_only_its_own_trigger(graph_conn: Any) -> None:
    # Graph fails a whole multi-id read naming the ids that do not exist (code 803): the poller pins
    # it on the trigger that asked for them and reads the others again in the same round.
    ids = create_sets(graph_conn.url, 2, per_set=1)
    watch = RoundWatch(graph_conn)
    await watch.attach(members=3)
    bad = trigger(["424242424242"], end_time=time.time() + 30)
    good = [trigger([i], end_time=time.time() + 30) for i in ids]
    events = await asyncio.gather(*(first_event(t) for t in [good[0], bad, good[1]]))
    assert events[1]["status"] == "error"
    assert events[1]["message"] == "request set(s) not found: 424242424242"
    assert events[0]["status"] == events[2]["status"] == "success"
    assert watch.rounds[0]["ids"] == 3
    assert watch.rounds[0]["get_multi"] == 2  # the failed read, then the two good ids again


async def test_set_gone_mid_wait_is_not_found(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 2, per_set=2)
    watch = RoundWatch(graph_conn, after={1: graph_conn.reset})  # the sets vanish after round 1
    await watch.attach()
    event = await first_event(trigger(ids, poll_interval=0.05, end_time=None))  # no timeout to save it
    assert event["status"] == "error"
    assert event["message"] == f"request set(s) not found: {ids[0]}, {ids[1]}"


async def test_errors_are_ridden_out_once_for_all_triggers(
    graph_conn: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # More 5xx than the hook's own 5 retries: the poller backs off once for every trigger (not once
    # per trigger), then reads again; every trigger logs the failure in its own log.
    caplog.set_level(logging.WARNING)
    ids = create_sets(graph_conn.url, 100, per_set=1)
    cancel_sets(graph_conn.url, ids)  # all completed: the first good read ends every wait
    graph_conn.fault("500", count=8, method="GET", path_regex="ids=")
    watch = RoundWatch(graph_conn)
    await watch.attach(members=100)
    triggers = [trigger([i], poll_interval=0.05, end_time=time.time() + 60) for i in ids]
    events = await asyncio.gather(*(first_event(t) for t in triggers))
    assert [e["status"] for e in events] == ["success"] * 100
    assert graph_conn.counters()["faults_injected"]["500"] == 8
    assert [r["failed"] for r in watch.rounds] == [True, False]
    assert sum(r["get_multi"] for r in watch.rounds) == 8 + 2  # 6 + 2 failed attempts, then 2 reads
    assert all_logs(caplog, capfd).count("Reading request sets failed") == 100  # one line per trigger


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

    watch = RoundWatch(graph_conn, after={1: inject, 3: resume})
    await watch.attach()
    event = await first_event(trigger(ids, poll_interval=0.05, end_time=time.time() + 60))
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
    # 190 is final for the hook; the poller reads the connection again once (a token rotated since
    # it was read) and retries, then the error ends the wait.
    assert graph_conn.http_calls() - before == 2
    assert event["status"] == "error"
    assert "190" in event["message"]
    assert bad not in json.dumps(event)
    logs = all_logs(caplog, capfd)
    assert "reading request sets failed" in logs
    assert bad not in logs


async def test_rotated_token_is_picked_up_by_a_running_poller(
    graph_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-lived shared poller read the connection when it started; the token was rotated since
    (the old one revoked): its first 190 makes it read the connection again, and the wait goes on."""
    ids = create_sets(graph_conn.url, 1)
    revoked = "EAArevoked-token-that-is-long-enough-to-mask-0123456789"
    monkeypatch.setenv(CONN_ENV, conn_json(graph_conn.url, token=revoked))

    async def open_then_rotate(key: PollerKey) -> Any:
        reader = await open_hook_reader(key)  # reads the revoked token
        monkeypatch.setenv(CONN_ENV, conn_json(graph_conn.url))  # rotated in the connection
        return reader

    shared_poller("facebook_graph_default", None, REQUEST_SET_KIND, open_reader=open_then_rotate)
    event = await first_event(trigger(ids, end_time=time.time() + 30))
    assert event["status"] == "success", event
    calls = [c for c in graph_conn.calls() if c["kind"] == "get_multi"]
    assert [c["status"] for c in calls] == [400, 200]  # 190 with the old token, then read again


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


async def test_progress_logged_on_change_only(
    graph_conn: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    graph_conn.config(async_pace=0)  # rounds 1-5 see both sets running with the same counts
    ids = create_sets(graph_conn.url, 2, per_set=5)
    watch = RoundWatch(graph_conn, after={5: lambda: graph_conn.config(async_pace=50)})
    await watch.attach()
    event = await first_event(trigger(ids, poll_interval=0.05, end_time=time.time() + 60), timeout=60)
    assert event["status"] == "success"
    lines = all_logs(caplog, capfd).splitlines()
    overall = [line for line in lines if "request set(s) done" in line]
    assert len(watch.rounds) >= 6
    # Round 1 logs; rounds 2-5 change nothing and are quiet; every later line follows a change.
    assert len(overall) <= len(watch.rounds) - 4, (len(overall), len(watch.rounds))
    assert not any(line.startswith("still waiting") for line in overall)
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
    await asyncio.to_thread(
        wait_for,
        lambda: graph_conn.counters()["calls_by_kind"].get("get_multi", 0),
        lambda n: n >= 1,
        "the trigger's first read of its sets",
    )
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await trig.on_kill()
    for set_id in ids:
        data = read_set(graph_conn, set_id)
        assert data["canceled_count"] == 3, data


async def test_on_kill_without_flag_cancels_nothing(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 1, per_set=2)
    before = graph_conn.http_calls()
    await trigger(ids).on_kill()
    assert graph_conn.http_calls() == before
    assert read_set(graph_conn, ids[0])["canceled_count"] == 0


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
        from airflow.providers.common.compat.sdk import BaseHook, Connection  # 2.x homes on 2.11

        targets: list[tuple[Any, str]] = [
            (time, "sleep"),
            (ssl, "create_default_context"),
            (ssl.SSLContext, "load_verify_locations"),
            (socket, "getaddrinfo"),
            (requests.Session, "request"),
            (httpx.AsyncClient, "__init__"),
            (BaseHook, "get_connection"),
            *([(Connection, "get")] if hasattr(Connection, "get") else []),  # Airflow 3 only
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
    watch = RoundWatch(graph_conn)
    await watch.attach(members=40)
    with pytest.MonkeyPatch.context() as patch:
        calls = BlockingCallLog(patch)
        events = await asyncio.gather(*(first_event(t, timeout=120) for t in triggers))
    assert calls.on_loop == [], calls.on_loop
    # The guard was live: the CA bundle was loaded and the client built (in a worker thread).
    assert "ssl.create_default_context" in calls.off_loop, calls.off_loop
    assert "AsyncClient.__init__" in calls.off_loop, calls.off_loop
    assert [e["status"] for e in events] == ["success"] * 40
    for t, e in zip(triggers, events, strict=True):
        assert sorted(e["request_sets"]) == sorted(t.request_set_ids)
        assert all(
            c == {"total_count": 2, "success_count": 2, "error_count": 0, "canceled_count": 0}
            for c in e["request_sets"].values()
        )
    # One shared poller: 4 multi-id reads a round for the 40 triggers' 200 sets, not 40.
    assert watch.rounds[0]["get_multi"] == 4
    assert all(r["get_multi"] == -(-r["ids"] // 50) for r in watch.rounds)


async def test_one_deadline_per_wait_not_one_per_round(
    graph_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 triggers with an end time wait 4 rounds or more: each arms its deadline once for its whole
    wait. A timer per round and trigger is an object that each of hundreds of waiting triggers keeps
    alive across a round (promoted by young collections, bringing full ones closer)."""
    from airflow_fb_async.waiting import rounds

    armed: list[float | None] = []
    real_timeout = rounds.timeout

    def counting_timeout(delay: float | None) -> Any:
        armed.append(delay)
        return real_timeout(delay)

    monkeypatch.setattr(rounds, "timeout", counting_timeout)
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 20)
    watch = RoundWatch(graph_conn, after={3: lambda: graph_conn.config(async_pace=1000)})
    await watch.attach(members=20)
    triggers = [trigger([i], poll_interval=0.05, end_time=time.time() + 120) for i in ids]
    events = await asyncio.gather(*(first_event(t, timeout=120) for t in triggers))
    assert [e["status"] for e in events] == ["success"] * 20
    assert len(watch.rounds) >= 4, watch.rounds
    assert len(armed) == 20, len(armed)
    assert all(delay is not None and 0 < delay <= 120 for delay in armed), armed
