"""Where Airflow's names live, per version: the one module of this package that knows.

Airflow 3 exports the task-author API from ``airflow.sdk``; Airflow 2.11 keeps the same classes at
their 2.x homes (``airflow.hooks.base``, ``airflow.models.baseoperator``, ``airflow.io.path``...).
``apache-airflow-providers-common-compat`` maps each name to whichever home exists, as the official
providers do; every other module of the package imports Airflow names from here, never from
``airflow.sdk`` directly, so supporting another Airflow is a change to this file only.

Also here, for the same reason:

- the async connection reads of triggers. ``Connection.aextra_dejson`` exists from task-sdk 1.3.2
  (Airflow 3.3.2); before that, common-compat reads the connection and its extra in a worker
  thread, never with a blocking call on the triggerer's event loop;
- ``StrEnum`` (Python 3.11+), the only newer-Python name the package needs on Python 3.10.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    BaseHook,
    BaseOperator,
    BaseSensorOperator,
    ObjectStoragePath,
    PokeReturnValue,
    TaskDeferred,
    conf,
)

# Same home on Airflow 2.11 and 3.x (``airflow.sdk`` does not export the trigger base classes).
from airflow.triggers.base import BaseTrigger, TriggerEvent

try:  # Airflow 3 (common-compat maps it only from 1.23, which needs Python 3.11)
    from airflow.sdk.log import mask_secret
except ImportError:  # Airflow 2.11
    from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[no-redef]

if TYPE_CHECKING:  # types only: the classes differ per version, the names do not
    from collections.abc import AsyncIterator

    from airflow.providers.common.compat.sdk import Connection as Connection
    from airflow.providers.common.compat.sdk import Context as Context
    from airflow.providers.common.compat.sdk import XComArg as XComArg

if sys.version_info >= (3, 11):
    from asyncio import timeout
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    @contextlib.asynccontextmanager
    async def timeout(delay: float | None) -> AsyncIterator[None]:
        """``asyncio.timeout`` of Python 3.11: cancel the body after ``delay`` s, raise TimeoutError.

        Not ``asyncio.wait_for``, which swallows a cancellation that lands as the awaited result
        arrives. Without ``Task.uncancel`` (3.11) a cancellation from outside that races the
        timer is reported as the timeout; the waiters treat both as the end of the wait.
        """
        if delay is None:
            yield
            return
        task = asyncio.current_task()
        fired = False

        def fire() -> None:
            nonlocal fired
            fired = True
            if task is not None:
                task.cancel()

        handle = asyncio.get_running_loop().call_later(max(0.0, delay), fire)
        try:
            yield
        except asyncio.CancelledError:
            if fired:
                raise TimeoutError from None
            raise
        finally:
            handle.cancel()

    class StrEnum(str, Enum):
        """``enum.StrEnum`` of Python 3.11: members are strings and print as their value."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return format(str(self.value), spec)


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "ObjectStoragePath",
    "PokeReturnValue",
    "StrEnum",
    "TaskDeferred",
    "TriggerEvent",
    "amask_secret",
    "conf",
    "get_async_connection",
    "get_async_extra_dejson",
    "get_hook_lineage_collector",
    "mask_secret",
    "timeout",
]


try:  # common-compat 1.23+
    from airflow.providers.common.compat.connection import get_async_extra_dejson
except ImportError:  # common-compat < 1.23 (the newest release on Python 3.10)

    async def get_async_extra_dejson(conn: Connection) -> dict[str, Any]:
        """The connection's extra as a dict, without a blocking call on the event loop.

        ``Connection.aextra_dejson()`` where it exists (Airflow 3.3.2+), else the sync property in
        a worker thread (where a blocking call to the supervisor is safe).
        """
        aextra = getattr(conn, "aextra_dejson", None)
        if aextra is not None:
            return dict(await aextra())
        return dict(await asyncio.to_thread(lambda: conn.extra_dejson))


try:  # Airflow 3.3.2+: masks through the supervisor without blocking the loop
    from airflow.sdk.log import amask_secret
except ImportError:

    async def amask_secret(secret: str) -> None:  # type: ignore[misc]
        """Register ``secret`` with Airflow's masker from a coroutine: the sync call in a thread."""
        await asyncio.to_thread(mask_secret, secret)


def get_hook_lineage_collector() -> Any:
    """Airflow's hook-lineage collector (imported on first use: lineage is optional and slow to load)."""
    from airflow.providers.common.compat.sdk import get_hook_lineage_collector as collector

    return collector()
