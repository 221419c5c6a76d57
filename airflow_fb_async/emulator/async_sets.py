"""Async batch request sets: creation, views, listing, update, cancel, background processing and
completion notifications."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import lenient_json
from .core import Call, now_iso, parse_bool, parse_form, parse_list_param, split_relative_url
from .errors import GraphError, missing_field, param_error
from .refs import RefError, referenced_names, substitute

if TYPE_CHECKING:
    from .engine import Engine

SET_DEFAULT_FIELDS = ["id", "owner_id", "name", "is_completed"]
REQUEST_DEFAULT_FIELDS = ["id", "scope_object_id", "status"]
MAX_SET_SIZE = 1000
INITIAL, IN_PROGRESS, SUCCESS, ERROR, CANCELED, ERROR_DEPENDENCY = (
    "INITIAL",
    "IN_PROGRESS",
    "SUCCESS",
    "ERROR",
    "CANCELED",
    "ERROR_DEPENDENCY",
)
TERMINAL = frozenset({SUCCESS, ERROR, CANCELED, ERROR_DEPENDENCY})
FAILED = frozenset({ERROR, CANCELED, ERROR_DEPENDENCY})
KNOWN_STATUSES = frozenset(
    {
        INITIAL,
        IN_PROGRESS,
        SUCCESS,
        ERROR,
        CANCELED,
        ERROR_DEPENDENCY,
        "PENDING_DEPENDENCY",
        "CANCELED_DEPENDENCY",
        "USER_CANCELED",
        "USER_CANCELED_DEPENDENCY",
        "ERROR_CONFLICTS",
    }
)
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


def _scope_of(eng: Engine, account_id: str, path: str, params: dict[str, str]) -> int:
    for key in ("adset_id", "campaign_id"):
        value = params.get(key, "")
        if value.isdigit():
            return int(value)
    segs = [s for s in path.split("/") if s]
    if len(segs) == 1 and segs[0].isdigit():
        obj = eng.objects.get(segs[0]) or {}
        parent = obj.get("adset_id") or obj.get("campaign_id")
        return int(parent) if parent else int(segs[0])
    return int(account_id)


# ---------------------------------------------------------------- create / views


def create_set(eng: Engine, call: Call, account_id: str) -> dict[str, Any]:
    params = call.params
    if call.internal:
        raise param_error("async_batch_requests cannot be nested in an async request")
    if not params.get("name", "").strip():
        raise missing_field("name", "async request set")
    if not params.get("adbatch", "").strip():
        raise missing_field("adbatch", "async request set")
    try:
        adbatch = lenient_json.loads(params["adbatch"])
    except ValueError as exc:
        raise GraphError(
            f"(#100) Param adbatch must be a JSON array: {exc}",
            100,
            user_title="Invalid adbatch",
            user_msg="adbatch is not valid JSON.",
        ) from None
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
    uri = params.get("notification_uri") or None
    if uri:
        check_notification_uri(uri)
    mode = (
        _mode(params["notification_mode"])
        if params.get("notification_mode")
        else ("ON_COMPLETE" if uri else "OFF")
    )
    ts = now_iso()
    set_id = eng.new_id()
    request_ids = []
    for i, entry in enumerate(adbatch):
        rid = eng.new_id()
        body = entry["body"]
        deps = sorted(set(referenced_names(entry["relative_url"]) + referenced_names(_unq(body))))
        _, path, query = split_relative_url(entry["relative_url"])
        scope = int(account_id)
        if not deps:
            try:
                scope = _scope_of(eng, account_id, path, {**query, **parse_form(body)})
            except ValueError:
                pass
        eng.add_object(
            {
                "_type": "async_request",
                "id": rid,
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
            },
            count=False,
        )
        request_ids.append(rid)
    set_obj = {
        "_type": "async_request_set",
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
        "request_ids": request_ids,
        "counts": {INITIAL: len(request_ids)},
    }
    eng.add_object(set_obj, count=False)
    eng.counters["request_sets_created"] += 1
    eng.active_sets.add(set_id)
    return {"id": set_id}


def _unq(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def counts(s: dict[str, Any]) -> dict[str, int]:
    c = s["counts"]
    return {
        "total_count": len(s["request_ids"]),
        "initial_count": c.get(INITIAL, 0),
        "in_progress_count": c.get(IN_PROGRESS, 0),
        "success_count": c.get(SUCCESS, 0),
        "error_count": c.get(ERROR, 0) + c.get(ERROR_DEPENDENCY, 0),
        "canceled_count": c.get(CANCELED, 0),
    }


def is_completed(s: dict[str, Any]) -> bool:
    c = s["counts"]
    return c.get(INITIAL, 0) == 0 and c.get(IN_PROGRESS, 0) == 0


def set_view(eng: Engine, s: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": s["id"],
        "owner_id": s["owner_id"],
        "name": s["name"],
        "is_completed": is_completed(s),
        **counts(s),
        "notification_uri": s["notification_uri"],
        "notification_mode": s["notification_mode"],
        "notification_result": s["notification_result"],
        "notification_status": s["notification_status"],
        "created_time": s["created_time"],
        "updated_time": s["updated_time"],
    }


def request_view(eng: Engine, r: dict[str, Any]) -> dict[str, Any]:
    view = {"id": r["id"], "scope_object_id": r["scope_object_id"], "status": r["status"]}
    if r.get("result") is not None:
        view["result"] = r["result"]
    view["input"] = {"name": r["name"], "relative_url": r["relative_url"], "body": r["body"]}
    view["async_request_set"] = {"id": r["set_id"]}
    view["created_time"], view["updated_time"] = r["created_time"], r["updated_time"]
    return view


# ---------------------------------------------------------------- listing


def _status_filter(params: dict[str, str]) -> set[str] | None:
    values = parse_list_param(params, "statuses")
    if values is None:
        values = parse_list_param(params, "status")
    if values is None:
        return None
    wanted = {v.upper() for v in values}
    unknown = wanted - KNOWN_STATUSES
    if unknown:
        raise param_error(f"Param status contains unknown values: {', '.join(sorted(unknown))}")
    return wanted


def _page_requests(eng: Engine, call: Call, reqs: list[dict[str, Any]]) -> dict[str, Any]:
    from .graph_objects import paginate

    wanted = _status_filter(call.params)
    if wanted is not None:
        reqs = [r for r in reqs if r["status"] in wanted]
    return paginate(eng, call, reqs)


def list_requests(eng: Engine, call: Call, s: dict[str, Any]) -> dict[str, Any]:
    return _page_requests(eng, call, [eng.objects[rid] for rid in s["request_ids"] if rid in eng.objects])


def _sets_of(eng: Engine, account_id: str) -> list[dict[str, Any]]:
    return [
        o
        for o in eng.objects.values()
        if o.get("_type") == "async_request_set" and o["account_id"] == account_id
    ]


def list_sets(eng: Engine, call: Call, account_id: str) -> dict[str, Any]:
    from .graph_objects import paginate

    sets = _sets_of(eng, account_id)
    if "is_completed" in call.params:
        flag = parse_bool(call.params["is_completed"])
        if flag is None:
            raise param_error("Param is_completed must be a boolean")
        sets = [s for s in sets if is_completed(s) == flag]
    return paginate(eng, call, sets)


def list_account_requests(eng: Engine, call: Call, account_id: str) -> dict[str, Any]:
    reqs = [
        o for o in eng.objects.values() if o.get("_type") == "async_request" and o["account_id"] == account_id
    ]
    return _page_requests(eng, call, reqs)


def list_adset_requests(eng: Engine, call: Call, adset_id: str) -> dict[str, Any]:
    target = int(adset_id)
    reqs = [
        o
        for o in eng.objects.values()
        if o.get("_type") == "async_request" and o["scope_object_id"] == target
    ]
    return _page_requests(eng, call, reqs)


# ---------------------------------------------------------------- update / cancel


def update_set(eng: Engine, call: Call, s: dict[str, Any]) -> dict[str, Any]:
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
    if "name" in params:
        if not params["name"].strip():
            raise missing_field("name", "async request set")
        s["name"] = params["name"]
    if "notification_uri" in params:
        if params["notification_uri"]:
            check_notification_uri(params["notification_uri"])
        s["notification_uri"] = params["notification_uri"]
    if "notification_mode" in params:
        s["notification_mode"] = _mode(params["notification_mode"])
    s["updated_time"] = now_iso()
    eng.mark_dirty()
    if is_completed(s):
        maybe_notify(eng, s)
    return {"success": True}


def _transition(eng: Engine, s: dict[str, Any], r: dict[str, Any], status: str, result: Any = None) -> None:
    c = s["counts"]
    c[r["status"]] = c.get(r["status"], 0) - 1
    c[status] = c.get(status, 0) + 1
    r["status"] = status
    if result is not None:
        r["result"] = result
    r["updated_time"] = s["updated_time"] = now_iso()
    eng.mark_dirty()


def cancel_request(eng: Engine, r: dict[str, Any]) -> dict[str, Any]:
    """Cancel one request if it has not started; one in progress runs to its end."""
    s = eng.objects.get(r["set_id"])
    if s is not None and r["status"] == INITIAL:
        _transition(eng, s, r, CANCELED)
        _after_change(eng, s)
    return {"success": True}


def cancel_set(eng: Engine, s: dict[str, Any]) -> dict[str, Any]:
    """Cancel the requests of a set that have not started; those in progress run to their end (the
    set stays in processing and completes when they do)."""
    for rid in s["request_ids"]:
        r = eng.objects.get(rid)
        if r is not None and r["status"] == INITIAL:
            _transition(eng, s, r, CANCELED)
    _after_change(eng, s)
    return {"success": True}


def _after_change(eng: Engine, s: dict[str, Any]) -> None:
    if is_completed(s):
        eng.active_sets.discard(s["id"])
        maybe_notify(eng, s)


# ---------------------------------------------------------------- processing


def tick(eng: Engine, now: float) -> None:
    """Advance every incomplete set; called with the engine lock held."""
    pace = float(eng.cfg["async_pace"])
    for sid in list(eng.active_sets):
        s = eng.objects.get(sid)
        if s is None or s.get("_type") != "async_request_set":
            eng.active_sets.discard(sid)
            continue
        rt = eng.runtime.setdefault(sid, {"credit": 0.0, "last": now, "first_open": 0})
        dt = max(0.0, now - rt["last"])
        rt["last"] = now
        if pace > 0:
            rt["credit"] = min(rt["credit"] + pace * dt, max(1.0, pace * 0.25))
        _advance_set(eng, sid, s, rt)


def step(eng: Engine, sid: str, starts: int) -> dict[str, Any]:
    """One processing pass of set ``sid`` allowed exactly ``starts`` starts (``/__admin/async_step``).

    The pace's own credit is kept aside and restored, so a step neither uses nor leaves credit.
    Called with the engine lock held; answers the set's counts after the pass.
    """
    s = eng.objects[sid]
    rt = eng.runtime.setdefault(sid, {"credit": 0.0, "last": time.monotonic(), "first_open": 0})
    paced = rt["credit"]
    rt["credit"] = float(starts)
    _advance_set(eng, sid, s, rt)
    rt["credit"] = paced
    return {**counts(s), "is_completed": is_completed(s)}


def _advance_set(eng: Engine, sid: str, s: dict[str, Any], rt: dict[str, Any]) -> None:
    _advance(eng, s, rt)
    if is_completed(s):
        eng.active_sets.discard(sid)
        eng.runtime.pop(sid, None)
        maybe_notify(eng, s)


def _advance(eng: Engine, s: dict[str, Any], rt: dict[str, Any]) -> None:
    reqs = [eng.objects[rid] for rid in s["request_ids"][rt["first_open"] :]]
    by_name = {eng.objects[rid]["name"]: eng.objects[rid] for rid in s["request_ids"]}
    any_ok = False
    any_wait = False
    for r in reqs:
        if r["status"] != INITIAL:
            continue
        state = "ok"
        for dep in r["deps"]:
            d = by_name.get(dep)
            if d is None:
                state = "unknown"
                break
            if d["status"] in FAILED:
                state = "failed"
                break
            if d["status"] != SUCCESS:
                state = "wait"
        if state == "unknown":
            _transition(
                eng,
                s,
                r,
                ERROR,
                {"error_code": 100, "error_message": f"Unknown request name in reference: {dep}"},
            )
        elif state == "failed":
            _transition(
                eng,
                s,
                r,
                ERROR_DEPENDENCY,
                {
                    "error_code": 100,
                    "error_message": f"The request {dep!r} this request depends on did not succeed",
                },
            )
        elif state == "wait":
            any_wait = True
        else:
            any_ok = True
            if rt["credit"] >= 1:
                rt["credit"] -= 1
                _transition(eng, s, r, IN_PROGRESS)
            else:
                break
    if any_wait and not any_ok and s["counts"].get(IN_PROGRESS, 0) == 0:
        # Nothing can ever run: a reference cycle. Fail the rest.
        for r in reqs:
            if r["status"] == INITIAL:
                _transition(
                    eng,
                    s,
                    r,
                    ERROR_DEPENDENCY,
                    {"error_code": 100, "error_message": "Circular dependency between requests"},
                )
    if not eng.cfg["async_hold_in_progress"]:
        # Started requests run in the tick that started them (the engine lock is held throughout),
        # so IN_PROGRESS is only seen from outside while async_hold_in_progress keeps them there.
        for r in reqs:
            if r["status"] == IN_PROGRESS:
                _execute(eng, s, r, by_name)
    ids = s["request_ids"]
    i = rt["first_open"]
    while i < len(ids) and eng.objects[ids[i]]["status"] in TERMINAL:
        i += 1
    rt["first_open"] = i


def _execute(eng: Engine, s: dict[str, Any], r: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> None:
    def lookup(name: str) -> Any:
        d = by_name.get(name)
        if d is None or d["status"] != SUCCESS:
            raise RefError(f"request {name!r} has no successful result")
        return d["result"]

    try:
        _, path, query = split_relative_url(r["relative_url"])
        path = substitute(path, lookup)
        query = {k: substitute(v, lookup) for k, v in query.items()}
        body = {k: substitute(v, lookup) for k, v in parse_form(r["body"]).items()}
    except RefError as exc:
        _transition(eng, s, r, ERROR, {"error_code": 100, "error_message": str(exc)})
        return
    params = {**query, **body}
    call = Call(method="POST", path=path, params=params, query=query, base_url=eng.base_url, internal=True)
    resp = eng.execute(call)
    try:
        r["scope_object_id"] = _scope_of(eng, s["account_id"], path, params)
    except ValueError:
        pass
    if resp.status < 300:
        _transition(eng, s, r, SUCCESS, resp.body)
    else:
        err = (resp.body or {}).get("error", {}) if isinstance(resp.body, dict) else {}
        _transition(
            eng,
            s,
            r,
            ERROR,
            {"error_code": err.get("code", 1), "error_message": err.get("message", "Unknown error")},
        )


# ---------------------------------------------------------------- notifications


def maybe_notify(eng: Engine, s: dict[str, Any]) -> None:
    if not (
        s["notification_mode"] == "ON_COMPLETE"
        and s["notification_uri"]
        and s["notification_status"] in ("not_sent", "sending")
        and is_completed(s)
    ):
        return
    if s["id"] in eng.notifying:
        return
    s["notification_status"] = "sending"
    eng.notifying.add(s["id"])
    eng.mark_dirty()
    payload = {
        "id": s["id"],
        "name": s["name"],
        "owner_id": s["owner_id"],
        "is_completed": True,
        **counts(s),
        "updated_time": s["updated_time"],
    }
    thread = threading.Thread(
        target=_send,
        args=(eng, s["id"], s["notification_uri"], payload, eng.generation),
        name="emulator-notify",
        daemon=True,
    )
    thread.start()


def _send(eng: Engine, set_id: str, uri: str, payload: dict[str, Any], generation: int) -> None:
    data = json.dumps(payload).encode()
    req = urllib.request.Request(uri, data=data, method="POST", headers={"Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            code = resp.status
        status, result = (
            ("sent", f"SUCCESS: HTTP {code}") if 200 <= code < 300 else ("failed", f"FAILED: HTTP {code}")
        )
    except urllib.error.HTTPError as exc:
        status, result = "failed", f"FAILED: HTTP {exc.code}"
    except Exception as exc:  # connection refused, timeout...
        status, result = "failed", f"FAILED: {type(exc).__name__}"
    with eng.lock:
        eng.notifying.discard(set_id)
        if eng.generation != generation:
            return
        s = eng.objects.get(set_id)
        if s is not None:
            s["notification_status"] = "sent"
            s["notification_result"] = result
            eng.mark_dirty()
        eng.notifications.append(
            {
                "uri": uri,
                "payload": payload,
                "status": status,
                "result": result,
                "ms": round((time.monotonic() - started) * 1000, 1),
            }
        )
