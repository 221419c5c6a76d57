"""Async request set submission: validation, body encoding, splitting, naming, reconcile-by-name.

This module sits behind :meth:`GraphHook.create_async_batch` (which delegates to
:func:`create_request_sets`) and behind ``SubmitAsyncBatchOperator``. The steps:

1. :func:`plan_request_sets` validates everything *before any HTTP call* (each problem raises
   :class:`~airflow_fb_async.exceptions.GraphInputError` naming the offending request), encodes
   dict bodies to URL-encoded strings, splits the requests into parts of at most ``max_set_size``
   (1000, Graph's cap) without ever cutting a ``{result=NAME:...}`` reference chain, and names the
   parts deterministically (``name`` for one part, else ``"{name} [part k/n]"``).
2. :func:`submit_plan` reconciles the parts with the request sets already on the ad account, by exact
   name, and creates only the missing ones. A create whose connection dropped after sending
   (:class:`~airflow_fb_async.exceptions.GraphAmbiguousError`) is reconciled again by name and only
   sent again when the set is truly absent: a create is never blindly resent.

Because names are deterministic, running the same submission twice (an Airflow retry, a rerun of a
task instance that already succeeded) finds the sets of the first run instead of creating them again.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_fb_async.exceptions import FacebookGraphError, GraphAmbiguousError, GraphInputError
from airflow_fb_async.hooks.encoding import encode_body as encode_body
from airflow_fb_async.hooks.references import reference_names

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)

#: Graph's cap on requests per async request set.
MAX_SET_SIZE = 1000
#: Our cap on a request set name, suffixes included (Graph does not document one; 255 is safe).
MAX_NAME_LENGTH = 255
NOTIFICATION_MODES = ("OFF", "ON_COMPLETE")
REQUEST_KEYS = ("name", "relative_url", "body")
#: Keys of standard batch entries that have no meaning in an async batch, with why.
_UNSUPPORTED_KEYS = {
    "method": "async batches are POST-only (creates and updates): drop 'method'",
    "depends_on": "async batch entries are ordered by {result=NAME:...} references only: drop 'depends_on'",
    "omit_response_on_success": "async batch entries keep every result: drop 'omit_response_on_success'",
    "attached_files": "async batches cannot upload files: upload first (e.g. adimages), then reference the hash",
    "headers": "async batch entries take no headers: drop 'headers'",
}
_ACCOUNT_RE = re.compile(r"^(?:act_)?([0-9]+)$")
SET_LIST_FIELDS = "id,name,total_count"


class _RequestSetHook(Protocol):
    """The part of GraphHook this module uses (kept structural so tests and the hook stay decoupled)."""

    def post(self, path: str, data: dict[str, Any] | None = None, files: Any = None) -> Any: ...

    def list_request_sets(
        self, ad_account_id: str, is_completed: bool | None = None, fields: str | Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]: ...

    def get_request_sets(
        self, set_ids: Sequence[str], fields: str | Sequence[str] | None = None
    ) -> dict[str, dict[str, Any]]: ...


@dataclass(frozen=True)
class RequestSetPart:
    """One request set to be: its deterministic name and its adbatch entries (bodies encoded)."""

    name: str
    entries: list[dict[str, str]]
    #: Positions of the entries in the caller's request list.
    indexes: list[int]

    @property
    def size(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class RequestSetPlan:
    """A validated submission: the account, the parts, and the notification settings."""

    ad_account_id: str  # always "act_<digits>"
    parts: list[RequestSetPart]
    notification_uri: str | None = None
    notification_mode: str | None = None

    @property
    def total(self) -> int:
        return sum(part.size for part in self.parts)


@dataclass
class SubmittedSet:
    """A request set of a plan as it exists on Graph: its id, and whether this run created it."""

    id: str
    name: str
    size: int
    created: bool


# --------------------------------------------------------------------------------------------------
# Validation of scalar inputs
# --------------------------------------------------------------------------------------------------


def normalize_ad_account_id(ad_account_id: Any) -> str:
    """Return ``act_<digits>`` for ``"act_123"``, ``"123"`` or ``123``; GraphInputError otherwise."""
    if isinstance(ad_account_id, bool) or not isinstance(ad_account_id, (str, int)):
        raise GraphInputError(
            f"ad_account_id must be 'act_<digits>' or '<digits>', got {type(ad_account_id).__name__}: "
            f"{ad_account_id!r}"
        )
    match = _ACCOUNT_RE.match(str(ad_account_id))
    if not match or int(match.group(1)) == 0:
        raise GraphInputError(f"ad_account_id must be 'act_<digits>' or '<digits>', got {ad_account_id!r}")
    return f"act_{match.group(1)}"


def validate_notification_uri(uri: Any) -> str | None:
    """None, or an absolute http(s) URL with a host; GraphInputError otherwise."""
    if uri is None:
        return None
    if not isinstance(uri, str) or not uri.strip():
        raise GraphInputError(f"notification_uri must be an http(s) URL, got {uri!r}")
    parsed = urllib.parse.urlsplit(uri.strip())
    if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
        raise GraphInputError(f"notification_uri must be an absolute http(s) URL, got {uri!r}")
    return uri.strip()


def validate_notification_mode(mode: Any) -> str | None:
    """None, or ``OFF`` / ``ON_COMPLETE`` (any case accepted, upper-cased); GraphInputError otherwise."""
    if mode is None:
        return None
    if isinstance(mode, str) and mode.strip().upper() in NOTIFICATION_MODES:
        return mode.strip().upper()
    raise GraphInputError(f"notification_mode must be one of {', '.join(NOTIFICATION_MODES)}, got {mode!r}")


def validate_set_name(name: Any, *, what: str = "name") -> str:
    """A non-empty string of at most MAX_NAME_LENGTH characters, without control characters."""
    if not isinstance(name, str) or not name.strip():
        raise GraphInputError(f"request set {what} must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise GraphInputError(
            f"request set {what} is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed "
            "(suffixes included)"
        )
    if any(ord(ch) < 32 for ch in name):
        raise GraphInputError(f"request set {what} must not contain control characters: {name!r}")
    return name


def validate_max_set_size(max_set_size: Any) -> int:
    if isinstance(max_set_size, bool) or not isinstance(max_set_size, int):
        raise GraphInputError(f"max_set_size must be an integer in 1..{MAX_SET_SIZE}, got {max_set_size!r}")
    if not 1 <= max_set_size <= MAX_SET_SIZE:
        raise GraphInputError(f"max_set_size must be in 1..{MAX_SET_SIZE}, got {max_set_size}")
    return max_set_size


# --------------------------------------------------------------------------------------------------
# References (body encoding: :mod:`airflow_fb_async.hooks.encoding`)
# --------------------------------------------------------------------------------------------------


def find_references(*texts: str) -> list[str]:
    """Names referenced by ``{result=NAME:...}`` in the texts (raw or percent-encoded), in order, unique."""
    return reference_names(*texts)


# --------------------------------------------------------------------------------------------------
# Requests: validation, splitting, naming
# --------------------------------------------------------------------------------------------------


def validate_requests(requests: Any) -> tuple[list[dict[str, str]], list[list[int]]]:
    """Validate the request list; return the encoded adbatch entries and, per entry, referenced indexes."""
    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
        raise GraphInputError(
            f"requests must be a list of {{'name', 'relative_url', 'body'}} dicts, got {type(requests).__name__}"
        )
    if not requests:
        raise GraphInputError("requests is empty: an async batch needs at least one request")
    entries: list[dict[str, str]] = []
    deps: list[list[int]] = []
    index_by_name: dict[str, int] = {}
    for index, request in enumerate(requests):
        if not isinstance(request, Mapping):
            raise GraphInputError(
                f"must be a dict with 'name', 'relative_url' and 'body', got {type(request).__name__}",
                index=index,
            )
        raw_name = request.get("name")
        req_name = raw_name if isinstance(raw_name, str) else None
        for key in request:
            if key not in REQUEST_KEYS:
                reason = _UNSUPPORTED_KEYS.get(
                    str(key), f"allowed keys are {', '.join(REQUEST_KEYS)}: drop {key!r}"
                )
                raise GraphInputError(f"unsupported key {key!r}: {reason}", index=index, name=req_name)
        for key in ("name", "relative_url"):
            value = request.get(key)
            if value is None:
                raise GraphInputError(f"{key!r} is required", index=index, name=req_name)
            if not isinstance(value, str) or not value.strip():
                raise GraphInputError(
                    f"{key!r} must be a non-empty string, got {value!r}", index=index, name=req_name
                )
        assert req_name is not None
        if "body" not in request or request["body"] is None:
            raise GraphInputError(
                "'body' is required (a URL-encoded string or a dict; use '' for none)",
                index=index,
                name=req_name,
            )
        body = request["body"]
        if not isinstance(body, (str, Mapping)):
            raise GraphInputError(
                f"'body' must be a URL-encoded string or a dict, got {type(body).__name__}",
                index=index,
                name=req_name,
            )
        if req_name in index_by_name:
            raise GraphInputError(
                f"duplicate name (also used by request #{index_by_name[req_name]}): names must be unique",
                index=index,
                name=req_name,
            )
        relative_url = request["relative_url"]
        encoded = encode_body(body, index=index, name=req_name)
        mine: list[int] = []
        for ref in find_references(relative_url, encoded):
            if ref == req_name:
                raise GraphInputError("references its own result", index=index, name=req_name)
            if ref not in index_by_name:
                later = any(isinstance(r, Mapping) and r.get("name") == ref for r in requests[index + 1 :])
                where = "a later request: a reference must point to an earlier one" if later else "no request"
                raise GraphInputError(
                    f"references {{result={ref}:...}} but {ref!r} is {where}", index=index, name=req_name
                )
            mine.append(index_by_name[ref])
        index_by_name[req_name] = index
        entries.append({"name": req_name, "relative_url": relative_url, "body": encoded})
        deps.append(mine)
    return entries, deps


def components(deps: Sequence[Iterable[int]]) -> list[list[int]]:
    """Connected components of the reference graph, each sorted, ordered by their first member."""
    parent = list(range(len(deps)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, targets in enumerate(deps):
        for j in targets:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(len(deps)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda group: group[0])


def split_into_parts(
    deps: Sequence[Iterable[int]], max_set_size: int, names: Sequence[str]
) -> list[list[int]]:
    """Pack reference components greedily, in order, into parts of at most ``max_set_size`` requests.

    Each part keeps the input order. A component larger than ``max_set_size`` cannot be split (its
    references only resolve inside one set): GraphInputError.
    """
    parts: list[list[int]] = []
    current: list[int] = []
    for group in components(deps):
        if len(group) > max_set_size:
            raise GraphInputError(
                f"a chain of {len(group)} requests linked by {{result=...}} references (starting at request "
                f"#{group[0]} {names[group[0]]!r}) does not fit in one request set of at most {max_set_size}; "
                "references only resolve inside one set: split the chain or raise max_set_size",
            )
        if current and len(current) + len(group) > max_set_size:
            parts.append(sorted(current))
            current = []
        current.extend(group)
    if current:
        parts.append(sorted(current))
    return parts


def part_names(name: str, count: int) -> list[str]:
    """``[name]`` for one part, else ``["{name} [part 1/n]", ...]``."""
    if count == 1:
        return [name]
    return [f"{name} [part {k}/{count}]" for k in range(1, count + 1)]


def plan_request_sets(
    ad_account_id: Any,
    requests: Any,
    name: Any,
    *,
    notification_uri: Any = None,
    notification_mode: Any = None,
    max_set_size: Any = MAX_SET_SIZE,
) -> RequestSetPlan:
    """Validate, encode, split and name a submission. No HTTP; raises GraphInputError on bad input."""
    account = normalize_ad_account_id(ad_account_id)
    validate_set_name(name)
    uri = validate_notification_uri(notification_uri)
    mode = validate_notification_mode(notification_mode)
    size = validate_max_set_size(max_set_size)
    entries, deps = validate_requests(requests)
    groups = split_into_parts(deps, size, [e["name"] for e in entries])
    names = part_names(name, len(groups))
    for part_name in names:
        validate_set_name(part_name, what="name (with its part suffix)")
    parts = [
        RequestSetPart(name=part_name, entries=[entries[i] for i in group], indexes=list(group))
        for part_name, group in zip(names, groups, strict=True)
    ]
    return RequestSetPlan(account, parts, uri, mode)


# --------------------------------------------------------------------------------------------------
# Reconcile and create
# --------------------------------------------------------------------------------------------------


def _existing_by_name(
    hook: _RequestSetHook, ad_account_id: str, wanted: set[str]
) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for item in hook.list_request_sets(ad_account_id, fields=SET_LIST_FIELDS):
        item_name = item.get("name")
        if item_name in wanted:
            found.setdefault(item_name, []).append(item)
    return found


def _pick(part: RequestSetPart, ad_account_id: str, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Choose the existing set for a part; a total_count mismatch is an error (a foreign set with our name)."""
    matching = [c for c in candidates if _as_int(c.get("total_count")) in (part.size, None)]
    if not matching:
        counts = ", ".join(f"{c.get('id')} has {c.get('total_count')}" for c in candidates)
        raise FacebookGraphError(
            f"request set name {part.name!r} is already used on {ad_account_id} by a set with a different "
            f"number of requests ({counts}; this part has {part.size}). Either the requests changed since "
            "that set was created under this name, or another job uses the name: pick another name."
        )
    if len(matching) > 1:
        log.warning(
            "%d request sets on %s are named %r; reusing %s",
            len(matching),
            ad_account_id,
            part.name,
            matching[0].get("id"),
        )
    return matching[0]


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _verify_known(
    hook: _RequestSetHook, plan: RequestSetPlan, known_ids: Sequence[str]
) -> list[SubmittedSet] | None:
    """Reuse ids remembered from an earlier try when they still match the plan part for part."""
    if len(known_ids) != len(plan.parts) or not all(isinstance(i, str) and i for i in known_ids):
        return None
    try:
        found = hook.get_request_sets(list(known_ids), fields=SET_LIST_FIELDS)
    except FacebookGraphError as err:
        log.info("Could not read remembered request sets (%s); reconciling by name", err)
        return None
    out = []
    for set_id, part in zip(known_ids, plan.parts, strict=True):
        item = found.get(set_id) or {}
        if item.get("name") != part.name or _as_int(item.get("total_count")) not in (part.size, None):
            return None
        out.append(SubmittedSet(id=set_id, name=part.name, size=part.size, created=False))
    return out


