"""The emulator's request pipeline (no sockets here: see ``server``; no Graph state: see ``store``).

One HTTP call, in :meth:`Engine.handle_http`::

    parse (version, query + form, token)  -> count it, take its fault (queued, else random)
    -> latency (a reset meanwhile drops it)  -> a fault that answers instead of the work
       (500, throttle, token_rejected, code1, drop_before)  or the work: auth, then a standard batch
       (``batch.run``) or :meth:`Engine.execute`  -> a fault that replaces the answer after the
       work (short_batch, drop_after_commit, error_after_commit)  -> call log  -> JSON

:meth:`Engine.execute` runs one Graph call (top-level, batch entry or async request) under the
store lock: throttling, then ``routes.dispatch``, then usage headers and the ETag. The admin API
(``/__admin/...``) is :data:`ADMIN`, a table like the Graph route table.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from . import async_processing, batch, controls, insights, model, routes
from .auth import check_auth, token_of
from .call_log import CallLog
from .config import default_config, validate_config
from .core import (
    ACT_RE,
    DEFAULT_VERSION,
    Call,
    Resp,
    classify,
    parse_body,
    parse_list_param,
    split_version,
)
from .errors import GraphError, internal_error, param_error, server_error, throttle_error, token_rejected
from .faults import FaultQueue
from .refs import RefError
from .store import Store
from .throttle import UsageTracker

if TYPE_CHECKING:
    from collections.abc import Callable

#: Faults that answer a call instead of its work (the work is not done).
ANSWERED_BY_FAULT = frozenset({"500", "throttle", "token_rejected", "code1"})


@dataclass(frozen=True)
class HttpResult:
    """What the server sends back; ``drop``: close the connection without an answer."""

    status: int
    headers: dict[str, str]
    body: bytes
    drop: bool = False


DROPPED = HttpResult(0, {}, b"", drop=True)


class Engine:
    """The pipeline around the :class:`Store`: faults, auth, throttling, counters, the call log,
    dispatch to the route table, and the admin API. Handlers see it as a ``context.Context``."""

    def __init__(
        self,
        tokens: list[str] | None = None,
        app_secret: str | None = None,
        latency: float = 0.0,
        null_fraction: float = 0.0,
        async_pace: float = 200.0,
        state_file: str | None = None,
    ) -> None:
        self.store = Store()
        self.tokens = set(tokens) if tokens else {"emulator-token"}
        self.initial_cfg = default_config(latency, null_fraction, async_pace, app_secret)
        self.cfg = copy.deepcopy(self.initial_cfg)
        self.call_log = CallLog(self.tokens)
        self.faults = FaultQueue()
        self.usage = UsageTracker()
        self.base_url = ""
        self.state_file = state_file
        self.conn_lock = threading.Lock()
        self.active_connections = 0
        self.active_requests = 0

    @property
    def lock(self) -> threading.RLock:
        """The store's lock, which also guards the engine's own state (faults, usage, call log)."""
        return self.store.lock

    # ------------------------------------------------------------ one Graph call

    def accounts_of(self, call: Call) -> list[str | None]:
        if call.accounts is None:
            call.accounts = self._accounts_of(call)
        return call.accounts

    def _accounts_of(self, call: Call) -> list[str | None]:
        segs = call.segs
        try:
            if not segs:
                ids = parse_list_param(call.params, "ids") or (
                    [call.params["id"]] if "id" in call.params else []
                )
            elif segs[0] == "requests":
                ids = [call.params.get("id", "")]
            else:
                ids = [segs[0]]
        except GraphError:
            ids = []
        out: list[str | None] = []
        for i in ids[:50]:
            m = ACT_RE.match(i)
            acc = m.group(1) if m else (self.store.get(i) or {}).get("account_id")
            if acc and acc not in out:
                out.append(acc)
        return out or [None]

    def _usage_headers(self, call: Call, accounts: list[str | None]) -> dict[str, str]:
        if call.internal:
            return {}
        return self.usage.headers(accounts, self.cfg, insights.use_case(self, call))

    def error_resp(self, call: Call, err: GraphError) -> Resp:
        with self.lock:
            headers = self._usage_headers(call, self.accounts_of(call))
        return Resp(err.status, err.body(), headers)

    def execute(self, call: Call) -> Resp:
        """Run one Graph call (top-level, batch entry or async request)."""
        with self.lock:
            accounts = self.accounts_of(call)
            try:
                if not call.internal and not self.usage.admit(accounts, self.cfg):
                    self.store.count("throttled_calls")
                    raise throttle_error(int(self.cfg["throttle_code"]))
                body = routes.dispatch(self, call)
                status = 200
            except GraphError as err:
                status, body = err.status, err.body()
            except RefError as err:
                status, body = 400, param_error(str(err)).body()
            except Exception:
                traceback.print_exc(file=sys.stderr)
                ierr = internal_error()
                status, body = ierr.status, ierr.body()
            headers = self._usage_headers(call, accounts)
        if call.method == "GET" and status == 200:
            # Insertion order is deterministic, so the compact serialization is a stable ETag source.
            text = json.dumps(body, separators=(",", ":"))
            etag = '"' + hashlib.sha1(text.encode()).hexdigest() + '"'
            headers["ETag"] = etag
            if call.headers.get("if-none-match", "").strip() == etag:
                return Resp(304, None, headers)
            return Resp(status, body, headers, text)
        return Resp(status, body, headers)

    # ------------------------------------------------------------ one HTTP call

    def handle_http(
        self, method: str, url_path: str, qs: str, headers: dict[str, str], raw: bytes, base_url: str
    ) -> HttpResult:
        """Serve one HTTP request, counting how many are being served at once (in flight)."""
        with self.conn_lock:
            self.active_requests += 1
            self.store.peak("max_concurrent_requests", self.active_requests)
        try:
            return self._handle_http(method, url_path, qs, headers, raw, base_url)
        finally:
            with self.conn_lock:
                self.active_requests -= 1

    def _handle_http(
        self, method: str, url_path: str, qs: str, headers: dict[str, str], raw: bytes, base_url: str
    ) -> HttpResult:
        started = time.monotonic()
        version, path = split_version(url_path)
        query = dict(parse_qsl(qs, keep_blank_values=True))
        parse_error: GraphError | None = None
        try:
            form, files = parse_body(headers.get("content-type", ""), raw)
        except (ValueError, UnicodeDecodeError) as exc:
            form, files = {}, {}
            parse_error = param_error(f"Malformed request body: {exc}")
        params = {**query, **form}
        call = Call(
            method=method,
            path=path,
            params=params,
            query=query,
            files=files,
            headers=headers,
            token=token_of(params, headers),
            base_url=base_url,
            version=version or DEFAULT_VERSION,
        )
        kind = classify(method, path, params)
        store = self.store
        with self.lock:
            # The call belongs to the generation it is counted in: a reset while it runs keeps it
            # out of the fresh call log, as it is out of the fresh counters.
            generation = store.generation
            ended = store.generation_ended
            store.count("http_calls")
            store.count_in("calls_by_kind", kind)
            call.ordinal = self.faults.next_ordinal()
            full = f"{url_path}?{qs}" if qs else url_path
            fault = self.faults.take(method, url_path, full, kind, call.ordinal)
            latency = float(self.cfg["latency"]) + random.uniform(0, float(self.cfg["latency_jitter"]))
        if latency > 0:
            ended.wait(latency)  # a reset cuts the sleep short: the call then drops at once
            if generation != store.generation:
                return DROPPED  # reset while this call slept: it must not touch the fresh world
        ftype = fault["type"] if fault else None
        if ftype == "entry_error_after_commit":
            call.entry_fault = fault
        entries = None
        if kind == "batch":
            try:
                entries = batch.parse_entries(params.get("batch"))
            except GraphError:
                pass

        def log(status: int | None, logged_fault: str | None) -> None:
            size = len(entries) if entries is not None else None
            with self.lock:
                if generation == store.generation:  # a call begun before a reset is not in the fresh log
                    self.call_log.record(method, url_path, query, status, kind, logged_fault, started, size)

        if ftype == "drop_before":
            return self._drop(log, ftype)
        if fault is not None and ftype in ANSWERED_BY_FAULT:
            resp = self._fault_answer(call, kind, fault, entries)
        else:
            if ftype == "empty_page":
                store.count_in("faults_injected", "empty_page")
                call.empty_page = True
            resp = self._work(call, kind, entries, parse_error)
        if ftype == "short_batch" and resp.status == 200 and isinstance(resp.body, list):
            # The work is done, but the answer lists only the first half of the entries.
            store.count_in("faults_injected", "short_batch")
            resp = Resp(200, resp.body[: len(resp.body) // 2], resp.headers)
        if ftype == "drop_after_commit":
            return self._drop(log, ftype)
        if ftype == "error_after_commit":
            # The work is done and committed; the answer is replaced by a transient code 2 error.
            store.count_in("faults_injected", "error_after_commit")
            resp = self.error_resp(call, server_error())
        elif ftype is None and call.entry_faults:
            ftype = "entry_error_after_commit"  # random entry faults mark the call they happened in
        log(resp.status, ftype)
        if resp.body is None:
            body = b""
        elif "pretty" in params and params["pretty"] not in ("0", "false"):
            body = json.dumps(resp.body, indent=2).encode()
        else:
            body = json.dumps(resp.body, separators=(",", ":")).encode()
        return HttpResult(resp.status, resp.headers, body)

    def _drop(self, log: Callable[[int | None, str | None], None], ftype: str) -> HttpResult:
        """Close the connection without an answer (a ``drop_*`` fault), logged with no status."""
        self.store.count_in("faults_injected", "drop")
        log(None, ftype)
        return DROPPED

    def _work(
        self, call: Call, kind: str, entries: list[dict[str, Any]] | None, parse_error: GraphError | None
    ) -> Resp:
        """Auth, then the batch or the one call; any error as Graph's envelope."""
        try:
            if parse_error is not None:
                raise parse_error
            check_auth(call, self.tokens, self.cfg["app_secret"])
            return batch.run(self, call, entries) if kind == "batch" else self.execute(call)
        except GraphError as err:
            return self.error_resp(call, err)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return self.error_resp(call, internal_error())

    def _fault_answer(
        self, call: Call, kind: str, fault: dict[str, Any], entries: list[dict[str, Any]] | None
    ) -> Resp:
        """The answer of a fault that stands in for the work (:data:`ANSWERED_BY_FAULT`);
        ``entries``: a batch's parsed entries (None when it is no batch or did not parse)."""
        ftype = fault["type"]
        self.store.count_in("faults_injected", ftype)
        if ftype == "throttle":
            with self.lock:
                accounts = (
                    batch.accounts_of_entries(self, entries or [])
                    if kind == "batch"
                    else self.accounts_of(call)
                )
                seconds = int(fault["regain_minutes"]) * float(self.cfg["regain_unit_seconds"])
                for acc in accounts:
                    self.usage.block(acc, seconds)
                err = throttle_error(int(self.cfg["throttle_code"]))
                headers = self.usage.headers(accounts, self.cfg, insights.use_case(self, call))
            return Resp(400, err.body(), headers)
        if ftype == "token_rejected":
            # Refused before any work, as Graph refuses an expired or revoked token.
            return self.error_resp(call, token_rejected(fault["subcode"]))
        if ftype == "code1":
            message = "Please reduce the amount of data you're asking for, then retry your request"
            return self.error_resp(call, GraphError(message, 1, "OAuthException", is_transient=True))
        return self.error_resp(call, server_error())  # "500"

    # ------------------------------------------------------------ connections

    def conn_opened(self) -> None:
        with self.conn_lock:
            self.active_connections += 1
            self.store.peak("max_concurrent_connections", self.active_connections)

    def conn_closed(self) -> None:
        with self.conn_lock:
            self.active_connections -= 1

    # ------------------------------------------------------------ admin

    def reset(self) -> None:
        with self.lock:
            self.store.reset(connections_open=self.active_connections)
            self.call_log.clear()
            self.faults.clear()
            self.faults.set_random(None)
            self.cfg = copy.deepcopy(self.initial_cfg)
            self.usage.reset()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        values = validate_config(changes)
        with self.lock:
            self.cfg.update(values)
            if "random_faults" in values:
                self.faults.set_random(values["random_faults"])
            return copy.deepcopy(self.cfg)

    def admin(self, method: str, sub: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
        try:
            payload = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except ValueError as exc:
            return 400, {"error": {"message": f"invalid JSON body: {exc}"}}
        sub = sub.strip("/")
        answer = ADMIN.get((method, sub)) or ADMIN.get(("*", sub))
        if answer is None:
            return 404, {"error": {"message": f"unknown admin endpoint {method} /__admin/{sub}"}}
        try:
            with self.lock:
                return 200, answer(self, query, payload)
        except (ValueError, TypeError) as exc:
            return 400, {"error": {"message": str(exc)}}

    # ------------------------------------------------------------ persistence and background work

    def save_state(self) -> None:
        if self.state_file:
            self.store.save(self.state_file)

    def load_state(self) -> None:
        if self.state_file:
            self.store.load(self.state_file)

    def resume_notifications(self) -> None:
        """After a restart: send the notifications of completed sets that were not sent yet."""
        with self.lock:
            for s in self.store.find(model.SET_TYPE):
                if model.is_completed(s):
                    async_processing.maybe_notify(self, s)

    def tick(self) -> None:
        """One background step: pace the async request sets and the report runs."""
        if not self.store.has_background_work():
            return
        with self.lock:
            now = time.monotonic()
            async_processing.tick(self, now)
            insights.tick(self, now)


def _object(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValueError(f"{what} body must be a JSON object")
    return payload


def _reset(eng: Engine, query: dict[str, str], payload: Any) -> Any:
    eng.reset()
    return {"reset": True}


def _add_fault(eng: Engine, query: dict[str, str], payload: Any) -> Any:
    spec = _object(payload, "faults")
    if spec.get("clear"):
        eng.faults.clear()
    else:
        eng.faults.add(spec)
    return {"faults": eng.faults.listing()}


#: The admin API: ``(method, name) -> answer(engine, query, JSON body)``, run under the store lock;
#: method ``*`` is any method the more specific entries do not take.
ADMIN: dict[tuple[str, str], Callable[[Engine, dict[str, str], Any], Any]] = {
    ("GET", "counters"): lambda eng, q, p: eng.store.counters(),
    ("POST", "reset"): _reset,
    ("POST", "config"): lambda eng, q, p: eng.configure(_object(p, "config")),
    ("*", "config"): lambda eng, q, p: copy.deepcopy(eng.cfg),
    ("POST", "faults"): _add_fault,
    ("*", "faults"): lambda eng, q, p: {"faults": eng.faults.listing()},
    ("GET", "calls"): lambda eng, q, p: {"calls": eng.call_log.listing()},
    ("GET", "objects"): lambda eng, q, p: {"objects": eng.store.public_objects(q.get("type") or None)},
    ("GET", "notifications"): lambda eng, q, p: {"notifications": eng.store.notifications()},
    ("GET", "state"): lambda eng, q, p: eng.store.snapshot(),
    ("POST", "unthrottle"): lambda eng, q, p: controls.unthrottle(eng, _object(p, "unthrottle")),
    ("POST", "async_step"): lambda eng, q, p: controls.async_step(eng, _object(p, "async_step")),
}
