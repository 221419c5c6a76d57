"""How stored objects are found and shown: node lookup, field selection, the views of request sets
and requests, and the one cursor paging function every list edge (and insights rows) goes through."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from . import model
from .core import ACT_RE, Call, decode_cursor, encode_cursor, parse_bool, parse_fields, seq_of
from .errors import param_error, unknown_object

if TYPE_CHECKING:
    from collections.abc import Callable

    from .context import Context


def resolve(ctx: Context, obj_id: str) -> dict[str, Any]:
    """The node ``obj_id`` names: ``me``, an ``act_<digits>`` account (made on first use) or a
    stored object; an unknown id is Graph's "does not exist" error."""
    obj_id = str(obj_id).strip()
    if obj_id == "me":
        return {"_type": model.USER, "id": model.USER_ID, "name": "Emulator User"}
    m = ACT_RE.match(obj_id)
    if m:
        return ctx.store.account(m.group(1))
    obj = ctx.store.get(obj_id)
    if obj is None:
        raise unknown_object(obj_id)
    return obj


def select(obj: dict[str, Any], fields: list[str] | None, default: list[str]) -> dict[str, Any]:
    """The asked-for ``fields`` of a view (``default`` when none), always with its ``id``."""
    wanted = fields or default
    out: dict[str, Any] = {}
    if "id" in obj and "id" not in wanted and obj.get("_type") != "adimage":
        out["id"] = obj["id"]
    for name in wanted:
        if name.startswith("_"):
            continue
        if name in obj:
            out[name] = obj[name]
    return out


def set_view(s: dict[str, Any]) -> dict[str, Any]:
    """Every field a request set can show (counts computed from its tally)."""
    return {
        "id": s["id"],
        "owner_id": s["owner_id"],
        "name": s["name"],
        "is_completed": model.is_completed(s),
        **model.counts(s),
        "notification_uri": s["notification_uri"],
        "notification_mode": s["notification_mode"],
        "notification_result": s["notification_result"],
        "notification_status": s["notification_status"],
        "created_time": s["created_time"],
        "updated_time": s["updated_time"],
    }


def request_view(r: dict[str, Any]) -> dict[str, Any]:
    """Every field an async request can show."""
    view = {"id": r["id"], "scope_object_id": r["scope_object_id"], "status": r["status"]}
    if r.get("result") is not None:
        view["result"] = r["result"]
    view["input"] = {"name": r["name"], "relative_url": r["relative_url"], "body": r["body"]}
    view["async_request_set"] = {"id": r["set_id"]}
    view["created_time"], view["updated_time"] = r["created_time"], r["updated_time"]
    return view


def render(obj: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """An object as Graph shows it, with the asked-for ``fields`` or its type's default ones."""
    otype = obj.get("_type", "")
    if otype == model.SET_TYPE:
        view = set_view(obj)
    elif otype == model.REQUEST_TYPE:
        view = request_view(obj)
    else:
        view = model.public(obj)
    return select(view, fields, model.DEFAULT_FIELDS.get(otype, model.FALLBACK_FIELDS))


def paginate(
    ctx: Context,
    call: Call,
    items: list[dict[str, Any]],
    render_one: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """One page of ``items`` (ordered by id) for ``limit`` / ``after`` / ``before``, with Graph's
    ``paging`` (absolute ``next`` / ``previous`` links carrying the token) and ``summary``."""
    params = call.params
    max_page = int(ctx.cfg["max_page_size"])
    try:
        limit = int(params.get("limit", 25))
    except ValueError:
        raise param_error("Param limit must be an integer") from None
    limit = max(1, min(limit, max_page))
    fields = parse_fields(params.get("fields"))
    after = params.get("after")
    before = params.get("before")
    had_cursor = bool(after or before)
    if after:
        pos = decode_cursor(after)
        items = [o for o in items if seq_of(o) > pos]
        page = items[:limit]
        more_after = len(items) > limit
        more_before = True
    elif before:
        pos = decode_cursor(before)
        earlier = [o for o in items if seq_of(o) < pos]
        page = earlier[-limit:]
        more_after = True
        more_before = len(earlier) > limit
    else:
        page = items[:limit]
        more_after = len(items) > limit
        more_before = False
    if call.empty_page:
        q = _link_query(call, limit)
        if after:
            q["after"] = after
        elif before:
            q["before"] = before
        return {"data": [], "paging": {"cursors": {}, "next": _link(call, q)}}
    show = render_one or (lambda o: render(o, fields))
    out: dict[str, Any] = {"data": [show(o) for o in page]}
    if page:
        first, last = encode_cursor(seq_of(page[0])), encode_cursor(seq_of(page[-1]))
        paging: dict[str, Any] = {"cursors": {"before": first, "after": last}}
        if more_after:
            paging["next"] = _link(call, {**_link_query(call, limit), "after": last})
        if had_cursor and more_before:
            paging["previous"] = _link(call, {**_link_query(call, limit), "before": first})
        out["paging"] = paging
    if parse_bool(params.get("summary")):
        out["summary"] = {"total_count": len(items)}
    return out


def _link_query(call: Call, limit: int) -> dict[str, str]:
    q = {
        k: v
        for k, v in call.query.items()
        if k not in ("after", "before", "access_token", "appsecret_proof", "appsecret_time", "limit")
    }
    q["limit"] = str(limit)
    if call.token:
        q["access_token"] = call.token
    return q


def _link(call: Call, q: dict[str, str]) -> str:
    return f"{call.base_url}/{call.version}/{call.path}?{urlencode(q)}"