def _create_body(plan: RequestSetPlan, part: RequestSetPart) -> dict[str, str]:
    data = {"name": part.name, "adbatch": json.dumps(part.entries, separators=(",", ":"))}
    if plan.notification_uri is not None:
        data["notification_uri"] = plan.notification_uri
    if plan.notification_mode is not None:
        data["notification_mode"] = plan.notification_mode
    return data


def submit_plan(
    hook: _RequestSetHook,
    plan: RequestSetPlan,
    *,
    known_ids: Sequence[str] | None = None,
    ambiguous_checks: int = 3,
    ambiguous_delay: float = 1.0,
    max_ambiguous_creates: int = 3,
    on_part: Callable[[SubmittedSet], None] | None = None,
) -> list[SubmittedSet]:
    """Make every part of ``plan`` exist on Graph exactly once; return them in part order.

    ``on_part`` is called with each part as soon as it exists (so a task killed midway knows which
    sets to cancel).

    ``known_ids`` (ids remembered from an earlier try of the same task) are reused when they still
    match the parts by name and size; otherwise the account's sets are listed once and matched by
    exact name. Missing parts are created. A create answered by GraphAmbiguousError is reconciled by
    name again (``ambiguous_checks`` listings, ``ambiguous_delay`` seconds apart, for eventual
    consistency) and sent again only when the set is still absent, at most ``max_ambiguous_creates``
    times per part.
    """
    if known_ids:
        reused = _verify_known(hook, plan, known_ids)
        if reused is not None:
            log.info("Reusing the %d request set(s) remembered from an earlier try", len(reused))
            for submitted in reused:
                if on_part is not None:
                    on_part(submitted)
            return reused
    wanted = {part.name for part in plan.parts}
    existing = _existing_by_name(hook, plan.ad_account_id, wanted)
    out: list[SubmittedSet] = []
    for part in plan.parts:
        if part.name in existing:
            item = _pick(part, plan.ad_account_id, existing[part.name])
            log.info("Request set %r already exists as %s: not creating it again", part.name, item["id"])
            submitted = SubmittedSet(id=str(item["id"]), name=part.name, size=part.size, created=False)
        else:
            submitted = _create_part(
                hook, plan, part, ambiguous_checks, ambiguous_delay, max_ambiguous_creates
            )
        out.append(submitted)
        if on_part is not None:
            on_part(submitted)
    return out


