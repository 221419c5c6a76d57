"""One task instance's async requests, on Graph exactly once across tries, renames and reruns.

``SubmitAsyncBatchOperator`` keys its submission by task instance (dag, task, run, map index) and
hands it to :class:`TaskInstanceSubmission`, which works in *generations*:

- generation 0 holds the task's requests, under the task instance's idempotency key;
- a rerun that finds requests of earlier sets **canceled** submits exactly those again, in new sets
  (generation g, key ``"<key>|resubmit g"``, name ``"<name> (resubmit g)"``), never the ones that
  ran. A resubmitted request that references (``{result=NAME:...}``) a request that already
  succeeded gets that result written in, since references only resolve inside one set.

Every generation's sets are found again by id from the task's state store (Airflow 3.3
``task_state_store``: ids survive renames and changed rendered names), else by the key marker in
their names (:mod:`.request_sets`). Before a generation's first create the state records the
intent (``None`` per part), so a later try knows whether a lookup is needed at all: with a state
store and no intent recorded, nothing was ever created and no listing is made.

The result lists every set that now holds the work: the sets holding the latest copy of at least
one request (a set whose requests were all canceled and resubmitted is left out).

Limits: without a state store (Airflow before 3.3) a set renamed by a user cannot be found again
and its requests would be submitted again on a later try; a rerun cannot tell a request canceled
on purpose from one canceled by accident (both are submitted again); canceling more requests of
earlier sets after a rerun resubmitted some makes the next rerun fail clearly (the resubmission's
parts no longer match) rather than guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from airflow_fb_async.exceptions import FacebookGraphError
from airflow_fb_async.hooks.jsonpath import resolve
from airflow_fb_async.hooks.references import find_references
from airflow_fb_async.hooks.request_sets import RequestSetHook, SetIndex, SubmittedSet, submit_plan
from airflow_fb_async.hooks.statuses import CANCELED_STATUSES, AsyncRequestStatus, set_count
from airflow_fb_async.literals import parse_json_text

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_fb_async.hooks.request_set_plan import RequestSetPlan

log = logging.getLogger(__name__)

STATE_VERSION = 2
_CANCELED = sorted(s.value for s in CANCELED_STATUSES)


class StateStore(Protocol):
    """Where a task instance keeps its submission state across tries (JSON values)."""

    def load(self) -> Any:
        """The stored state, or None when nothing was stored yet."""

    def save(self, value: dict[str, Any]) -> None:
        """Replace the stored state."""


class TaskStateStore:
    """Airflow 3.3's ``context["task_state_store"]`` seen as a :class:`StateStore` under one key."""

    def __init__(self, store: Any, key: str) -> None:
        self.store = store
        self.key = key

    @classmethod
    def of(cls, context: Mapping[str, Any], key: str) -> TaskStateStore | None:
        """The context's store, or None (Airflow before 3.3, a bare context)."""
        store = context.get("task_state_store")
        return cls(store, key) if store is not None else None

    def load(self) -> Any:
        """The value under our key in the task state store."""
        return self.store.get(self.key)

    def save(self, value: dict[str, Any]) -> None:
        """Write the value under our key in the task state store."""
        self.store.set(self.key, value)


