"""Waiting in tests: poll for a state with a generous deadline, never for an amount of time to pass.

A deadline here is a safety net against a hang, not a timing assumption: it is long enough that
a loaded 2-core machine never reaches it while the awaited state is coming, and reaching it fails
with a message naming what was awaited and the last state seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import requests

from tests.conftest import TEST_TOKEN
from tests.emu_admin import EmulatorAdmin

T = TypeVar("T")

DEADLINE = 60.0
SET_FIELDS = "id,is_completed,total_count,success_count,error_count,canceled_count"


def wait_for(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    what: str,
    timeout: float = DEADLINE,
    interval: float = 0.02,
) -> T:
    """Call ``probe`` until ``done(value)``; return that value, or fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        seen = probe()
        if done(seen):
            return seen
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}; last seen: {seen!r}")
        time.sleep(interval)


async def async_wait_for(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    what: str,
    timeout: float = DEADLINE,
    interval: float = 0.02,
) -> T:
    """:func:`wait_for` for a coroutine probe, inside a running event loop (awaits between probes)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = await probe()
        if done(seen):
            return seen
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}; last seen: {seen!r}")
        await asyncio.sleep(interval)


def read_set(emu: EmulatorAdmin, set_id: str, fields: str = SET_FIELDS) -> dict[str, Any]:
    """One plain-HTTP single-object read of a request set (token in a header, never in a URL)."""
    resp = requests.get(
        f"{emu.url}/v25.0/{set_id}",
        params={"fields": fields},
        headers={"Authorization": f"OAuth {TEST_TOKEN}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    view: dict[str, Any] = resp.json()
    return view


def wait_done(emu: EmulatorAdmin, *set_ids: str, timeout: float = DEADLINE) -> dict[str, dict[str, Any]]:
    """Wait until every set reports ``is_completed`` (single-object reads); return each set's view."""
    return {
        set_id: wait_for(
            functools.partial(read_set, emu, set_id),
            lambda view: bool(view.get("is_completed")),
            f"request set {set_id} to complete",
            timeout,
        )
        for set_id in set_ids
    }


@contextlib.contextmanager
def paused_until_read(emu: EmulatorAdmin, reads: int) -> Iterator[None]:
    """Keep async request sets paused until the emulator has served ``reads`` multi-id reads, then
    let them run (pace 1000): the code under test finds them pending that many times, however slow
    the machine (instead of betting that it reads before a slow pace finishes them)."""
    emu.config(async_pace=0)

    def release() -> None:
        try:
            wait_for(
                lambda: emu.counters()["calls_by_kind"]["get_multi"],
                lambda n: n >= reads,
                f"{reads} set read(s)",
            )
        finally:  # never leave the code under test waiting; a missing read fails the test's own checks
            emu.config(async_pace=1000)

    releaser = threading.Thread(target=release, name="paused-until-read")
    releaser.start()
    try:
        yield
    finally:
        releaser.join()
