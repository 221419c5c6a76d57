"""One rule for a request set that Graph does not return, in every waiter, against the emulator.

A set missing from Graph's answer (or named as non-existent, code 803) ends the wait at once with
"request set(s) not found: <ids>". Before, the three waiters disagreed: the submit operator's
non-deferrable wait filled the set with ``{}`` and waited until its timeout (forever without one),
the sensor raised, the trigger emitted an error event. The trigger's cases live in
``tests/triggers/test_async_request_set.py`` (``test_unknown_set_ends_only_its_own_trigger``,
``test_set_gone_mid_wait_is_not_found``).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_fb_async.exceptions import AsyncRequestSetError
from tests.operators.test_async_batch import ctx, simple, submit
from tests.sensors.test_async_request_set import sensor
from tests.triggers.test_async_request_set import create_sets
from tests.waits import wait_for

UNKNOWN = "424242424242"


def test_sensor_poke_fails_on_an_unknown_set(graph_conn: Any) -> None:
    ids = create_sets(graph_conn.url, 1)
    with pytest.raises(
        AsyncRequestSetError, match=f"failed: request set\\(s\\) not found: {UNKNOWN} "
    ) as info:
        sensor([ids[0], UNKNOWN], deferrable=False).poke({})
    assert "[2 request set(s), 1 request(s)" in str(info.value)  # the set that exists was read again


def test_deferrable_sensor_fails_before_deferring_on_an_unknown_set(graph_conn: Any) -> None:
    # The check before deferring applies the same rule: no trigger is created for a set that is gone.
    with pytest.raises(AsyncRequestSetError, match=f"not found: {UNKNOWN}"):
        sensor([UNKNOWN], deferrable=True).execute({})
    assert graph_conn.counters()["calls_by_kind"]["get_multi"] == 1


def test_submit_wait_without_timeout_fails_when_its_sets_vanish(graph_conn: Any) -> None:
    """Non-deferrable ``wait_for_completion`` with ``timeout=None``: sets that disappear mid-wait end
    the wait with "not found" (it used to poll them as ``{}`` forever)."""
    graph_conn.config(async_pace=0)
    op = submit(requests=simple(2), wait_for_completion=True, timeout=None, poll_interval=0.05)
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            op.execute(ctx(run_id="vanish"))
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    polls = wait_for(
        lambda: graph_conn.counters()["calls_by_kind"].get("get_multi", 0),
        lambda n: n >= 2 or not worker.is_alive(),
        "the operator's first check and one poll of its sets",
    )
    assert polls >= 2, outcome  # else the operator ended before it polled
    (set_id,) = op.request_set_ids
    graph_conn.reset()  # every object is gone: the next read names the set as non-existent
    worker.join(60)
    assert not worker.is_alive(), "the wait went on after its set was gone"
    error = outcome.get("error")
    assert isinstance(error, AsyncRequestSetError), error
    assert f"request set(s) not found: {set_id}" in str(error)
