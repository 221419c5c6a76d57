"""Reading Graph's answers into typed, scrubbed errors.

:func:`error_from_response` turns a non-2xx answer (or a 2xx one carrying an ``error`` envelope)
into the :class:`~airflow_fb_async.exceptions.GraphAPIError` subclass it means (throttled, auth,
transient, other); :func:`ambiguous_from` the error of a non-repeatable call whose outcome is
uncertain. Every text field passes through the connection's scrubber (:func:`make_error`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_fb_async.exceptions import (
    GraphAmbiguousError,
    GraphAPIError,
    GraphAuthError,
    GraphThrottledError,
    GraphTransientError,
)
from airflow_fb_async.hooks.retry import AUTH_CODES, THROTTLE_CODES, is_uncertain_status
from airflow_fb_async.hooks.throttle import MAX_THROTTLE_WAIT, regain_seconds


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def parse_json_body(content: bytes) -> Any:
    """Parsed JSON of a body (None when empty). ValueError if not JSON."""
    if not content or content.isspace():  # isspace: no copy of a large answer, as strip() makes
        return None
    return json.loads(content)


def error_class_for(
    status: int | None, code: int | None, is_transient: bool, message: str
) -> type[GraphAPIError]:
    """Which typed error an answer maps to (throttle, auth, transient, other)."""
    if (code is not None and code in THROTTLE_CODES) or status == 429:
        return GraphThrottledError
    lowered = message.lower()
    if (
        (code is not None and code in AUTH_CODES)
        or "appsecret_proof" in lowered
        or "appsecret_time" in lowered
    ):
        return GraphAuthError
    if is_uncertain_status(status, code, is_transient):
        return GraphTransientError
    return GraphAPIError


def error_from_response(
    status: int,
    headers: Mapping[str, Any],
    content: bytes,
    *,
    method: str,
    path: str,
    scrub: Callable[[Any], str],
    regain_unit_seconds: float,
    accounts: Sequence[str] = (),
    max_wait: float = MAX_THROTTLE_WAIT,
) -> GraphAPIError:
    """A typed, scrubbed error for a non-2xx answer (or a 2xx one carrying an error envelope)."""
    try:
        body = parse_json_body(content)
    except ValueError:
        body = None
    envelope = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(envelope, Mapping):
        code = _int_or_none(envelope.get("code"))
        message = str(envelope.get("message") or "no message")
        fields: dict[str, Any] = {
            "code": code,
            "error_subcode": _int_or_none(envelope.get("error_subcode")),
            "type": envelope.get("type"),
            "is_transient": bool(envelope.get("is_transient")),
            "fbtrace_id": envelope.get("fbtrace_id"),
            "error_user_title": envelope.get("error_user_title"),
            "error_user_msg": envelope.get("error_user_msg"),
        }
    else:
        code = None
        snippet = content[:300].decode("utf-8", "replace").strip() if content else ""
        message = f"unexpected HTTP {status} answer" + (f": {snippet}" if snippet else " with an empty body")
        fields = {"code": None, "is_transient": False}
    cls = error_class_for(status, code, bool(fields.get("is_transient")), message)
    if cls is GraphAuthError and ("appsecret" in message.lower()):
        message += " (check the connection's app_secret and appsecret_time extras)"
    elif cls is GraphAuthError and code == 190:
        message += " (the connection's access token is invalid or expired)"
    return make_error(
        cls,
        message,
        scrub=scrub,
        http_status=status,
        method=method,
        path=path,
        retry_after=(
            regain_seconds(headers, regain_unit_seconds, accounts, max_wait)
            if cls is GraphThrottledError
            else None
        ),
        **fields,
    )


#: What a GraphAPIError carries besides its message (Graph's envelope, the HTTP status, the call).
_ENVELOPE_FIELDS = (
    "code",
    "error_subcode",
    "type",
    "is_transient",
    "fbtrace_id",
    "http_status",
    "error_user_title",
    "error_user_msg",
    "method",
    "path",
)


def ambiguous_from(error: GraphAPIError) -> GraphAmbiguousError:
    """The :class:`GraphAmbiguousError` for an uncertain answer to a call that is not repeatable.

    Keeps Graph's fields (code, subcode, HTTP status...) so callers can still tell what happened.
    """
    return GraphAmbiguousError(
        f"{error.message} (this call is not repeatable and may or may not have taken effect, "
        "so it was not resent: check before retrying)",
        **{name: getattr(error, name) for name in _ENVELOPE_FIELDS},
    )


def make_error(
    cls: type[GraphAPIError],
    message: str,
    *,
    scrub: Callable[[Any], str],
    retry_after: float | None = None,
    **fields: Any,
) -> GraphAPIError:
    """Build a typed error with every text field scrubbed."""
    for name in ("error_user_title", "error_user_msg", "path", "fbtrace_id", "type"):
        if fields.get(name) is not None:
            fields[name] = scrub(fields[name])
    if issubclass(cls, GraphThrottledError):
        return cls(scrub(message), retry_after=retry_after, **fields)
    return cls(scrub(message), **fields)
