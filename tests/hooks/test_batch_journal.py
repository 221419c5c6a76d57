"""A batch that cannot go on, and a later try that sends only what is not settled (issue 12.3, 12.4).

Tries die at any instant: the journal's ``save`` raises a process-killing exception at a chosen
point, then a second run with the same journal must leave exact object counts in the emulator.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_fb_async.exceptions import GraphAuthError, GraphBatchError
from airflow_fb_async.hooks.batch_journal import MemoryJournal
from airflow_fb_async.hooks.graph import GraphHook

if TYPE_CHECKING:
    from tests.emu_admin import EmulatorAdmin

FAST: dict[str, Any] = {"round_backoff": 0.01}


class WorkerKilled(BaseException):
    """Stands for the worker process dying (not an Exception: nothing may swallow it)."""


class JsonJournal:
    """Keeps the state as JSON text (as a task state store would); can die on the k-th save."""

    def __init__(self, die_on_save: int | None = None, keep_fatal_save: bool = False) -> None:
        self.text: str | None = None
        self.saves = 0
        self.die_on_save = die_on_save
        self.keep_fatal_save = keep_fatal_save

    def load(self) -> dict[str, Any] | None:
        return None if self.text is None else json.loads(self.text)

    def save(self, state: dict[str, Any]) -> None:
        self.saves += 1
        fatal = self.saves == self.die_on_save
        if not fatal or self.keep_fatal_save:
            self.text = json.dumps(state)
        if fatal:
            self.die_on_save = None
            raise WorkerKilled(f"killed at save {self.saves}")


def camp(name: str) -> dict[str, str]:
    return {"name": name, "objective": "OUTCOME_TRAFFIC"}


def create(title: str, **kw: Any) -> dict[str, Any]:
    return {"method": "POST", "relative_url": "act_1/campaigns", "body": camp(title), **kw}


def batch_sizes(emu: EmulatorAdmin) -> list[int]:
    return [c["batch_size"] for c in emu.calls() if c["kind"] == "batch"]


def campaign_names(emu: EmulatorAdmin) -> list[str]:
    return sorted(o["name"] for o in emu.objects("campaign"))


def test_token_rejected_on_the_third_call(graph_conn: EmulatorAdmin) -> None:
    """150 creates; the token is refused on the 3rd call: 100 results kept, 50 None, 100 objects."""
    journal = JsonJournal()
    reqs = [create(f"c{i:03d}") for i in range(150)]
    graph_conn.fault("token_rejected", after=2)  # the token expires after two calls
    with pytest.raises(GraphBatchError) as info:
        GraphHook().batch(reqs, max_concurrency=1, journal=journal, **FAST)
    err = info.value
    assert isinstance(err.cause, GraphAuthError)
    assert err.results is not None
    assert len(err.results) == 150
    assert [r["code"] for r in err.results[:100] if r is not None] == [200] * 100
    assert err.results[100:] == [None] * 50
    assert "100 of 150 entries settled" in str(err)
    assert len(graph_conn.objects("campaign")) == 100
    first_ids = [r["body"]["id"] for r in err.results[:100] if r is not None]

    # The next try (token renewed) sends only the 50 never done; earlier results come back as they were.
    before = len(batch_sizes(graph_conn))
    results = GraphHook().batch(reqs, max_concurrency=1, journal=journal, **FAST)
    assert batch_sizes(graph_conn)[before:] == [50]
    assert [r["code"] for r in results] == [200] * 150
    assert [r["body"]["id"] for r in results[:100]] == first_ids
    assert campaign_names(graph_conn) == [f"c{i:03d}" for i in range(150)]


def test_token_rejected_with_concurrent_calls_keeps_calls_in_flight(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(app_secret="required")
    hook = GraphHook()
    with pytest.raises(GraphBatchError) as info:
        hook.batch([create(f"c{i}") for i in range(120)], max_concurrency=4, **FAST)
    assert info.value.results == [None] * 120
    assert isinstance(info.value.cause, GraphAuthError)
    assert graph_conn.objects("campaign") == []


def mixed_requests(campaign: str) -> list[dict[str, Any]]:
    """Call 1: 50 creates; call 2: 25 creates + 25 updates (repeatable); call 3: 20 creates."""
    reqs = [create(f"a{i:02d}") for i in range(50)]
    reqs += [create(f"b{i:02d}") for i in range(25)]
    reqs += [{"method": "POST", "relative_url": campaign, "body": {"status": "PAUSED"}} for _ in range(25)]
    reqs += [create(f"c{i:02d}") for i in range(20)]
    return reqs


def test_dead_try_after_the_call_went_out(graph_conn: EmulatorAdmin) -> None:
    """Killed after call 2 ran but before its outcome was saved: its creates are 504 next time
    (they ran: never resent), its updates are sent again, call 3 runs once."""
    hook = GraphHook()
    campaign = hook.post("act_1/campaigns", data=camp("target"))["id"]
    reqs = mixed_requests(campaign)
    journal = JsonJournal(die_on_save=4)  # saves: before 1, after 1, before 2, [after 2: dies]
    with pytest.raises(WorkerKilled):
        hook.batch(reqs, max_concurrency=1, journal=journal, **FAST)
    assert batch_sizes(graph_conn) == [50, 50]

    results = hook.batch(reqs, max_concurrency=1, journal=journal, **FAST)
    assert batch_sizes(graph_conn) == [50, 50, 45]  # 25 updates again + the 20 never sent
    codes = [r["code"] for r in results]
    assert codes == [200] * 50 + [504] * 25 + [200] * 25 + [200] * 20
    assert all(r["body"]["error"]["type"] == "BatchEntryAmbiguous" for r in results[50:75])
    # Every create ran exactly once.
    expected = ["target"] + [f"a{i:02d}" for i in range(50)] + [f"b{i:02d}" for i in range(25)]
    assert campaign_names(graph_conn) == sorted(expected + [f"c{i:02d}" for i in range(20)])


def test_dead_try_before_the_call_went_out(graph_conn: EmulatorAdmin) -> None:
    """Killed right after call 2 was marked in flight (it never left): its creates are uncertain for
    the next try and are 504, never sent; nothing is created twice."""
    hook = GraphHook()
    campaign = hook.post("act_1/campaigns", data=camp("target"))["id"]
    reqs = mixed_requests(campaign)
    journal = JsonJournal(die_on_save=3, keep_fatal_save=True)
    with pytest.raises(WorkerKilled):
        hook.batch(reqs, max_concurrency=1, journal=journal, **FAST)
    assert batch_sizes(graph_conn) == [50]
    results = hook.batch(reqs, max_concurrency=1, journal=journal, **FAST)
    assert batch_sizes(graph_conn) == [50, 45]
    assert [r["code"] for r in results] == [200] * 50 + [504] * 25 + [200] * 45
    expected = ["target"] + [f"a{i:02d}" for i in range(50)] + [f"c{i:02d}" for i in range(20)]
    assert campaign_names(graph_conn) == sorted(expected)


def test_references_resolve_from_an_earlier_try(graph_conn: EmulatorAdmin) -> None:
    reqs = [
        create("parent", name="p"),
        {
            "method": "POST",
            "relative_url": "act_1/adsets",
            "body": {"name": "child", "campaign_id": "{result=p:$.id}"},
            "name": "s",
        },
    ]
    journal = JsonJournal(die_on_save=3)  # dies as the 2nd call is about to be marked in flight
    hook = GraphHook()
    with pytest.raises(WorkerKilled):
        hook.batch(reqs, chunk_size=1, max_concurrency=1, journal=journal, **FAST)
    results = hook.batch(reqs, chunk_size=1, max_concurrency=1, journal=journal, **FAST)
    assert batch_sizes(graph_conn) == [1, 1]
    parent = results[0]["body"]["id"]
    assert [o["id"] for o in graph_conn.objects("campaign")] == [parent]
    assert [(o["name"], o["campaign_id"]) for o in graph_conn.objects("adset")] == [("child", parent)]


def test_settled_ambiguous_and_failed_entries_on_the_next_try(graph_conn: EmulatorAdmin) -> None:
    """Succeeded: returned, not resent; 504: not resent; a definite error: sent again."""
    graph_conn.fault("entry_error_after_commit", entries=[2])
    reqs = [create("ok"), {"method": "POST", "relative_url": "act_1/campaigns", "body": {"name": "bad"}}]
    reqs.append(create("lost"))
    journal = JsonJournal()
    hook = GraphHook()
    first = hook.batch(reqs, journal=journal, **FAST)
    assert [r["code"] for r in first] == [200, 400, 504]
    second = hook.batch(reqs, journal=journal, **FAST)
    assert batch_sizes(graph_conn) == [3, 1]
    assert [r["code"] for r in second] == [200, 400, 504]
    assert second[0]["body"] == first[0]["body"]
    assert campaign_names(graph_conn) == ["lost", "ok"]


def test_journal_of_other_requests_is_not_applied(
    graph_conn: EmulatorAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    journal = MemoryJournal()
    hook = GraphHook()
    hook.batch([create("x")], journal=journal, **FAST)
    with caplog.at_level(logging.WARNING, logger="airflow_fb_async.hooks.batch"):
        hook.batch([create("y")], journal=journal, **FAST)
    assert "does not match these requests" in caplog.text
    assert campaign_names(graph_conn) == ["x", "y"]


def test_state_for_10000_entries_is_compact(graph_conn: EmulatorAdmin) -> None:
    n = 10_000
    journal = MemoryJournal()
    with GraphHook() as hook:
        results = hook.batch(
            [{"method": "GET", "relative_url": f"act_{i}?fields=id"} for i in range(n)],
            journal=journal,
            **FAST,
        )
    assert len(results) == n
    assert journal.state is not None
    assert journal.state["st"] == "S" * n
    # One letter per entry plus [code, body] of each: about 36 bytes per settled read here.
    assert len(json.dumps(journal.state)) < 40 * n
    assert journal.saves == 2 * 200 + 1  # before and after each of the 200 calls, and at the end


class BrokenStore:
    """A journal whose store fails (an ordinary error, not a dying process)."""

    def load(self) -> dict[str, Any] | None:
        return None

    def save(self, state: dict[str, Any]) -> None:
        if "S" in state["st"]:
            raise RuntimeError("task state store is down")


def test_an_error_that_stops_the_batch_is_a_batch_error(graph_conn: EmulatorAdmin) -> None:
    reqs = [create(f"c{i}") for i in range(60)]
    with pytest.raises(GraphBatchError) as info:
        GraphHook().batch(reqs, max_concurrency=1, journal=BrokenStore(), **FAST)
    assert isinstance(info.value.cause, RuntimeError)
    results = info.value.results
    assert results is not None
    assert [r is not None for r in results] == [True] * 50 + [False] * 10
    assert len(graph_conn.objects("campaign")) == 50


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"st": "SX"},
        {"st": "S"},
        {"res": {}},  # a succeeded entry without its result
        {"res": {"0": "garbage"}},
        {"res": []},
    ],
)
def test_damaged_state_is_not_applied(graph_conn: EmulatorAdmin, change: dict[str, Any]) -> None:
    reqs = [create("a"), create("b")]
    journal = MemoryJournal()
    hook = GraphHook()
    hook.batch(reqs, journal=journal, **FAST)
    assert journal.state is not None
    assert journal.state["st"] == "SS"
    journal.state = {**journal.state, "st": "S.", **change}
    hook.batch(reqs, journal=journal, **FAST)
    assert batch_sizes(graph_conn) == [2, 2]  # started afresh: both sent again
    assert campaign_names(graph_conn) == ["a", "a", "b", "b"]
