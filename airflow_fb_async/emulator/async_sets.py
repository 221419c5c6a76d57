"""Async batch request sets, the Graph side: create, list, update and cancel (``POST
act_X/async_batch_requests``, ``GET <set>/requests``, ``DELETE <set>``...). Each function with the
signature ``(ctx, call, node)`` is a handler named in the route table; the background processing
and the completion notifications are in ``async_processing``."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from . import model
from .async_processing import after_change, maybe_notify, scope_of
from .core import Call, load_json_array, now_iso, parse_bool, parse_form, parse_list_param, split_relative_url
from .errors import GraphError, missing_field, param_error, unknown_edge
from .model import INITIAL
from .refs import referenced_names
from .views import paginate, resolve

if TYPE_CHECKING:
    from .context import Context

MAX_SET_SIZE = 1000
NOTIFICATION_MODES = ("OFF", "ON_COMPLETE")


# ---------------------------------------------------------------- validation helpers


def check_notification_uri(uri: str) -> None:
    parts = urlsplit(uri)
    ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    if ok:
        host = parts.hostname or ""
        if host != "localhost":
            try:
                ok = ipaddress.ip_address(host).is_loopback
            except ValueError:
                ok = False
    if not ok:
        raise GraphError(
            "(#100) Param notification_uri must be a valid http(s) URL (the emulator only notifies loopback hosts)",
            100,
            user_title="Invalid notification_uri",
            user_msg=f"The notification URI {uri!r} is not allowed.",
        )


def _mode(value: str) -> str:
    mode = value.strip().upper()
    if mode not in NOTIFICATION_MODES:
        raise param_error("Param notification_mode must be one of {OFF, ON_COMPLETE}")
    return mode


def _adbatch(params: dict[str, str]) -> list[dict[str, Any]]:
    """The checked ``adbatch``: 1..1000 requests with unique names and string fields."""
    if not params.get("adbatch", "").strip():
        raise missing_field("adbatch", "async request set")
    adbatch = load_json_array(
        params["adbatch"], "adbatch", "Param adbatch must be a JSON array", "adbatch is not valid JSON."
    )
    if not isinstance(adbatch, list) or not adbatch:
        raise param_error("Param adbatch must be a non-empty JSON array of requests")
    if len(adbatch) > MAX_SET_SIZE:
        raise param_error(f"Too many requests in adbatch: {len(adbatch)} (maximum {MAX_SET_SIZE})")
    names: set[str] = set()
    for i, entry in enumerate(adbatch):
        if not isinstance(entry, dict):
            raise param_error(f"adbatch[{i}] must be an object with name, relative_url and body")
        for key in ("name", "relative_url", "body"):
            if not isinstance(entry.get(key), str) or (key != "body" and not entry[key].strip()):
                raise GraphError(
                    f"(#100) adbatch[{i}].{key} is required and must be a string",
                    100,
                    user_title=f"Missing field: {key}",
                    user_msg=f"Each request of adbatch needs a string '{key}'.",
                )
        if entry["name"] in names:
            raise param_error(f"Duplicate request name in adbatch: {entry['name']!r}")
        names.add(entry["name"])
    return adbatch


# ---------------------------------------------------------------- create


def create_set(ctx: Context, call: Call, account: dict[str, Any]) -> dict[str, Any]:
    """``POST act_X/async_batch_requests`` -> ``{"id"}``; the set is processed in the background."""
    params = call.params
    account_id = account["account_id"]
    if call.internal:
        raise param_error("async_batch_requests cannot be nested in an async request")
    if not params.get("name", "").strip():
        raise missing_field("name", "async request set")
    adbatch = _adbatch(params)
    uri = params.get("notification_uri") or None
    if uri:
        check_notification_uri(uri)
    mode = (
        _mode(params["notification_mode"])
        if params.get("notification_mode")
        else ("ON_COMPLETE" if uri else "OFF")
    )
    store = ctx.store
    ts = now_iso()
    set_id = store.new_id()
    requests = []
    for i, entry in enumerate(adbatch):
        body = entry["body"]
        deps = sorted(set(referenced_names(entry["relative_url"]) + referenced_names(unquote(body))))
        _, path, query = split_relative_url(entry["relative_url"])
        scope = int(account_id)
        if not deps:
            try:
                scope = scope_of(ctx, account_id, path, {**query, **parse_form(body)})
            except ValueError:
                pass
        requests.append(
            {
                "_type": model.REQUEST_TYPE,
                "id": store.new_id(),
                "set_id": set_id,
                "account_id": account_id,
                "index": i,
                "name": entry["name"],
                "relative_url": entry["relative_url"],
                "body": body,
                "deps": deps,
                "status": INITIAL,
                "result": None,
                "scope_object_id": scope,
                "created_time": ts,
                "updated_time": ts,
            }
        )
    set_obj = {
        "_type": model.SET_TYPE,
        "id": set_id,
        "account_id": account_id,
        "owner_id": int(account_id),
        "name": params["name"],
        "notification_uri": uri or "",
        "notification_mode": mode,
        "notification_status": "not_sent",
        "notification_result": "",
        "created_time": ts,
        "updated_time": ts,
        "request_ids": [r["id"] for r in requests],
        "counts": {INITIAL: len(requests)},
    }
    store.add_set(set_obj, requests)
    return {"id": set_id}


# ---------------------------------------------------------------- listing


def _status_filter(params: dict[str, str]) -> set[str] | None:
    values = parse_list_param(params, "statuses")
    if values is None:
        values = parse_list_param(params, "status")
    if values is None:
        return None
    wanted = {v.upper() for v in values}
    unknown = wanted - model.KNOWN_STATUSES
    if unknown:
        raise param_error(f"Param status contains unknown values: {', '.join(sorted(unknown))}")
    return wanted


def _page_requests(ctx: Context, call: Call, reqs: list[dict[str, Any]]) -> dict[str, Any]:
    wanted = _status_filter(call.params)
    if wanted is not None:
        reqs = [r for r in reqs if r["status"] in wanted]
    return paginate(ctx, call, reqs)


def list_requests(ctx: Context, call: Call, s: dict[str, Any]) -> dict[str, Any]:
    """``GET <set>/requests`` (``status`` / ``statuses`` filter)."""
    reqs = [r for r in (ctx.store.get(rid) for rid in s["request_ids"]) if r is not None]
    return _page_requests(ctx, call, reqs)


def list_requests_of_id(ctx: Context, call: Call, _root: dict[str, Any]) -> dict[str, Any]:
    """``GET /requests?id=<set>``: the same as ``GET <set>/requests``."""
    set_obj = resolve(ctx, call.params["id"])
    if set_obj.get("_type") != model.SET_TYPE:
        raise unknown_edge("requests", model.NODE_NAMES.get(set_obj.get("_type", ""), "Node"))
    return list_requests(ctx, call, set_obj)


def list_sets(ctx: Context, call: Call, account: dict[str, Any]) -> dict[str, Any]:
    """``GET act_X/asyncadrequestsets`` (``is_completed`` filter)."""
    sets = ctx.store.find(model.SET_TYPE, account_id=account["account_id"])
    if "is_completed" in call.params:
        flag = parse_bool(call.params["is_completed"])
        if flag is None:
            raise param_error("Param is_completed must be a boolean")
        sets = [s for s in sets if model.is_completed(s) == flag]
    return paginate(ctx, call, sets)


def list_account_requests(ctx: Context, call: Call, account: dict[str, Any]) -> dict[str, Any]:
    """``GET act_X/async_requests``."""
    return _page_requests(ctx, call, ctx.store.find(model.REQUEST_TYPE, account_id=account["account_id"]))


def list_adset_requests(ctx: Context, call: Call, adset: dict[str, Any]) -> dict[str, Any]:
    """``GET <adset>/asyncadrequests``: the requests whose scope is the ad set."""
    return _page_requests(ctx, call, ctx.store.find(model.REQUEST_TYPE, scope_object_id=int(adset["id"])))


# ---------------------------------------------------------------- update / cancel


def update_set(ctx: Context, call: Call, s: dict[str, Any]) -> dict[str, Any]:
    """``POST <set>``: ``name``, and the notification fields until the notification is sent."""
    params = call.params
    touches_notification = "notification_uri" in params or "notification_mode" in params
    if touches_notification and s["notification_status"] != "not_sent":
        raise GraphError(
            "(#100) notification_uri and notification_mode can only be changed before the notification is sent "
            f"(notification_status is {s['notification_status']})",
            100,
            user_title="Notification already sent",
            user_msg="The notification of this async request set was already sent.",
        )
    changes: dict[str, Any] = {}
    if "name" in params:
        if not params["name"].strip():
            raise missing_field("name", "async request set")
        changes["name"] = params["name"]
    if "notification_uri" in params:
        if params["notification_uri"]:
            check_notification_uri(params["notification_uri"])
        changes["notification_uri"] = params["notification_uri"]
    if "notification_mode" in params:
        changes["notification_mode"] = _mode(params["notification_mode"])
    ctx.store.update(s, {**changes, "updated_time": now_iso()})
    if model.is_completed(s):
        maybe_notify(ctx, s)
    return {"success": True}


def cancel_request(ctx: Context, call: Call, r: dict[str, Any]) -> dict[str, Any]:
    """``DELETE <request>``: cancel it if it has not started; one in progress runs to its end."""
    s = ctx.store.get(r["set_id"])
    if s is not None and r["status"] == INITIAL:
        ctx.store.set_request_status(s, r, model.CANCELED)
        after_change(ctx, s)
    return {"success": True}


def cancel_set(ctx: Context, call: Call, s: dict[str, Any]) -> dict[str, Any]:
    """``DELETE <set>``: cancel the requests that have not started; those in progress run to their
    end (the set stays in processing and completes when they do)."""
    for rid in s["request_ids"]:
        r = ctx.store.get(rid)
        if r is not None and r["status"] == INITIAL:
            ctx.store.set_request_status(s, r, model.CANCELED)
    after_change(ctx, s)
    return {"success": True}
