"""The waiting package's pure parts: id parsing, summaries, the event vocabulary, error texts, progress
lines and the round check's rules (no HTTP: these are the decisions every waiter shares)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_fb_async.exceptions import AsyncRequestSetError, GraphAPIError, GraphInputError
from airflow_fb_async.hooks.scrub import Scrubber
from airflow_fb_async.waiting.errors import describe_error, nonexistent_ids
from airflow_fb_async.waiting.events import event_result, make_event, summarize_sets
from airflow_fb_async.waiting.ids import normalize_set_ids
from airflow_fb_async.waiting.progress import ProgressTracker
from airflow_fb_async.waiting.sets import SetWait, settle
from tests.conftest import TEST_TOKEN

LOG = logging.getLogger("tests.waiting")


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
    assert info.value.status == status
    assert info.value.request_sets == SUMMARY
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


def test_settle_applies_the_finish_rule_to_a_success_event() -> None:
    event = make_event("success", "ok", SUMMARY)
    assert settle(event, False, LOG) == SUMMARY
    with pytest.raises(
        AsyncRequestSetError, match=r"2 of 5 request\(s\) ended in error in request set\(s\) 7"
    ):
        settle(event, True, LOG)


def test_describe_error_uses_the_hook_scrubber() -> None:
    exc = GraphAPIError(
        f"GET http://h/v25.0/?ids=1&access_token={TEST_TOKEN} failed; Authorization: OAuth {TEST_TOKEN}",
        code=2,
        http_status=500,
    )
    for scrub in (Scrubber([TEST_TOKEN]), None):  # the hook's, or the generic one
        text = describe_error(exc, scrub)
        assert TEST_TOKEN not in text
        assert text.startswith("GraphAPIError (code 2, HTTP 500): ")
    assert len(describe_error(RuntimeError("x" * 1000))) < 250


def test_nonexistent_ids_reads_graph_803() -> None:
    exc = GraphAPIError("(#803) Some of the aliases you requested do not exist: 11,33", code=803)
    assert nonexistent_ids(exc, ["11", "22", "33"]) == {"11", "33"}
    assert nonexistent_ids(GraphAPIError("(#100) bad", code=100), ["11"]) == set()


# --------------------------------------------------------------------------------------------------
# the round check (SetWait) and progress lines
# --------------------------------------------------------------------------------------------------


def _set(done: bool, success: int = 0, total: int = 2) -> dict[str, Any]:
    return {
        "is_completed": done,
        "total_count": total,
        "success_count": success,
        "initial_count": total - success,
    }


def test_a_set_missing_from_the_answer_ends_the_wait_as_not_found() -> None:
    wait = SetWait(["1", "2"], LOG)
    event = wait.check({"1": _set(False)})  # Graph's answer lacks set 2
    assert event is not None
    assert event["status"] == "error"
    assert event["message"] == "request set(s) not found: 2"
    with pytest.raises(AsyncRequestSetError, match="not found: 2"):
        event_result(event)


def test_sets_named_missing_end_the_wait_as_not_found() -> None:
    event = SetWait(["1", "2"], LOG).check({"1": _set(False), "2": _set(False)}, missing=["2"])
    assert event is not None
    assert event["message"] == "request set(s) not found: 2"


def test_round_check_finishes_when_every_set_is_completed() -> None:
    wait = SetWait(["1", "2"], LOG)
    assert wait.check({"1": _set(True, 2), "2": _set(False, 1)}) is None
    assert wait.pending == ["2"]
    event = wait.check({"2": _set(True, 2)})  # completed sets are not read again
    assert event is not None
    assert event["status"] == "success"
    assert event["request_sets"]["1"]["success_count"] == 2


def test_progress_lines_only_on_change_or_after_the_quiet_interval() -> None:
    tracker = ProgressTracker(["1"], quiet_interval=60)
    tracker.update({"1": _set(False, 0)})
    assert tracker.lines([], now=0.0)  # the first round always logs
    tracker.update({"1": _set(False, 0)})
    assert tracker.lines([], now=10.0) == []  # nothing moved, 10 s later: quiet
    tracker.update({"1": _set(False, 1)})
    moved = tracker.lines([], now=20.0)
    assert any("request set 1 running: 1 succeeded" in line for line in moved)
    tracker.update({"1": _set(False, 1)})
    assert tracker.lines([], now=79.0) == []
    quiet = tracker.lines([], now=80.0)  # 60 s after the last lines: a "still waiting" line
    assert len(quiet) == 1
    assert quiet[0].startswith("still waiting: 0/1 request set(s) done")
