"""One shared poller per event loop, connection and kind: every waiter on a loop shares its rounds.

A triggerer runs all its triggers on one asyncio loop. Polled one by one, K triggers with one set
each cost K calls a round; polled together they cost ``ceil(K / 50)`` (Graph's multi-id read takes
50 ids). :func:`shared_poller` returns the :class:`SharedPoller` of the running loop for a
:class:`PollerKey` ``(graph_conn_id, api_version, kind)``, creating it on first use; each waiter
:meth:`~SharedPoller.subscribe`\\ s its ids and awaits :meth:`Subscription.next_round`::

    poller = shared_poller(conn_id, api_version, REQUEST_SET_KIND)
    async with poller.subscribe(ids, interval=30.0) as sub:
        while True:
            got = await sub.next_round()   # a Round: objects / missing ids / error
            ...                            # decide; return when done

How rounds and intervals combine
    Each member has an interval and a due time (first due: ``min(interval, JOIN_WINDOW)`` after it
    subscribed, so a burst of new triggers shares its first round). A round starts when the
    earliest member is due; it reads the pending ids of every member due within half its own
    interval (members with the same interval share every round, whatever their phase) and of every
    member not read yet, in
    ``ceil(ids / 50)`` calls, and hands each of them its own :class:`Round`. A member's next due is
    the round's start plus its interval, so no member gets results older than its interval and none
    is read more than about twice per interval. Ids the kind calls finished are not read again.

Errors are shared too: a throttle or transient failure (after the hook's own retries) pauses the
whole poller with one back-off (:func:`~airflow_fb_async.waiting.errors.retry_delay`, at least the
announced regain time), and each member waiting on unread ids gets a ``Round`` with ``retry_in``.
A final error goes only to the members whose ids caused it: an id Graph names as non-existent
(code 803) is reported ``missing`` to its member and the rest of the call is read again; any other
final error on a call holding several members' ids is retried member by member, so one bad trigger
never ends another (auth errors, which concern every id alike, go to all members of the call).

No stall: the poller imports the hook module, reads the connection and creates the HTTP client
off the loop or with ``await``, once per poller, never per trigger. An auth error makes it read
the connection again (a token rotated since) and retry the round once before the error ends the
waits concerned. A member that is cancelled
(trigger reassigned or killed) just leaves; the others go on. The poller stops, and closes its
client, when its last member leaves; the next subscriber starts a new one.

Generic over the kind (what to read, what is finished): request sets here, insights report runs
(``async_status``) with the same multi-id call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow_fb_async._compat import timeout
from airflow_fb_async.exceptions import GraphAuthError
from airflow_fb_async.waiting import HOOK_MODULE, import_off_loop
from airflow_fb_async.waiting.errors import MIN_BACKOFF_BASE, is_retryable, nonexistent_ids, retry_delay

if TYPE_CHECKING:
    from types import TracebackType

log = logging.getLogger(__name__)

#: Graph's multi-id read takes at most this many ids a call.
MULTI_ID_LIMIT = 50
#: A new member's first read comes at most this long after it subscribed (a burst shares it).
JOIN_WINDOW = 0.5
#: Members woken per loop iteration when a round hands out its results.
DELIVERY_SLICE = 25


@dataclass(frozen=True)
class PollKind:
    """What a poller reads (``fields``, with the multi-id call) and when an id needs no more reads."""

    name: str
    fields: tuple[str, ...]
    is_finished: Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class PollerKey:
    """One poller per loop and key."""

    graph_conn_id: str
    api_version: str | None
    kind: str


@dataclass(frozen=True, slots=True)
class Round:
    """What one member gets from one round.

    - ``objects``: the raw objects read for the member's pending ids (finished ones included);
    - ``missing``: pending ids Graph did not return (absent from the answer, or named as
      non-existent); what that means is the member's call;
    - ``error`` with ``retry_in``: the read failed and is being ridden out (next attempt in
      ``retry_in`` seconds, shared by the whole poller); ``error`` without ``retry_in``: final.
    """

    objects: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    error: BaseException | None = None
    retry_in: float | None = None
    attempt: int = 0


@dataclass(frozen=True)
class RoundStats:
    """What one round did (for observers: metrics, benchmarks, tests)."""

    index: int  #: 1 for the poller's first round
    members: int  #: members served by the round
    ids: int  #: distinct ids read
    calls: int  #: multi-id calls made (ceil(ids / 50), more when an error had to be pinned down)
    failed: bool  #: a retryable error cut the round short


#: An observer of rounds, awaited after each round, before its results are handed out.
RoundObserver = Callable[[RoundStats], Awaitable[None]]


class ObjectReader(Protocol):
    """What the poller needs from the async hook."""

    async def get_objects(
        self, ids: Iterable[str], fields: Iterable[str] | None = None
    ) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...

    def scrub(self, text: Any) -> str: ...


class Subscription:
    """One member of a :class:`SharedPoller`: its ids, interval and latest round.

    Slotted, and waits on one bare future per round (no ``asyncio.Event``, its deque and its ``wait``
    coroutine): a triggerer holds one per waiting trigger, and every object they keep alive is one
    more for each full garbage collection to walk.
    """

    __slots__ = ("_latest", "_waiter", "closed", "due", "fresh", "ids", "interval", "pending", "poller")

    def __init__(self, poller: SharedPoller, ids: Iterable[str], interval: float, due: float) -> None:
        self.poller = poller
        self.ids: tuple[str, ...] = tuple(dict.fromkeys(str(i) for i in ids))
        self.pending: list[str] = list(self.ids)
        self.interval = max(float(interval), 0.0)
        self.due = due
        self.closed = False
        #: Never read yet: joins the next round, whenever it starts.
        self.fresh = True
        self._latest: Round | None = None
        self._waiter: asyncio.Future[None] | None = None

    async def next_round(self) -> Round:
        """Wait for the next round that concerns this member (results, missing ids or an error)."""
        if self.closed:
            raise RuntimeError("this subscription is closed")
        if self._latest is None:
            self._waiter = self.poller.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        got, self._latest = self._latest, None
        assert got is not None
        return got

    def finish(self, ids: Iterable[str]) -> None:
        """Stop reading ``ids`` (the member is done with them)."""
        drop = set(ids)
        self.pending = [i for i in self.pending if i not in drop]

    def close(self) -> None:
        """Leave the poller (idempotent); the poller stops when its last member has left."""
        if not self.closed:
            self.closed = True
            self.pending = []
            self.poller._leave(self)

    def _deliver(self, got: Round) -> None:
        self.fresh = False
        if not self.closed:
            self._latest = got
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SharedPoller:
    """Reads the pending ids of all its members in shared rounds (see the module docstring)."""

    def __init__(
        self,
        key: PollerKey,
        kind: PollKind,
        loop: asyncio.AbstractEventLoop,
        open_reader: Callable[[PollerKey], Any] | None = None,
    ) -> None:
        self.key = key
        self.kind = kind
        self.loop = loop
        #: Insertion-ordered; a dict so that hundreds of triggers leaving together cost O(1) each.
        self.members: dict[Subscription, None] = {}
        self.rounds = 0  #: rounds run
        self.calls = 0  #: multi-id read calls made
        #: Delivery slices run: a round wakes at most DELIVERY_SLICE members per loop iteration.
        self.slices = 0
        self.observers: list[RoundObserver] = []
        self.reader: ObjectReader | None = None
        #: The reader's scrubber (it knows the token), kept after the reader is closed.
        self.scrub: Callable[[Any], str] | None = None
        self._open_reader = open_reader or open_hook_reader
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._reopened = False
        self._not_before = 0.0
        self._stopped = False

    # -- membership ------------------------------------------------------------------------------

    def subscribe(self, ids: Iterable[str], interval: float) -> Subscription:
        """Join the shared rounds with ``ids``, wanting results at least every ``interval`` seconds."""
        interval = max(float(interval), 0.0)
        member = Subscription(self, ids, interval, self.loop.time() + min(interval, JOIN_WINDOW))
        self.members[member] = None
        if self._task is None:
            self._task = self.loop.create_task(self._run(), name=f"fb-graph poller {self.key}")
        self._wakeup.set()
        return member

    def _leave(self, member: Subscription) -> None:
        self.members.pop(member, None)
        if not self.members:
            _unregister(self)  # a later subscriber starts a fresh poller
        self._wakeup.set()

    # -- the loop --------------------------------------------------------------------------------

    async def _run(self) -> None:
        error: BaseException | None = None
        try:
            await self._open()
            while self.members:
                members = [m for m in self.members if m.pending]
                now = self.loop.time()
                start_at = max(min((m.due for m in members), default=math.inf), self._not_before)
                if start_at > now:
                    self._wakeup.clear()
                    try:
                        async with timeout(None if start_at == math.inf else start_at - now):
                            await self._wakeup.wait()
                    except TimeoutError:
                        pass
                    continue
                await self._round([m for m in members if m.fresh or m.due <= now + m.interval / 2], now)
        except asyncio.CancelledError:
            error = RuntimeError("the shared poller was cancelled")
            raise
        except Exception as exc:  # the reader could not be opened (connection, hook module)
            error = exc
        finally:
            self._stopped = True
            _unregister(self)
            for member in list(self.members):
                member._deliver(Round(error=error or RuntimeError("the shared poller stopped")))
            reader, self.reader = self.reader, None
            if reader is not None:
                try:
                    await reader.aclose()
                except Exception as exc:
                    log.debug("closing the poller's client failed: %s", type(exc).__name__)

    async def _open(self) -> None:
        """(Re)open the reader: reads the connection as it is now."""
        old, self.reader = self.reader, await self._open_reader(self.key)
        self.scrub = self.reader.scrub
        if old is not None:
            await old.aclose()

    async def _round(self, batch: list[Subscription], started: float) -> None:
        """Read every pending id of ``batch`` and hand each member its own :class:`Round`."""
        self.rounds += 1
        calls_before = self.calls
        owners: dict[str, Subscription] = {}
        for member in batch:
            for set_id in member.pending:
                owners.setdefault(set_id, member)
        ids = list(owners)
        got: dict[str, dict[str, Any]] = {}
        missing: set[str] = set()
        failed: dict[str, BaseException] = {}
        transient: BaseException | None = None
        for start in range(0, len(ids), MULTI_ID_LIMIT):
            try:
                await self._read(ids[start : start + MULTI_ID_LIMIT], owners, got, missing, failed)
            except Exception as exc:  # retryable: the rest of the round waits for the back-off
                transient = exc
                break
        auth = [e for e in failed.values() if isinstance(e, GraphAuthError)]
        if auth and not self._reopened:
            # The connection may have changed (a rotated token) since this long-lived poller read
            # it: read it again and retry the round once before the error ends the waits.
            log.warning(
                "Auth error on a multi-id read (%s): reading the connection again", type(auth[0]).__name__
            )
            self._reopened = True
            await self._open()
            return await self._round(batch, started)
        self._reopened = bool(auth)
        delay = 0.0
        if transient is not None:
            self._failures += 1
            delay = self._backoff(transient, batch)
            self._not_before = self.loop.time() + delay
            log.warning(
                "Multi-id read for %d waiter(s) failed (%s); attempt %d, next in %.1fs",
                len(batch),
                type(transient).__name__,
                self._failures,
                delay,
            )
        else:
            self._failures = 0
        stats = RoundStats(
            self.rounds, len(batch), len(ids), self.calls - calls_before, transient is not None
        )
        for observer in list(self.observers):
            await observer(stats)
        for index, member in enumerate(batch):
            if not index % DELIVERY_SLICE:
                if index:
                    # Let the members served so far handle their round (and finish) before waking
                    # more: hundreds of triggers finishing together never hold the loop in one go.
                    await asyncio.sleep(0)
                self.slices += 1
            mine = member.pending
            errors = [failed[i] for i in mine if i in failed]
            if errors:
                member.pending = []
                member._deliver(Round(error=errors[0]))
            elif any(i not in got and i not in missing for i in mine):
                member._deliver(Round(error=transient, retry_in=delay, attempt=self._failures))
            else:
                objects = {i: got[i] for i in mine if i in got}
                member.due = started + member.interval
                member.pending = [i for i in mine if not (i in got and self.kind.is_finished(got[i]))]
                member._deliver(Round(objects=objects, missing=tuple(i for i in mine if i in missing)))

    async def _read(
        self,
        chunk: list[str],
        owners: Mapping[str, Subscription],
        got: dict[str, dict[str, Any]],
        missing: set[str],
        failed: dict[str, BaseException],
    ) -> None:
        """One multi-id call; a final error is pinned on the ids (members) that caused it."""
        assert self.reader is not None
        self.calls += 1
        try:
            answer = await self.reader.get_objects(chunk, self.kind.fields)
        except Exception as exc:
            if is_retryable(exc):
                raise
            named = nonexistent_ids(exc, chunk)
            if named:
                missing.update(named)
                rest = [i for i in chunk if i not in named]
                if rest:
                    await self._read(rest, owners, got, missing, failed)
                return
            groups: dict[int, list[str]] = {}
            for set_id in chunk:
                groups.setdefault(id(owners[set_id]), []).append(set_id)
            if len(groups) > 1 and not isinstance(exc, GraphAuthError):
                for group in groups.values():
                    await self._read(group, owners, got, missing, failed)
                return
            failed.update(dict.fromkeys(chunk, exc))
            return
        for set_id in chunk:
            value = answer.get(set_id) if isinstance(answer, Mapping) else None
            if isinstance(value, Mapping):
                got[set_id] = dict(value)
            else:
                missing.add(set_id)

    def _backoff(self, error: BaseException, batch: list[Subscription]) -> float:
        """One back-off for the whole poller, from the shortest interval among the waiting members."""
        interval = min((m.interval for m in batch), default=1.0)
        delay = retry_delay(error, self._failures, interval)
        return max(interval, MIN_BACKOFF_BASE) if delay is None else delay


# --------------------------------------------------------------------------------------------------
# the registry: one poller per loop and key
# --------------------------------------------------------------------------------------------------

_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PollerKey, SharedPoller]] = (
    weakref.WeakKeyDictionary()
)
_REGISTRY_LOCK = threading.Lock()


def shared_poller(
    graph_conn_id: str,
    api_version: str | None,
    kind: PollKind,
    *,
    open_reader: Callable[[PollerKey], Any] | None = None,
) -> SharedPoller:
    """The running loop's poller for ``(graph_conn_id, api_version, kind.name)``, created on first use.

    Synchronous and cheap (no I/O): the poller opens its hook in its own task.
    """
    loop = asyncio.get_running_loop()
    key = PollerKey(str(graph_conn_id), api_version or None, kind.name)
    with _REGISTRY_LOCK:
        pollers = _REGISTRY.setdefault(loop, {})
        poller = pollers.get(key)
        if poller is None or poller._stopped:
            poller = pollers[key] = SharedPoller(key, kind, loop, open_reader)
        return poller


def pollers_of(loop: asyncio.AbstractEventLoop) -> dict[PollerKey, SharedPoller]:
    """The live pollers of ``loop`` (for tests and benchmarks)."""
    with _REGISTRY_LOCK:
        return dict(_REGISTRY.get(loop, {}))


def _unregister(poller: SharedPoller) -> None:
    with _REGISTRY_LOCK:
        pollers = _REGISTRY.get(poller.loop)
        if pollers is not None and pollers.get(poller.key) is poller:
            del pollers[poller.key]


async def open_hook_reader(key: PollerKey) -> ObjectReader:
    """The async hook for ``key``, ready to read: module imported in a worker thread, connection read
    with ``await``, HTTP client created off the loop (:meth:`GraphAsyncHook.get_conn`)."""
    await import_off_loop(HOOK_MODULE)
    from airflow_fb_async.hooks.graph import GraphAsyncHook  # loaded: a lookup

    hook = GraphAsyncHook(graph_conn_id=key.graph_conn_id, api_version=key.api_version)
    try:
        await hook.get_conn()
    except BaseException:
        await hook.aclose()
        raise
    reader: ObjectReader = hook
    return reader