def _create_part(
    hook: _RequestSetHook,
    plan: RequestSetPlan,
    part: RequestSetPart,
    ambiguous_checks: int,
    ambiguous_delay: float,
    max_ambiguous_creates: int,
) -> SubmittedSet:
    path = f"{plan.ad_account_id}/async_batch_requests"
    for attempt in range(1, max_ambiguous_creates + 1):
        try:
            answer = hook.post(path, data=_create_body(plan, part))
        except GraphAmbiguousError as err:
            log.warning(
                "Creating request set %r: the connection dropped after sending (%s); checking by name "
                "whether it was created",
                part.name,
                err.message,
            )
            for check in range(max(1, ambiguous_checks)):
                if check:
                    time.sleep(ambiguous_delay)
                found = _existing_by_name(hook, plan.ad_account_id, {part.name}).get(part.name)
                if found:
                    item = _pick(part, plan.ad_account_id, found)
                    log.info("Request set %r was created after all: %s", part.name, item["id"])
                    return SubmittedSet(id=str(item["id"]), name=part.name, size=part.size, created=True)
            if attempt == max_ambiguous_creates:
                raise
            log.warning("Request set %r is not on the account: creating it again", part.name)
            continue
        set_id = answer.get("id") if isinstance(answer, Mapping) else None
        if not set_id:
            raise FacebookGraphError(f"creating request set {part.name!r}: Graph answered without an id")
        return SubmittedSet(id=str(set_id), name=part.name, size=part.size, created=True)
    raise AssertionError("unreachable")  # pragma: no cover


def create_request_sets(
    hook: _RequestSetHook,
    ad_account_id: Any,
    requests: Any,
    name: Any,
    *,
    notification_uri: Any = None,
    notification_mode: Any = None,
    max_set_size: Any = MAX_SET_SIZE,
    known_ids: Sequence[str] | None = None,
    ambiguous_checks: int = 3,
    ambiguous_delay: float = 1.0,
) -> list[str]:
    """Validate, split, name, reconcile and create: the ids of the request sets, in part order.

    ``requests`` are ``{"name", "relative_url", "body"}`` dicts (body: URL-encoded string or dict).
    Everything is validated before the first HTTP call. Idempotent by name: calling it again with the
    same inputs returns the same ids and creates nothing.
    """
    plan = plan_request_sets(
        ad_account_id,
        requests,
        name,
        notification_uri=notification_uri,
        notification_mode=notification_mode,
        max_set_size=max_set_size,
    )
    submitted = submit_plan(
        hook, plan, known_ids=known_ids, ambiguous_checks=ambiguous_checks, ambiguous_delay=ambiguous_delay
    )
    return [s.id for s in submitted]