class RerunHook(RequestSetHook, Protocol):
    """What :class:`TaskInstanceSubmission` needs of GraphHook: request sets and their requests."""

    def list_requests(
        self, set_id: str, statuses: Any = None, fields: Any = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The requests of one set (filtered by status), page by page."""


#: Builds generation ``g``'s plan from its requests (``{"name", "relative_url", "body"}``).
Replan = Callable[[list[dict[str, str]], int], "RequestSetPlan"]


@dataclass
class Submission:
    """What a run found or created: the sets holding the work, and every set touched."""

    set_ids: list[str]
    sets: list[SubmittedSet] = field(default_factory=list)
    resubmitted: int = 0


def parse_state(value: Any) -> list[list[str | None]] | None:
    """The per-generation set ids of a stored state; None when there is no readable state.

    Reads the current ``{"v": 2, "gens": [[id | None, ...], ...]}`` and the earlier plain id list.
    """
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [list(value)] if value else []
    if isinstance(value, Mapping) and isinstance(value.get("gens"), list):
        gens = value["gens"]
        if all(isinstance(g, list) and all(i is None or isinstance(i, str) for i in g) for g in gens):
            return [list(g) for g in gens]
    return None


class TaskInstanceSubmission:
    """Generation 0 (``plan``) and any resubmission of canceled requests, each exactly once."""

    def __init__(
        self,
        hook: RerunHook,
        plan: RequestSetPlan,
        replan: Replan,
        *,
        store: StateStore | None = None,
        on_set: Callable[[SubmittedSet], None] | None = None,
        ambiguous_delay: float = 1.0,
    ) -> None:
        self.hook = hook
        self.plan = plan
        self.replan = replan
        self.store = store
        self.on_set = on_set
        self.ambiguous_delay = ambiguous_delay
        # Names only: a plan read from a file keeps one part in memory; entries are read again
        # (:meth:`_entries`) only to resubmit canceled requests.
        self.order = [e["name"] for part in plan.parts for e in part.entries]
        self.gens: list[list[str | None]] = []
        #: Whether ``gens`` is authoritative: no recorded intent then means "never created".
        self.trusted = False

    # -- state -------------------------------------------------------------------------------------

    def _load(self) -> None:
        if self.store is None:
            return
        try:
            raw = self.store.load()
        except Exception as err:  # the store is best effort: fall back to lookups by marker
            log.warning(
                "Could not read the task's state store (%s): looking sets up by their key marker", err
            )
            return
        gens = [] if raw is None else parse_state(raw)
        if gens is None:
            log.warning("Unreadable submission state %r: looking sets up by their key marker", raw)
            return
        self.gens, self.trusted = gens, True

    def _save(self) -> None:
        if self.store is None or not self.trusted:
            return
        try:
            self.store.save({"v": STATE_VERSION, "gens": [list(g) for g in self.gens]})
        except Exception as err:
            log.warning("Could not write the task's state store (%s); later tries will look sets up", err)

    # -- run -----------------------------------------------------------------------------------------

    def run(self) -> Submission:
        """Make generation 0 exist, then resubmit canceled requests; the sets holding the work."""
        if not self.plan.parts:
            return Submission([])
        self._load()
        index = SetIndex(self.hook, self.plan.ad_account_id)
        latest: dict[str, str] = {}  # request name -> the set holding its latest copy
        touched: list[SubmittedSet] = []
        resubmitted = 0
        plan, generation = self.plan, 0
        while True:
            parts = self._ensure(plan, generation, index)
            touched += parts
            for part, submitted in zip(plan.parts, parts, strict=True):
                for entry in part.entries:
                    latest[entry["name"]] = submitted.id
            if generation:
                resubmitted += sum(p.size for p in parts if p.created)
            if all(p.created for p in parts):
                break  # just created: nothing in them can have been canceled yet
            pending = self._canceled(latest)
            if not pending:
                break
            generation += 1
            log.info(
                "%d request(s) of earlier sets were canceled: submitting them again (generation %d)",
                len(pending),
                generation,
            )
            plan = self.replan(self._resolved(pending, latest), generation)
        holding = list(dict.fromkeys(latest[name] for name in self.order))
        ordered = [s.id for s in touched if s.id in holding]
        return Submission(list(dict.fromkeys(ordered)), touched, resubmitted)

    def _ensure(self, plan: RequestSetPlan, generation: int, index: SetIndex) -> list[SubmittedSet]:
        """Generation ``generation``'s sets: remembered, found by marker, or created (intent first)."""
        known = self.gens[generation] if generation < len(self.gens) else None
        if known is not None and len(known) != len(plan.parts) and not any(known):
            # Only an intent, recorded for another split (the requests changed): nothing to verify by
            # id; the lookup by marker still refuses sets of this key with another shape.
            known = self.gens[generation] = [None] * len(plan.parts)
            self._save()
        if self.trusted and known is None:
            self.gens.append([None] * len(plan.parts))
            self._save()
        look_up = not self.trusted or (known is not None and any(i is None for i in known))

        def remember(submitted: SubmittedSet) -> None:
            if self.trusted:
                ids = self.gens[generation]
                if submitted.number <= len(ids) and ids[submitted.number - 1] != submitted.id:
                    ids[submitted.number - 1] = submitted.id
                    self._save()
            if self.on_set is not None:
                self.on_set(submitted)

        return submit_plan(
            self.hook,
            plan,
            known_ids=known,
            index=index,
            look_up=look_up,
            on_part=remember,
            ambiguous_delay=self.ambiguous_delay,
        )

    def _canceled(self, latest: Mapping[str, str]) -> list[str]:
        """Names of requests canceled in the set holding their latest copy, in the original order."""
        holding = list(dict.fromkeys(latest.values()))
        info = self.hook.get_request_sets(holding, fields="id,canceled_count")
        canceled: set[str] = set()
        for set_id in holding:
            if set_count((info.get(set_id) or {}).get("canceled_count")) == 0:
                continue
            for item in self.hook.list_requests(set_id, statuses=_CANCELED, fields="id,status,input"):
                if not _is_canceled(item.get("status")):
                    continue
                name = _input_name(item, set_id)
                if latest.get(name) == set_id:
                    canceled.add(name)
        return [name for name in self.order if name in canceled]

    def _entries(self, names: set[str]) -> dict[str, dict[str, str]]:
        """Generation 0's entries of these names (the plan's parts read once more)."""
        return {e["name"]: e for part in self.plan.parts for e in part.entries if e["name"] in names}

    def _resolved(self, names: list[str], latest: Mapping[str, str]) -> list[dict[str, str]]:
        """The entries to submit again; references to requests outside them get their results."""
        chosen = set(names)
        found = self._entries(chosen)
        entries = [dict(found[name]) for name in names]
        outside = {
            ref.name
            for e in entries
            for ref in find_references(e["relative_url"]) + find_references(e["body"])
            if ref.name not in chosen
        }
        if not outside:
            return entries
        results: dict[str, Any] = {}
        for set_id in dict.fromkeys(latest[name] for name in outside if name in latest):
            for item in self.hook.list_requests(
                set_id, statuses=["SUCCESS"], fields="id,status,result,input"
            ):
                name = _input_name(item, set_id)
                if name in outside and latest.get(name) == set_id:
                    results[name] = parse_json_text(item.get("result"))
        for entry in entries:
            for key in ("relative_url", "body"):
                for ref in find_references(entry[key]):
                    if ref.name in chosen:
                        continue
                    value = resolve(results[ref.name], ref.path) if ref.name in results else None
                    if value is None:
                        raise FacebookGraphError(
                            f"request {entry['name']!r} was canceled and would be submitted again, but it "
                            f"references {ref.token} and request {ref.name!r} has no successful result to "
                            "take it from: submit it again as a new task with the reference resolved"
                        )
                    entry[key] = entry[key].replace(ref.token, quote(value, safe=","))
        return entries


def _is_canceled(status: Any) -> bool:
    try:
        return AsyncRequestStatus.parse(str(status)).is_canceled()
    except ValueError:
        return False


def _input_name(item: Mapping[str, Any], set_id: str) -> str:
    """The request's name from its ``input`` (Graph returns what was sent: name, relative_url, body)."""
    data = parse_json_text(item.get("input"))
    name = data.get("name") if isinstance(data, Mapping) else None
    if not isinstance(name, str):
        raise FacebookGraphError(
            f"request {item.get('id')} of set {set_id} came back without its input name: cannot tell "
            "which of the task's requests it is"
        )
    return name
