"""TaskStateJournal: the batch journal's layout in a task state store (pure: a dict-backed store).

The journal running inside Airflow's real store, across real task retries against the emulator, is
covered by tests/dags/test_batch_retries.py.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from typing import Any

import pytest

from airflow_fb_async.operators.task_state import (
    INLINE_MAX_CHARS,
    KEY,
    PART_CHARS,
    BatchJournalError,
    TaskStateJournal,
    journal_from_context,
    requests_digest,
)

REQUESTS = [{"method": "POST", "relative_url": "act_1/campaigns", "body": {"name": "a", "objective": "X"}}]


class DictStore:
    """The get/set/delete surface of Airflow's TaskStateStoreAccessor, over a dict; counts writes."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.sets: list[str] = []
        self.fail_on_set: str | None = None

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get(key, default)
        return json.loads(json.dumps(value))  # what comes back is JSON, never the saved object

    def set(self, key: str, value: Any) -> None:
        if self.fail_on_set is not None and key.startswith(self.fail_on_set):
            raise RuntimeError("store unavailable")
        assert len(json.dumps(value)) < 65_535, key  # Airflow's default max_value_storage_bytes
        self.values[key] = json.loads(json.dumps(value))
        self.sets.append(key)

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def big_state(n: int, settled: int) -> dict[str, Any]:
    """A state shaped like the engine's: a status letter per entry, results growing at the end."""
    digest = hashlib.sha256
    return {
        "v": 1,
        "fp": "f" * 32,
        "st": "S" * settled + "." * (n - settled),
        "res": {str(i): [200, {"id": digest(str(i).encode()).hexdigest()}] for i in range(settled)},
    }


def test_digest_ignores_key_order_and_sends_dates_as_iso() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    a = [{"method": "POST", "relative_url": "x", "body": {"a": 1, "start_time": when}}]
    b = [{"body": {"start_time": when.isoformat(), "a": 1}, "relative_url": "x", "method": "POST"}]
    assert requests_digest(a) == requests_digest(b)
    assert requests_digest(a) != requests_digest([{**a[0], "relative_url": "y"}])


def test_small_state_is_stored_inline_and_loaded_back() -> None:
    store = DictStore()
    TaskStateJournal(store, REQUESTS).save({"calls": [1, 2], "done": {"0": [200, {"id": "1"}]}})
    assert set(store.values) == {KEY}
    assert store.values[KEY]["state"]["calls"] == [1, 2]
    assert store.values[KEY]["sections"] == {}
    assert TaskStateJournal(store, REQUESTS).load() == {"calls": [1, 2], "done": {"0": [200, {"id": "1"}]}}


def test_nothing_saved_loads_none() -> None:
    assert TaskStateJournal(DictStore(), REQUESTS).load() is None


def test_other_requests_start_afresh_and_drop_the_old_journal(caplog: pytest.LogCaptureFixture) -> None:
    store = DictStore()
    TaskStateJournal(store, REQUESTS).save(big_state(5000, 3000))
    assert len(store.values) > 1
    other = [{**REQUESTS[0], "body": {"name": "b", "objective": "X"}}]
    with caplog.at_level(logging.INFO):
        assert TaskStateJournal(store, other).load() is None
    assert "rendered requests differ from those of an earlier try" in caplog.text
    assert store.values == {}


def test_large_state_goes_in_parts_under_the_size_limit_and_round_trips() -> None:
    store = DictStore()
    journal = TaskStateJournal(store, REQUESTS)
    state = big_state(10_000, 10_000)
    journal.save(state)
    assert journal.state_chars > INLINE_MAX_CHARS
    head = store.values[KEY]
    assert head["state"] == {"v": 1, "fp": "f" * 32}  # small values stay readable in the head
    assert set(head["sections"]) == {"st", "res"}
    assert len(head["sections"]["res"]) > 1
    parts = [p for digests in head["sections"].values() for p in digests]
    assert set(store.values) == {KEY} | {f"{KEY}.{p}" for p in parts}
    assert all(len(store.values[f"{KEY}.{p}"]) <= PART_CHARS for p in parts)
    assert TaskStateJournal(store, REQUESTS).load() == state


def test_growing_state_rewrites_only_the_parts_that_changed() -> None:
    store = DictStore()
    journal = TaskStateJournal(store, REQUESTS)
    journal.save(big_state(10_000, 9_000))
    first = store.values[KEY]["sections"]["res"]
    assert len(first) >= 3
    store.sets.clear()
    journal.save(big_state(10_000, 9_050))
    sections = store.values[KEY]["sections"]
    # The status letters' part, the results' changed tail part(s) and the head: not every part again.
    assert store.sets[-1] == KEY
    assert f"{KEY}.{sections['st'][0]}" in store.sets
    assert len(store.sets) <= 4 < len(sections["res"]) + 2
    assert first[0] == sections["res"][0]
    # Parts the head no longer lists are gone; those it lists are there.
    listed = {f"{KEY}.{p}" for digests in sections.values() for p in digests}
    assert {k for k in store.values if k != KEY} == listed
    assert TaskStateJournal(store, REQUESTS).load() == big_state(10_000, 9_050)


def test_a_save_that_fails_midway_leaves_the_previous_state_readable() -> None:
    store = DictStore()
    journal = TaskStateJournal(store, REQUESTS)
    before = big_state(10_000, 4_000)
    journal.save(before)
    store.fail_on_set = KEY  # parts and head alike
    with pytest.raises(RuntimeError):
        journal.save(big_state(10_000, 8_000))
    assert TaskStateJournal(store, REQUESTS).load() == before


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda s: s.values.__setitem__(KEY, "garbage"), "head of type str"),
        (lambda s: s.values[KEY].__setitem__("v", 99), "head format 99"),
        (lambda s: s.values.pop(next(k for k in s.values if k != KEY)), "missing or altered"),
        (lambda s: s.values.__setitem__(next(k for k in s.values if k != KEY), "AAAA"), "missing or altered"),
    ],
)
def test_a_damaged_journal_fails_the_task_without_guessing(damage: Any, why: str) -> None:
    store = DictStore()
    TaskStateJournal(store, REQUESTS).save(big_state(10_000, 5_000))
    damage(store)
    with pytest.raises(BatchJournalError, match=why) as info:
        TaskStateJournal(store, REQUESTS).load()
    assert "delete the task state keys 'fb_batch_journal'" in str(info.value)


def test_without_a_store_no_journal_and_an_info_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.batchop")
    with caplog.at_level(logging.INFO, logger="test.batchop"):
        assert journal_from_context({}, REQUESTS, logger) is None
    assert "no task_state_store" in caplog.text
    assert "retry of this task may resend requests" in caplog.text
    assert isinstance(
        journal_from_context({"task_state_store": DictStore()}, REQUESTS, logger), TaskStateJournal
    )
