"""Waiting on Graph's asynchronous work: the one home for it.

Every waiter (the trigger, the sensor, the submit operator's ``wait_for_completion``) uses these
modules, so they read, decide, report and fail the same way:

- :mod:`~airflow_fb_async.waiting.ids`: reading ids from whatever a template or an XCom rendered;
- :mod:`~airflow_fb_async.waiting.events`: the event vocabulary and the summaries;
- :mod:`~airflow_fb_async.waiting.errors`: which read errors are ridden out, the back-off, error texts;
- :mod:`~airflow_fb_async.waiting.progress`: progress lines, logged on change;
- :mod:`~airflow_fb_async.waiting.sets`: the round check, the missing-set and finish rules, the cancel
  loop (``SetWait``);
- :mod:`~airflow_fb_async.waiting.poller`: the shared poller (one per event loop, connection and
  kind; every trigger on a triggerer's loop polls in shared multi-id rounds).

This package module stays light: a trigger module imports it on the triggerer's loop.
"""

from __future__ import annotations

import asyncio
import importlib
import sys

#: The module of the async hook (and of ``requests``, ``certifi``...): never imported on the loop.
HOOK_MODULE = "airflow_fb_async.hooks.graph"


async def import_off_loop(*modules: str) -> None:
    """Import ``modules`` in a worker thread unless already loaded: a triggerer imports a trigger's
    module on its event loop, and a first import of the hook stack takes hundreds of milliseconds."""
    missing = [name for name in modules if name not in sys.modules]
    if missing:
        await asyncio.to_thread(lambda: [importlib.import_module(name) for name in missing])
