"""The Store: every piece of Graph state the emulator holds, behind methods.

Objects (ad objects, request sets and requests, report runs), ad accounts, the id counter, the
counters, the sent notifications, and the bookkeeping of background work (sets and report runs still
to advance, sets being notified). Every method takes the store's lock (re-entrant: the engine holds
it around a whole Graph call, so one call's reads and writes are atomic); every write marks the store
dirty, which is what the ``--state`` save loop watches. Handlers read and write through these
methods only.

``generation`` names the current world: :meth:`reset` starts a new one and sets the old one's
``generation_ended`` event, so work begun before a reset (a call asleep in its latency, a
notification in flight) can tell it must not touch the fresh state.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from typing import Any

from . import model
from .config import fresh_counters
from .core import now_iso

FIRST_ID = 23850000000001
STATE_FORMAT = 1


class Store:
    """Graph state with its lock and dirty flag (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._objects: dict[str, dict[str, Any]] = {}
        self._accounts: dict[str, dict[str, Any]] = {}
        self._next_id = FIRST_ID
        self._counters = fresh_counters()
        self._notifications: list[dict[str, Any]] = []
        self._active_sets: set[str] = set()
        self._set_runtime: dict[str, dict[str, Any]] = {}  # pace credit and scan position per set
        self._active_reports: dict[str, float] = {}  # unfinished report run id -> last tick
        self._notifying: set[str] = set()
        self.generation = 0
        self.generation_ended = threading.Event()
        self.dirty = False
        self.last_save = 0.0

    # ------------------------------------------------------------ objects

    def new_id(self) -> str:
        with self.lock:
            value = self._next_id
            self._next_id += 1
            return str(value)

    def create(self, obj: dict[str, Any], count: bool = True) -> dict[str, Any]:
        """Store a new object (it carries its ``id`` and ``_type``); ``count`` adds it to
        ``objects_created`` (request sets and requests are counted elsewhere)."""
        with self.lock:
            self._objects[obj["id"]] = obj
            if count:
                self._counters["objects_created"] += 1
                by_type = self._counters["objects_created_by_type"]
                by_type[obj["_type"]] = by_type.get(obj["_type"], 0) + 1
            self.dirty = True
            return obj

    def get(self, obj_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self._objects.get(obj_id)

    def has(self, obj_id: str) -> bool:
        with self.lock:
            return obj_id in self._objects

    def find(self, otype: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Objects of ``otype`` (any type when None) whose fields equal ``match``, in creation order."""
        with self.lock:
            return [
                o
                for o in self._objects.values()
                if (otype is None or o.get("_type") == otype) and all(o.get(k) == v for k, v in match.items())
            ]

    def update(self, obj: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``changes`` to a stored object."""
        with self.lock:
            obj.update(changes)
            self.dirty = True
            return obj

    def delete(self, obj: dict[str, Any]) -> None:
        """Graph deletes softly: the object stays, with status ``DELETED``."""
        self.update(obj, {"status": "DELETED", "effective_status": "DELETED", "updated_time": now_iso()})

    def account(self, digits: str) -> dict[str, Any]:
        """The ad account ``act_<digits>``, created on first use like every account is."""
        with self.lock:
            acc = self._accounts.get(digits)
            if acc is None:
                acc = {
                    "_type": model.ACCOUNT,
                    "id": f"act_{digits}",
                    "account_id": digits,
                    "name": f"Emulator Ad Account {digits}",
                    "account_status": 1,
                    "currency": "USD",
                    "timezone_name": "America/Los_Angeles",
                    "created_time": now_iso(),
                }
                self._accounts[digits] = acc
                self.dirty = True
            return acc

    def accounts(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._accounts.values())

    # ------------------------------------------------------------ counters

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self._counters[key] += n

    def count_in(self, group: str, key: str) -> None:
        """One more in a counter group (``calls_by_kind``, ``faults_injected``)."""
        with self.lock:
            self._counters[group][key] += 1

    def peak(self, key: str, value: int) -> None:
        """Raise a ``max_*`` counter to ``value``."""
        with self.lock:
            if value > self._counters[key]:
                self._counters[key] = value

    def counters(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._counters)

    # ------------------------------------------------------------ async request sets

    def add_set(self, set_obj: dict[str, Any], requests: list[dict[str, Any]]) -> None:
        """Store a new request set with its requests and queue it for processing."""
        with self.lock:
            for req in requests:
                self.create(req, count=False)
            self.create(set_obj, count=False)
            self._counters["request_sets_created"] += 1
            self._active_sets.add(set_obj["id"])

    def active_sets(self) -> list[str]:
        with self.lock:
            return sorted(self._active_sets)

    def set_runtime(self, set_id: str, now: float) -> dict[str, Any]:
        """The processing record of an active set, which the processor updates in place: pace
        ``credit``, ``last`` tick, ``first_open`` (requests before it are all terminal), and the
        set's stored request objects in order (``requests``) and by name (``by_name``), looked up
        once instead of on every tick. Not saved (a restarted emulator starts a fresh one); dropped
        by :meth:`set_done`, :meth:`reset` and :meth:`restore`."""
        with self.lock:
            rt = self._set_runtime.get(set_id)
            if rt is None:
                requests = [self._objects[rid] for rid in self._objects[set_id]["request_ids"]]
                rt = self._set_runtime[set_id] = {
                    "credit": 0.0,
                    "last": now,
                    "first_open": 0,
                    "requests": requests,
                    "by_name": {r["name"]: r for r in requests},
                }
            return rt

    def set_done(self, set_id: str) -> None:
        """Take a set out of processing (complete, or gone)."""
        with self.lock:
            self._active_sets.discard(set_id)
            self._set_runtime.pop(set_id, None)

    def set_request_status(
        self, s: dict[str, Any], r: dict[str, Any], status: str, result: Any = None
    ) -> None:
        """Move request ``r`` of set ``s`` to ``status`` (with its ``result``), keeping the set's
        status tally in step."""
        with self.lock:
            c = s["counts"]
            c[r["status"]] = c.get(r["status"], 0) - 1
            c[status] = c.get(status, 0) + 1
            r["status"] = status
            if result is not None:
                r["result"] = result
            r["updated_time"] = s["updated_time"] = now_iso()
            self.dirty = True

    def begin_notify(self, s: dict[str, Any]) -> bool:
        """Mark set ``s`` as being notified; False when a notification is already on its way."""
        with self.lock:
            if s["id"] in self._notifying:
                return False
            self._notifying.add(s["id"])
            s["notification_status"] = "sending"
            self.dirty = True
            return True

    def end_notify(self, set_id: str, generation: int, record: dict[str, Any]) -> None:
        """Record a notification attempt, unless the world it belonged to was reset meanwhile."""
        with self.lock:
            self._notifying.discard(set_id)
            if generation != self.generation:
                return
            s = self._objects.get(set_id)
            if s is not None:
                s["notification_status"] = "sent"
                s["notification_result"] = record["result"]
            self._notifications.append(record)
            self.dirty = True

    def notifications(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._notifications)

    # ------------------------------------------------------------ report runs

    def add_run(self, run: dict[str, Any], now: float) -> None:
        """Store a new report run and queue it for the background tick."""
        with self.lock:
            self.create(run)
            self._active_reports[run["id"]] = now

    def active_runs(self) -> list[tuple[str, float]]:
        """(run id, time of its last tick) of every unfinished report run."""
        with self.lock:
            return list(self._active_reports.items())

    def run_ticked(self, run_id: str, now: float) -> None:
        with self.lock:
            self._active_reports[run_id] = now

    def run_done(self, run_id: str) -> None:
        with self.lock:
            self._active_reports.pop(run_id, None)

    def has_background_work(self) -> bool:
        """Whether a set or a report run waits for the background tick (read without the lock)."""
        return bool(self._active_sets or self._active_reports)

    # ------------------------------------------------------------ admin and persistence

    def public_objects(self, otype: str | None = None) -> list[dict[str, Any]]:
        """Copies of the stored objects (of ``otype``), with ``type`` and without private fields."""
        with self.lock:
            return copy.deepcopy([{"type": o["_type"], **model.public(o)} for o in self.find(otype)])

    def reset(self, connections_open: int) -> None:
        """Empty the world (ids keep increasing) and start a new generation."""
        with self.lock:
            self._objects.clear()
            self._accounts.clear()
            self._counters = fresh_counters()
            self._counters["max_concurrent_connections"] = connections_open
            self._active_sets.clear()
            self._active_reports.clear()
            self._set_runtime.clear()
            self._notifications.clear()
            self._notifying.clear()
            self.generation += 1
            self.generation_ended.set()
            self.generation_ended = threading.Event()
            self.dirty = True

    def snapshot(self) -> dict[str, Any]:
        """What ``--state`` files keep (and ``/__admin/state`` answers)."""
        with self.lock:
            return copy.deepcopy(
                {
                    "format": STATE_FORMAT,
                    "next_id": self._next_id,
                    "accounts": list(self._accounts.values()),
                    "objects": list(self._objects.values()),
                    "notifications": self._notifications,
                }
            )

    def restore(self, data: dict[str, Any], now: float) -> None:
        """Load a snapshot; unfinished sets and report runs resume processing."""
        with self.lock:
            self._next_id = max(int(data.get("next_id", FIRST_ID)), FIRST_ID)
            self._accounts = {a["account_id"]: a for a in data.get("accounts", [])}
            self._objects = {o["id"]: o for o in data.get("objects", [])}
            self._notifications = list(data.get("notifications", []))
            self._set_runtime.clear()  # it holds the replaced request objects
            self._active_sets = {s["id"] for s in self.find(model.SET_TYPE) if not model.is_completed(s)}
            self._active_reports = {
                r["id"]: now for r in self.find(model.RUN_TYPE) if r["async_status"] in model.UNFINISHED_RUN
            }

    def save_due(self, min_interval: float) -> bool:
        """Whether there are unsaved changes and the last save is ``min_interval`` seconds old."""
        return self.dirty and time.monotonic() - self.last_save >= min_interval

    def save(self, path: str) -> None:
        """Write a snapshot to ``path`` atomically (a temporary file, then a rename)."""
        with self.lock:
            data = json.dumps(self.snapshot(), separators=(",", ":"))
            self.dirty = False
            self.last_save = time.monotonic()
        tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def load(self, path: str) -> None:
        """Restore the snapshot in ``path``, if the file exists."""
        if not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        self.restore(data, time.monotonic())
