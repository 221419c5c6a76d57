"""Async request sets on Graph: create the parts of a plan, exactly once when given a key.

This module sits behind :meth:`GraphHook.create_async_batch` (:func:`create_request_sets`) and
``SubmitAsyncBatchOperator`` (:mod:`.request_set_reruns`). Planning (validation, encoding,
splitting, naming) is pure and lives in :mod:`.request_set_plan`; its names are re-exported here.

- **Without an idempotency key** every call creates new sets, even with a name used before (a
  daily job with a fixed name gets a new set every day). A create whose outcome is uncertain (no
  answer, HTTP 5xx, Graph code 1 or 2, ``is_transient``) is never resent: another set of the same
  name cannot be told from ours, so :class:`~airflow_fb_async.exceptions.GraphAmbiguousError` is
  raised, naming the part.
- **With an idempotency key** each part's name ends with a marker derived from the account and the
  key (``[part k/n #3f9a1c2b7d4e]``). Before creating, the parts are looked for on the account by
  that marker (never by the whole name, which a retry may render differently) and adopted when
  found. An uncertain create is reconciled by the same lookup and sent again only when the set is
  truly absent. Ids remembered from an earlier try (``known_ids``) are verified by id and size and
  reused without any listing, which also covers sets renamed since (a rename drops the marker).

Limits: a set renamed *and* not remembered by id cannot
be found again; Graph's listing is assumed to show a set shortly after its create committed
(``ambiguous_checks`` listings, ``ambiguous_delay`` seconds apart, before a part is sent again).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_fb_async.exceptions import (
    FacebookGraphError,
    GraphAmbiguousError,
)
from airflow_fb_async.hooks.request_set_plan import (
    RequestSetPart,
    RequestSetPlan,
    parse_marker,
    plan_request_sets,
)
from airflow_fb_async.hooks.set_fields import DEFAULT_SET_FIELDS
from airflow_fb_async.hooks.statuses import as_int

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)


class RequestSetHook(Protocol):
    """The part of GraphHook this module uses (kept structural so tests and the hook stay decoupled)."""

    def post(self, path: str, data: Any = None, files: Any = None, idempotent: bool | None = None) -> Any:
        """One Graph POST (``idempotent=False``: an uncertain outcome raises, never resends)."""

    def list_request_sets(
        self, ad_account_id: str, is_completed: bool | None = None, fields: str | Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every request set of the account, page by page."""

    def get_request_sets(
        self, set_ids: Sequence[str], fields: str | Sequence[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Many sets by id (multi-id reads): ``{set_id: fields}``."""


@dataclass
class SubmittedSet:
    """A part of a plan as it exists on Graph: its id, and whether this call created it."""

    id: str
    name: str
    size: int
    created: bool
    number: int = 1


class SetIndex:
    """An ad account's request sets that carry a key marker, listed once and on demand again."""

    def __init__(self, hook: RequestSetHook, ad_account_id: str) -> None:
        self.hook = hook
        self.ad_account_id = ad_account_id
        self._by_digest: dict[str, dict[tuple[int, int], list[dict[str, Any]]]] | None = None

    def refresh(self) -> None:
        """List the account's sets (every page) and index them by marker."""
        by_digest: dict[str, dict[tuple[int, int], list[dict[str, Any]]]] = {}
        for item in self.hook.list_request_sets(self.ad_account_id, fields=DEFAULT_SET_FIELDS):
            marker = parse_marker(item.get("name"))
            if marker is not None:
                digest, k, n = marker
                by_digest.setdefault(digest, {}).setdefault((k, n), []).append(item)
        self._by_digest = by_digest

    def find(self, digest: str) -> dict[tuple[int, int], list[dict[str, Any]]]:
        """``{(k, n): [sets]}`` of the sets marked with ``digest`` (lists the account the first time)."""
        if self._by_digest is None:
            self.refresh()
        assert self._by_digest is not None
        return self._by_digest.get(digest, {})


def _pick(part: RequestSetPart, plan: RequestSetPlan, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The existing set for a part; a size mismatch means the key was reused for other requests."""
    matching = [c for c in candidates if as_int(c.get("total_count")) in (part.size, None)]
    if not matching:
        counts = ", ".join(f"{c.get('id')} has {c.get('total_count')}" for c in candidates)
        raise FacebookGraphError(
            f"part {part.number}/{len(plan.parts)} of this idempotency key already exists on "
            f"{plan.ad_account_id} with a different number of requests ({counts}; this part has "
            f"{part.size}): the requests changed since the sets were created under this key. "
            "Use another key (another task instance) for other requests."
        )
    if len(matching) > 1:
        log.warning(
            "%d request sets on %s carry the marker of part %d/%d; using %s",
            len(matching),
            plan.ad_account_id,
            part.number,
            len(plan.parts),
            matching[0].get("id"),
        )
    return matching[0]


def _check_shape(plan: RequestSetPlan, found: Mapping[tuple[int, int], list[dict[str, Any]]]) -> None:
    """Sets of this key split into another number of parts: the requests changed under the same key."""
    other = sorted({n for (_, n) in found if n != len(plan.parts)})
    if other:
        ids = [str(s.get("id")) for (_, n), sets in found.items() if n in other for s in sets]
        raise FacebookGraphError(
            f"this idempotency key already holds request sets on {plan.ad_account_id} split into "
            f"{', '.join(map(str, other))} part(s) ({', '.join(ids)}), but the requests now make "
            f"{len(plan.parts)}: the requests changed since. Use another key for other requests."
        )


def _verify_known(
    hook: RequestSetHook, plan: RequestSetPlan, known_ids: Sequence[str | None]
) -> dict[int, SubmittedSet]:
    """Parts whose ids an earlier try remembered, checked by id and size (names may have changed)."""
    if len(known_ids) != len(plan.parts):
        raise FacebookGraphError(
            f"an earlier try created {len(known_ids)} request set part(s), the requests now make "
            f"{len(plan.parts)}: the requests changed between tries of this task instance"
        )
    wanted = [str(i) for i in known_ids if i]
    found = hook.get_request_sets(wanted, fields=DEFAULT_SET_FIELDS) if wanted else {}
    out: dict[int, SubmittedSet] = {}
    for set_id, part in zip(known_ids, plan.parts, strict=True):
        if not set_id:
            continue
        item = found.get(str(set_id))
        if not isinstance(item, Mapping):
            raise FacebookGraphError(f"request set {set_id} remembered from an earlier try is not on Graph")
        if as_int(item.get("total_count")) not in (part.size, None):
            raise FacebookGraphError(
                f"request set {set_id} remembered from an earlier try holds {item.get('total_count')} "
                f"requests, part {part.number}/{len(plan.parts)} now has {part.size}: the requests "
                "changed between tries of this task instance"
            )
        out[part.number] = SubmittedSet(
            str(set_id), str(item.get("name") or part.name), part.size, False, part.number
        )
    return out


def _create_body(plan: RequestSetPlan, part: RequestSetPart) -> dict[str, str]:
    data = {"name": part.name, "adbatch": json.dumps(part.entries, separators=(",", ":"))}
    if plan.notification_uri is not None:
        data["notification_uri"] = plan.notification_uri
    if plan.notification_mode is not None:
        data["notification_mode"] = plan.notification_mode
    return data


def submit_plan(
    hook: RequestSetHook,
    plan: RequestSetPlan,
    *,
    known_ids: Sequence[str | None] | None = None,
    index: SetIndex | None = None,
    look_up: bool = True,
    ambiguous_checks: int = 3,
    ambiguous_delay: float = 1.0,
    max_ambiguous_creates: int = 3,
    on_part: Callable[[SubmittedSet], None] | None = None,
) -> list[SubmittedSet]:
    """Make every part of ``plan`` exist on Graph, once; return them in part order.

    ``known_ids`` (one per part, None where unknown) are verified and reused. With a key (the plan
    has a ``key_digest``) the other parts are looked for on the account by marker first (unless
    ``look_up=False``: the caller knows they were never created), then created; an uncertain create
    is reconciled by marker. ``on_part`` is called as soon as each part exists (a task killed midway
    then knows what to cancel).
    """
    if not plan.parts:
        return []
    known = _verify_known(hook, plan, known_ids) if known_ids else {}
    index = index or SetIndex(hook, plan.ad_account_id)
    found: Mapping[tuple[int, int], list[dict[str, Any]]] = {}
    missing = len(known) < len(plan.parts)  # (parts may be read lazily from a file: not listed here)
    if plan.key_digest is not None and missing and look_up:
        found = index.find(plan.key_digest)
        _check_shape(plan, found)
    out: list[SubmittedSet] = []
    for part in plan.parts:
        submitted = known.get(part.number)
        if submitted is not None:
            log.info(
                "Request set %s (part %d/%d) remembered from an earlier try",
                submitted.id,
                part.number,
                len(plan.parts),
            )
        elif (part.number, len(plan.parts)) in found:
            item = _pick(part, plan, found[(part.number, len(plan.parts))])
            log.info("Request set %r already exists as %s: not creating it again", part.name, item["id"])
            submitted = SubmittedSet(str(item["id"]), str(item.get("name")), part.size, False, part.number)
        else:
            submitted = _create_part(
                hook, plan, part, index, ambiguous_checks, ambiguous_delay, max_ambiguous_creates
            )
        out.append(submitted)
        if on_part is not None:
            on_part(submitted)
    return out


def _create_part(
    hook: RequestSetHook,
    plan: RequestSetPlan,
    part: RequestSetPart,
    index: SetIndex,
    ambiguous_checks: int,
    ambiguous_delay: float,
    max_ambiguous_creates: int,
) -> SubmittedSet:
    path = f"{plan.ad_account_id}/async_batch_requests"
    where = f"part {part.number}/{len(plan.parts)} {part.name!r}"
    for attempt in range(1, max_ambiguous_creates + 1):
        try:
            # Not repeatable: the hook answers an uncertain outcome (no answer, 5xx, code 1/2,
            # is_transient) with GraphAmbiguousError instead of resending.
            answer = hook.post(path, data=_create_body(plan, part), idempotent=False)
        except GraphAmbiguousError as err:
            if plan.key_digest is None:
                raise GraphAmbiguousError(
                    f"creating request set {where} on {plan.ad_account_id}: {err.message}. Without an "
                    "idempotency_key the set cannot be told from other sets of that name: look at the "
                    "account's request sets before submitting again",
                    code=err.code,
                    http_status=err.http_status,
                    fbtrace_id=err.fbtrace_id,
                    method="POST",
                    path=path,
                ) from err
            log.warning(
                "Creating request set %s: uncertain outcome (%s); looking it up by its key marker",
                where,
                err.message,
            )
            for check in range(max(1, ambiguous_checks)):
                if check:
                    time.sleep(ambiguous_delay)
                index.refresh()
                candidates = index.find(plan.key_digest).get((part.number, len(plan.parts)))
                if candidates:
                    item = _pick(part, plan, candidates)
                    log.info("Request set %s was created after all: %s", where, item["id"])
                    return SubmittedSet(str(item["id"]), part.name, part.size, True, part.number)
            if attempt == max_ambiguous_creates:
                raise
            log.warning("Request set %s is not on the account: creating it again", where)
            continue
        set_id = answer.get("id") if isinstance(answer, Mapping) else None
        if not set_id:
            raise FacebookGraphError(f"creating request set {where}: Graph answered without an id")
        return SubmittedSet(str(set_id), part.name, part.size, True, part.number)
    raise AssertionError("unreachable")  # pragma: no cover


def create_request_sets(
    hook: RequestSetHook,
    ad_account_id: Any,
    requests: Any,
    name: Any,
    *,
    known_ids: Sequence[str | None] | None = None,
    ambiguous_checks: int = 3,
    ambiguous_delay: float = 1.0,
    **options: Any,
) -> list[str]:
    """Validate, split, name and create: the ids of the request sets, in part order.

    ``requests`` are ``{"name", "relative_url", "body"}`` dicts (body: URL-encoded string or dict);
    ``[]`` creates nothing and returns ``[]``. ``options`` are :meth:`SetOptions.validated`'s
    keywords (``notification_uri``, ``notification_mode``, ``max_set_size``, ``idempotency_key``).
    Everything is validated before the first HTTP call. Calls with the same ``idempotency_key`` on
    the same account return the same sets and never create them twice; without a key every call
    creates new sets.
    """
    plan = plan_request_sets(ad_account_id, requests, name, **options)
    submitted = submit_plan(
        hook, plan, known_ids=known_ids, ambiguous_checks=ambiguous_checks, ambiguous_delay=ambiguous_delay
    )
    return [s.id for s in submitted]
