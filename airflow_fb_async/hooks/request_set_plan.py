"""Async request sets, the pure part: validation, body encoding, splitting into parts, naming.

No HTTP here. :func:`plan_request_sets` validates everything *before any HTTP call* (each problem
raises :class:`~airflow_fb_async.exceptions.GraphInputError` naming the offending request), encodes
dict bodies to URL-encoded strings (:mod:`.encoding`), splits the requests into parts of at most
``max_set_size`` (1000, Graph's cap) without ever cutting a ``{result=NAME:...}`` reference chain,
and names the parts deterministically (:func:`part_names`). With an idempotency key every name ends
with a marker ``[#<12 hex>]`` / ``[part k/n #<12 hex>]`` derived from the account and the key: Graph
has no idempotency keys, so the marker is how a submission is found again on the account after a
lost answer or in a later try (:mod:`.request_sets` does the reconciling).
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.encoding import encode_body
from airflow_fb_async.hooks.grouping import linked_groups
from airflow_fb_async.hooks.ids import normalize_ad_account_id
from airflow_fb_async.hooks.references import reference_names

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
#: Hex digits of an idempotency key's digest in set names.
KEY_DIGEST_LENGTH = 12
#: ``[#digest]`` or ``[part k/n #digest]`` closing a set name.
_MARKER_RE = re.compile(r"\[(?:part (\d+)/(\d+) )?#([0-9a-f]{12})\]\Z")


@dataclass(frozen=True)
class RequestSetPart:
    """One request set to be: its deterministic name and its adbatch entries (bodies encoded)."""

    name: str
    entries: list[dict[str, str]]
    #: Positions of the entries in the caller's request list.
    indexes: list[int]
    #: 1-based position of the part in its plan.
    number: int = 1

    @property
    def size(self) -> int:
        """Number of requests in this part."""
        return len(self.entries)


@dataclass(frozen=True)
class RequestSetPlan:
    """A validated submission: the account, the parts, and the notification settings."""

    ad_account_id: str  # always "act_<digits>"
    #: A list, or a sequence that reads each part when asked (a requests file, one part in memory).
    parts: Sequence[RequestSetPart]
    notification_uri: str | None = None
    notification_mode: str | None = None
    #: Digest of the idempotency key (see :func:`key_digest`), carried in every part's name; None
    #: without a key.
    key_digest: str | None = None

    @property
    def total(self) -> int:
        """Number of requests across every part."""
        return sum(part.size for part in self.parts)


# --------------------------------------------------------------------------------------------------
# Validation of scalar inputs
# --------------------------------------------------------------------------------------------------


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
    """An int in 1..MAX_SET_SIZE (Graph's cap on requests per set); GraphInputError otherwise."""
    if isinstance(max_set_size, bool) or not isinstance(max_set_size, int):
        raise GraphInputError(f"max_set_size must be an integer in 1..{MAX_SET_SIZE}, got {max_set_size!r}")
    if not 1 <= max_set_size <= MAX_SET_SIZE:
        raise GraphInputError(f"max_set_size must be in 1..{MAX_SET_SIZE}, got {max_set_size}")
    return max_set_size


# --------------------------------------------------------------------------------------------------
# Requests: validation, splitting, naming
# --------------------------------------------------------------------------------------------------


def validate_requests(requests: Any) -> tuple[list[dict[str, str]], list[list[int]]]:
    """Validate the request list; return the encoded adbatch entries and, per entry, referenced indexes."""
    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
        raise GraphInputError(
            f"requests must be a list of {{'name', 'relative_url', 'body'}} dicts, got {type(requests).__name__}"
        )
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
        for ref in reference_names(relative_url, encoded):
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
    return linked_groups(range(len(deps)), lambda i: deps[i])


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


def part_names(name: str, count: int, digest: str | None = None) -> list[str]:
    """Deterministic part names.

    Without a key: ``[name]`` for one part, else ``["{name} [part 1/n]", ...]``. With a key digest
    the marker closes the name: ``"{name} [#digest]"``, ``"{name} [part 1/n #digest]"``.
    """
    if digest is None:
        if count == 1:
            return [name]
        return [f"{name} [part {k}/{count}]" for k in range(1, count + 1)]
    if count == 1:
        return [f"{name} [#{digest}]"]
    return [f"{name} [part {k}/{count} #{digest}]" for k in range(1, count + 1)]


def key_digest(ad_account_id: str, idempotency_key: str) -> str:
    """The short marker of an idempotency key on an account: 12 hex digits of a SHA-256."""
    return hashlib.sha256(f"{ad_account_id}\n{idempotency_key}".encode()).hexdigest()[:KEY_DIGEST_LENGTH]


def parse_marker(name: Any) -> tuple[str, int, int] | None:
    """``(digest, k, n)`` of a set name that ends with a key marker (:func:`part_names`), else None."""
    if not isinstance(name, str):
        return None
    match = _MARKER_RE.search(name)
    if match is None:
        return None
    if match.group(1) is None:
        return match.group(3), 1, 1
    return match.group(3), int(match.group(1)), int(match.group(2))


def validate_idempotency_key(key: Any) -> str | None:
    """None, or a non-empty string; GraphInputError otherwise."""
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip():
        raise GraphInputError(f"idempotency_key must be a non-empty string, got {key!r}")
    return key


@dataclass(frozen=True)
class SetOptions:
    """The settings of one submission, validated once: the account, the base name, notification
    settings, the set size and the idempotency key. Every planner (a request list here, a requests
    file in :mod:`airflow_fb_async.operators._files`) starts from one of these."""

    ad_account_id: str  # always "act_<digits>"
    name: str
    notification_uri: str | None = None
    notification_mode: str | None = None
    max_set_size: int = MAX_SET_SIZE
    idempotency_key: str | None = None

    @classmethod
    def validated(
        cls,
        ad_account_id: Any,
        name: Any,
        *,
        notification_uri: Any = None,
        notification_mode: Any = None,
        max_set_size: Any = MAX_SET_SIZE,
        idempotency_key: Any = None,
    ) -> SetOptions:
        """Check and normalise every setting (GraphInputError naming the bad one), before any HTTP."""
        return cls(
            normalize_ad_account_id(ad_account_id),
            validate_set_name(name),
            validate_notification_uri(notification_uri),
            validate_notification_mode(notification_mode),
            validate_max_set_size(max_set_size),
            validate_idempotency_key(idempotency_key),
        )

    @property
    def key_digest(self) -> str | None:
        """The marker every part name carries (:func:`key_digest`), None without a key."""
        return None if self.idempotency_key is None else key_digest(self.ad_account_id, self.idempotency_key)

    def part_names(self, count: int) -> list[str]:
        """The names of ``count`` parts (:func:`part_names`), each checked with its suffix."""
        names = part_names(self.name, count, self.key_digest) if count else []
        for part_name in names:
            validate_set_name(part_name, what="name (with its part suffix)")
        return names

    def plan(self, parts: Sequence[RequestSetPart]) -> RequestSetPlan:
        """The plan of these parts under these settings."""
        return RequestSetPlan(
            self.ad_account_id, parts, self.notification_uri, self.notification_mode, self.key_digest
        )

    def plan_requests(self, requests: Any) -> RequestSetPlan:
        """Validate, encode, split and name a request list (GraphInputError on bad input; no HTTP)."""
        entries, deps = validate_requests(requests)
        groups = split_into_parts(deps, self.max_set_size, [e["name"] for e in entries])
        names = self.part_names(len(groups))
        return self.plan(
            [
                RequestSetPart(
                    name=part_name, entries=[entries[i] for i in group], indexes=list(group), number=k
                )
                for k, (part_name, group) in enumerate(zip(names, groups, strict=True), start=1)
            ]
        )


def plan_request_sets(ad_account_id: Any, requests: Any, name: Any, **options: Any) -> RequestSetPlan:
    """Validate, encode, split and name a submission. No HTTP; raises GraphInputError on bad input.

    ``options`` are :meth:`SetOptions.validated`'s keywords (``notification_uri``,
    ``notification_mode``, ``max_set_size``, ``idempotency_key``). An empty request list gives a
    plan without parts. With ``idempotency_key`` every part name ends with the key's marker
    (:func:`part_names`), so the parts can be found again on the account.
    """
    return SetOptions.validated(ad_account_id, name, **options).plan_requests(requests)
