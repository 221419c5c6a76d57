"""Async request sets, the background side: the paced processing of requests (``tick``, and the
clock-free ``step`` behind ``/__admin/async_step``) and the completion notifications.

Each tick gives every incomplete set ``async_pace`` x dt starts of credit; a request starts when its
dependencies (``{result=name:...}`` references) succeeded, fails ``ERROR_DEPENDENCY`` when one did
not, and runs at once through ``Context.execute`` as an internal call (no auth, no throttling).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from . import model
from .core import Call, parse_form, split_relative_url
from .model import ERROR, ERROR_DEPENDENCY, FAILED, IN_PROGRESS, INITIAL, SUCCESS, TERMINAL
from .refs import RefError, substitute

if TYPE_CHECKING:
    from .context import Context


def scope_of(ctx: Context, account_id: str, path: str, params: dict[str, str]) -> int:
    """The ``scope_object_id`` of a request: its ad set or campaign, else the account."""
    for key in ("adset_id", "campaign_id"):
        value = params.get(key, "")
        if value.isdigit():
            return int(value)
    segs = [s for s in path.split("/") if s]
    if len(segs) == 1 and segs[0].isdigit():
        obj = ctx.store.get(segs[0]) or {}
        parent = obj.get("adset_id") or obj.get("campaign_id")
        return int(parent) if parent else int(segs[0])
    return int(account_id)


def tick(ctx: Context, now: float) -> None:
    """Advance every incomplete set; called with the store lock held."""
    pace = float(ctx.cfg["async_pace"])
    for sid in ctx.store.active_sets():
        s = ctx.store.get(sid)
        if s is None or s.get("_type") != model.SET_TYPE:
            ctx.store.set_done(sid)
            continue
        rt = ctx.store.set_runtime(sid, now)
        dt = max(0.0, now - rt["last"])
        rt["last"] = now
        if pace > 0:
            rt["credit"] = min(rt["credit"] + pace * dt, max(1.0, pace * 0.25))
        _advance_set(ctx, s, rt)


def step(ctx: Context, sid: str, starts: int) -> dict[str, Any]:
    """One processing pass of set ``sid`` allowed exactly ``starts`` starts (``/__admin/async_step``).

    The pace's own credit is kept aside and restored, so a step neither uses nor leaves credit.
    Called with the store lock held; answers the set's counts after the pass.
    """
    s = ctx.store.get(sid)
    assert s is not None  # the caller checked that sid is an active set
    rt = ctx.store.set_runtime(sid, time.monotonic())
    paced = rt["credit"]
    rt["credit"] = float(starts)
    _advance_set(ctx, s, rt)
    rt["credit"] = paced
    return {**model.counts(s), "is_completed": model.is_completed(s)}


def after_change(ctx: Context, s: dict[str, Any]) -> None:
    """After requests of ``s`` changed outside processing (a cancel): finish it if it is complete."""
    if model.is_completed(s):
        ctx.store.set_done(s["id"])
        maybe_notify(ctx, s)


def _advance_set(ctx: Context, s: dict[str, Any], rt: dict[str, Any]) -> None:
    _advance(ctx, s, rt)
    after_change(ctx, s)


def _advance(ctx: Context, s: dict[str, Any], rt: dict[str, Any]) -> None:
    store = ctx.store
    every: list[dict[str, Any]] = rt["requests"]
    by_name: dict[str, dict[str, Any]] = rt["by_name"]
    reqs = every[rt["first_open"] :]
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
            message = f"Unknown request name in reference: {dep}"
            store.set_request_status(s, r, ERROR, {"error_code": 100, "error_message": message})
        elif state == "failed":
            message = f"The request {dep!r} this request depends on did not succeed"
            store.set_request_status(s, r, ERROR_DEPENDENCY, {"error_code": 100, "error_message": message})
        elif state == "wait":
            any_wait = True
        else:
            any_ok = True
            if rt["credit"] >= 1:
                rt["credit"] -= 1
                store.set_request_status(s, r, IN_PROGRESS)
            else:
                break
    if any_wait and not any_ok and s["counts"].get(IN_PROGRESS, 0) == 0:
        # Nothing can ever run: a reference cycle. Fail the rest.
        cycle = {"error_code": 100, "error_message": "Circular dependency between requests"}
        for r in reqs:
            if r["status"] == INITIAL:
                store.set_request_status(s, r, ERROR_DEPENDENCY, dict(cycle))
    if not ctx.cfg["async_hold_in_progress"]:
        # Started requests run in the tick that started them (the store lock is held throughout),
        # so IN_PROGRESS is only seen from outside while async_hold_in_progress keeps them there.
        for r in reqs:
            if r["status"] == IN_PROGRESS:
                _execute(ctx, s, r, by_name)
    i = rt["first_open"]
    while i < len(every) and every[i]["status"] in TERMINAL:
        i += 1
    rt["first_open"] = i


def _execute(ctx: Context, s: dict[str, Any], r: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> None:
    def lookup(name: str) -> Any:
        d = by_name.get(name)
        if d is None or d["status"] != SUCCESS:
            raise RefError(f"request {name!r} has no successful result")
        return d["result"]

    store = ctx.store
    try:
        _, path, query = split_relative_url(r["relative_url"])
        path = substitute(path, lookup)
        query = {k: substitute(v, lookup) for k, v in query.items()}
        body = {k: substitute(v, lookup) for k, v in parse_form(r["body"]).items()}
    except RefError as exc:
        store.set_request_status(s, r, ERROR, {"error_code": 100, "error_message": str(exc)})
        return
    params = {**query, **body}
    call = Call(method="POST", path=path, params=params, query=query, base_url=ctx.base_url, internal=True)
    resp = ctx.execute(call)
    try:
        store.update(r, {"scope_object_id": scope_of(ctx, s["account_id"], path, params)})
    except ValueError:
        pass
    if resp.status < 300:
        store.set_request_status(s, r, SUCCESS, resp.body)
    else:
        err = (resp.body or {}).get("error", {}) if isinstance(resp.body, dict) else {}
        result = {"error_code": err.get("code", 1), "error_message": err.get("message", "Unknown error")}
        store.set_request_status(s, r, ERROR, result)


# ---------------------------------------------------------------- notifications


def maybe_notify(ctx: Context, s: dict[str, Any]) -> None:
    """POST the completion summary of ``s`` to its ``notification_uri`` (in a thread), once."""
    if not (
        s["notification_mode"] == "ON_COMPLETE"
        and s["notification_uri"]
        and s["notification_status"] in ("not_sent", "sending")
        and model.is_completed(s)
    ):
        return
    if not ctx.store.begin_notify(s):
        return
    payload = {
        "id": s["id"],
        "name": s["name"],
        "owner_id": s["owner_id"],
        "is_completed": True,
        **model.counts(s),
        "updated_time": s["updated_time"],
    }
    thread = threading.Thread(
        target=_send,
        args=(ctx, s["id"], s["notification_uri"], payload, ctx.store.generation),
        name="emulator-notify",
        daemon=True,
    )
    thread.start()


def _send(ctx: Context, set_id: str, uri: str, payload: dict[str, Any], generation: int) -> None:
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
    record = {
        "uri": uri,
        "payload": payload,
        "status": status,
        "result": result,
        "ms": round((time.monotonic() - started) * 1000, 1),
    }
    ctx.store.end_notify(set_id, generation, record)
