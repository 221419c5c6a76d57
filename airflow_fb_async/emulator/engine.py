"""The emulator's state and request pipeline (no sockets here: see ``server``)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import random
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from . import async_sets, batch, controls, graph_objects, insights
from .config import default_config, fresh_counters, validate_config
from .core import (
    ACT_RE,
    DEFAULT_VERSION,
    Call,
    Resp,
    classify,
    now_iso,
    parse_body,
    parse_list_param,
    split_relative_url,
    split_version,
)
from .errors import (
    GraphError,
    bad_token,
    internal_error,
    missing_token,
    param_error,
    server_error,
    throttle_error,
    token_rejected,
)
from .faults import FaultQueue
from .refs import RefError
from .throttle import UsageTracker

FIRST_ID = 23850000000001
APPSECRET_MAX_AGE = 300


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes
    drop: bool = False


class Engine:
    def __init__(
        self,
        tokens: list[str] | None = None,
        app_secret: str | None = None,
        latency: float = 0.0,
        null_fraction: float = 0.0,
        async_pace: float = 200.0,
        state_file: str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.tokens = set(tokens) if tokens else {"emulator-token"}
        self.initial_cfg = default_config(latency, null_fraction, async_pace, app_secret)
        self.cfg = copy.deepcopy(self.initial_cfg)
        self.objects: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.next_id = FIRST_ID
        self.counters = fresh_counters()
        self.calls: list[dict[str, Any]] = []
        self.call_seq = 0
        self.notifications: list[dict[str, Any]] = []
        self.faults = FaultQueue()
        self.usage = UsageTracker()
        self.active_sets: set[str] = set()
        self.active_reports: dict[str, float] = {}  # unfinished report run id -> last tick
        self.runtime: dict[str, dict[str, Any]] = {}
        self.notifying: set[str] = set()
        self.generation = 0
        # Set by reset(): wakes the calls of the ended generation out of their latency sleep.
        self.generation_ended = threading.Event()
        self.base_url = ""
        self.state_file = state_file
        self.dirty = False
        self.last_save = 0.0
        self.conn_lock = threading.Lock()
        self.active_connections = 0
        self.active_requests = 0

    # ------------------------------------------------------------ state helpers

    def new_id(self) -> str:
        with self.lock:
            value = self.next_id
            self.next_id += 1
            return str(value)

    def add_object(self, obj: dict[str, Any], count: bool = True) -> None:
        with self.lock:
            self.objects[obj["id"]] = obj
            if count:
                self.counters["objects_created"] += 1
                by_type = self.counters["objects_created_by_type"]
                by_type[obj["_type"]] = by_type.get(obj["_type"], 0) + 1
            self.dirty = True

    def account(self, digits: str) -> dict[str, Any]:
        with self.lock:
            acc = self.accounts.get(digits)
            if acc is None:
                acc = {
                    "_type": "account",
                    "id": f"act_{digits}",
                    "account_id": digits,
                    "name": f"Emulator Ad Account {digits}",
                    "account_status": 1,
                    "currency": "USD",
                    "timezone_name": "America/Los_Angeles",
                    "created_time": now_iso(),
                }
                self.accounts[digits] = acc
                self.dirty = True
            return acc

    def mark_dirty(self) -> None:
        self.dirty = True

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
            acc = m.group(1) if m else (self.objects.get(i) or {}).get("account_id")
            if acc and acc not in out:
                out.append(acc)
        return out or [None]

    # ------------------------------------------------------------ pipeline

    def error_resp(self, call: Call, err: GraphError) -> Resp:
        with self.lock:
            accounts = self.accounts_of(call)
            headers = (
                {} if call.internal else self.usage.headers(accounts, self.cfg, insights.use_case(self, call))
            )
        return Resp(err.status, err.body(), headers)

    def execute(self, call: Call) -> Resp:
        """Run one Graph call (top-level, batch entry or async request)."""
        with self.lock:
            accounts = self.accounts_of(call)
            try:
                if not call.internal and not self.usage.admit(accounts, self.cfg):
                    self.counters["throttled_calls"] += 1
                    raise throttle_error(int(self.cfg["throttle_code"]))
                body = graph_objects.route(self, call)
                status = 200
            except GraphError as err:
                status, body = err.status, err.body()
            except RefError as err:
                status, body = 400, param_error(str(err)).body()
            except Exception:
                traceback.print_exc(file=sys.stderr)
                ierr = internal_error()
                status, body = ierr.status, ierr.body()
            headers = (
                {} if call.internal else self.usage.headers(accounts, self.cfg, insights.use_case(self, call))
            )
        if call.method == "GET" and status == 200:
            # Insertion order is deterministic, so the compact serialization is a stable ETag source.
            text = json.dumps(body, separators=(",", ":"))
            etag = '"' + hashlib.sha1(text.encode()).hexdigest() + '"'
            headers["ETag"] = etag
            if call.headers.get("if-none-match", "").strip() == etag:
                return Resp(304, None, headers)
            return Resp(status, body, headers, text)
        return Resp(status, body, headers)

    def check_auth(self, call: Call) -> None:
        token = call.token
        if not token:
            raise missing_token()
        if token not in self.tokens:
            raise bad_token()
        secret = self.cfg["app_secret"]
        if not secret:
            return
        proof = call.params.get("appsecret_proof", "")
        if not proof:
            raise GraphError(
                "API calls from the server require an appsecret_proof argument", 100, "GraphMethodException"
            )
        ts = call.params.get("appsecret_time")
        if ts:
            try:
                age = abs(time.time() - int(ts))
            except ValueError:
                age = APPSECRET_MAX_AGE + 1
            msg = f"{token}|{ts}"
            expected = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
            if age > APPSECRET_MAX_AGE:
                raise GraphError(
                    "Invalid appsecret_proof provided in the API argument: appsecret_time is too old",
                    100,
                    "GraphMethodException",
                )
        else:
            expected = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, proof.lower()):
            raise GraphError(
                "Invalid appsecret_proof provided in the API argument", 100, "GraphMethodException"
            )

    def handle_http(
        self, method: str, url_path: str, qs: str, headers: dict[str, str], raw: bytes, base_url: str
    ) -> HttpResult:
        """Serve one HTTP request, counting how many are being served at once (in flight)."""
        with self.conn_lock:
            self.active_requests += 1
            if self.active_requests > self.counters["max_concurrent_requests"]:
                self.counters["max_concurrent_requests"] = self.active_requests
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
        token = params.get("access_token")
        auth = headers.get("authorization", "")
        if not token and auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() in ("oauth", "bearer") and value.strip():
                token = value.strip()
        call = Call(
            method=method,
            path=path,
            params=params,
            query=query,
            files=files,
            headers=headers,
            token=token,
            base_url=base_url,
            version=version or DEFAULT_VERSION,
        )
        kind = classify(method, path, params)
        with self.lock:
            # The call belongs to the generation it is counted in: a reset while it runs keeps it
            # out of the fresh call log, as it is out of the fresh counters.
            generation = self.generation
            ended = self.generation_ended
            self.counters["http_calls"] += 1
            self.counters["calls_by_kind"][kind] += 1
            ordinal = self.faults.next_ordinal()
            fault = self.faults.take(method, url_path, f"{url_path}?{qs}" if qs else url_path, kind, ordinal)
            latency = float(self.cfg["latency"]) + random.uniform(0, float(self.cfg["latency_jitter"]))
        if latency > 0:
            ended.wait(latency)  # a reset cuts the sleep short: the call then drops at once
            with self.lock:
                stale = generation != self.generation
            if stale:
                # Reset while this call slept: it must not create objects in the fresh world.
                return HttpResult(0, {}, b"", drop=True)
        call.ordinal = ordinal
        ftype = fault["type"] if fault else None
        if ftype == "entry_error_after_commit":
            call.entry_fault = fault
        batch_size = None
        entries = None
        if kind == "batch":
            try:
                entries = batch.parse_entries(params.get("batch"))
                batch_size = len(entries)
            except GraphError:
                pass
        resp: Resp | None = None
        if ftype == "drop_before":
            with self.lock:
                self.counters["faults_injected"]["drop"] += 1
            self._log(method, url_path, query, None, kind, ftype, started, batch_size, generation)
            return HttpResult(0, {}, b"", drop=True)
        if ftype == "500":
            with self.lock:
                self.counters["faults_injected"]["500"] += 1
            resp = self.error_resp(call, server_error())
        elif ftype == "throttle":
            with self.lock:
                self.counters["faults_injected"]["throttle"] += 1
                accounts = self._http_accounts(call, kind)
                seconds = int(fault["regain_minutes"]) * float(self.cfg["regain_unit_seconds"])  # type: ignore[index]
                for acc in accounts:
                    self.usage.block(acc, seconds)
                err = throttle_error(int(self.cfg["throttle_code"]))
                headers = self.usage.headers(accounts, self.cfg, insights.use_case(self, call))
                resp = Resp(400, err.body(), headers)
        elif ftype == "token_rejected":
            # Refused before any work, as Graph refuses an expired or revoked token.
            with self.lock:
                self.counters["faults_injected"]["token_rejected"] += 1
            resp = self.error_resp(call, token_rejected(fault["subcode"]))  # type: ignore[index]
        elif ftype == "code1":
            with self.lock:
                self.counters["faults_injected"]["code1"] += 1
            resp = self.error_resp(
                call,
                GraphError(
                    "Please reduce the amount of data you're asking for, then retry your request",
                    1,
                    "OAuthException",
                    is_transient=True,
                ),
            )
        else:
            if ftype == "empty_page":
                with self.lock:
                    self.counters["faults_injected"]["empty_page"] += 1
                call.empty_page = True
            try:
                if parse_error is not None:
                    raise parse_error
                self.check_auth(call)
                resp = batch.run(self, call, entries) if kind == "batch" else self.execute(call)
            except GraphError as err:
                resp = self.error_resp(call, err)
            except Exception:
                traceback.print_exc(file=sys.stderr)
                resp = self.error_resp(call, internal_error())
        if ftype == "short_batch" and resp.status == 200 and isinstance(resp.body, list):
            # The work is done, but the answer lists only the first half of the entries.
            with self.lock:
                self.counters["faults_injected"]["short_batch"] += 1
            resp = Resp(200, resp.body[: len(resp.body) // 2], resp.headers)
        if ftype == "drop_after_commit":
            with self.lock:
                self.counters["faults_injected"]["drop"] += 1
            self._log(method, url_path, query, None, kind, ftype, started, batch_size, generation)
            return HttpResult(0, {}, b"", drop=True)
        if ftype == "error_after_commit":
            # The work is done and committed; the answer is replaced by a transient code 2 error.
            with self.lock:
                self.counters["faults_injected"]["error_after_commit"] += 1
            resp = self.error_resp(call, server_error())
        elif ftype is None and call.entry_faults:
            ftype = "entry_error_after_commit"  # random entry faults mark the call they happened in
        self._log(method, url_path, query, resp.status, kind, ftype, started, batch_size, generation)
        if resp.body is None:
            body = b""
        elif "pretty" in params and params["pretty"] not in ("0", "false"):
            body = json.dumps(resp.body, indent=2).encode()
        else:
            body = json.dumps(resp.body, separators=(",", ":")).encode()
        return HttpResult(resp.status, resp.headers, body)

    def _http_accounts(self, call: Call, kind: str) -> list[str | None]:
        if kind != "batch":
            return self.accounts_of(call)
        out: list[str | None] = []
        try:
            for e in batch.parse_entries(call.params.get("batch")):
                _version, path, query = split_relative_url(str(e["relative_url"]))
                for acc in self.accounts_of(Call(method="GET", path=path, params=query)):
                    if acc not in out:
                        out.append(acc)
        except GraphError:
            pass
        return [a for a in out if a is not None] or [None]

    def redact(self, query: dict[str, str]) -> dict[str, str]:
        out = {}
        for k, v in query.items():
            if k in ("access_token", "appsecret_proof"):
                v = "REDACTED"
            else:
                for t in self.tokens:
                    if t in v:
                        v = v.replace(t, "REDACTED")
            out[k] = v
        return out

    def _log(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        status: int | None,
        kind: str,
        fault: str | None,
        started: float,
        batch_size: int | None,
        generation: int,
    ) -> None:
        with self.lock:
            if generation != self.generation:
                return  # began before a reset: not part of the fresh log (its counters were reset too)
            self.call_seq += 1
            if len(self.calls) >= 200_000:
                del self.calls[:10_000]
            self.calls.append(
                {
                    "seq": self.call_seq,
                    "method": method,
                    "path": path,
                    "query": self.redact(query),
                    "status": status,
                    "kind": kind,
                    "fault": fault,
                    "ms": round((time.monotonic() - started) * 1000, 2),
                    "batch_size": batch_size,
                }
            )

    # ------------------------------------------------------------ connections

    def conn_opened(self) -> None:
        with self.conn_lock:
            self.active_connections += 1
            if self.active_connections > self.counters["max_concurrent_connections"]:
                self.counters["max_concurrent_connections"] = self.active_connections

    def conn_closed(self) -> None:
        with self.conn_lock:
            self.active_connections -= 1

    # ------------------------------------------------------------ admin

    def reset(self) -> None:
        with self.lock:
            self.objects.clear()
            self.accounts.clear()
            peak = self.active_connections
            self.counters = fresh_counters()
            self.counters["max_concurrent_connections"] = peak
            self.calls.clear()
            self.faults.clear()
            self.faults.set_random(None)
            self.cfg = copy.deepcopy(self.initial_cfg)
            self.usage.reset()
            self.active_sets.clear()
            self.active_reports.clear()
            self.runtime.clear()
            self.notifications.clear()
            self.notifying.clear()
            self.generation += 1
            self.generation_ended.set()
            self.generation_ended = threading.Event()
            self.dirty = True

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
        try:
            with self.lock:
                if sub == "counters" and method == "GET":
                    return 200, copy.deepcopy(self.counters)
                if sub == "reset" and method == "POST":
                    self.reset()
                    return 200, {"reset": True}
                if sub == "config":
                    if method == "POST":
                        if not isinstance(payload, dict):
                            raise ValueError("config body must be a JSON object")
                        return 200, self.configure(payload)
                    return 200, copy.deepcopy(self.cfg)
                if sub == "faults":
                    if method == "POST":
                        if not isinstance(payload, dict):
                            raise ValueError("faults body must be a JSON object")
                        if payload.get("clear"):
                            self.faults.clear()
                        else:
                            self.faults.add(payload)
                    return 200, {"faults": self.faults.listing()}
                if sub == "calls" and method == "GET":
                    return 200, {"calls": copy.deepcopy(self.calls)}
                if sub == "objects" and method == "GET":
                    wanted = query.get("type")
                    objs = [
                        {"type": o["_type"], **{k: v for k, v in o.items() if not k.startswith("_")}}
                        for o in self.objects.values()
                        if not wanted or o["_type"] == wanted
                    ]
                    return 200, {"objects": copy.deepcopy(objs)}
                if sub == "notifications" and method == "GET":
                    return 200, {"notifications": copy.deepcopy(self.notifications)}
                if sub == "state" and method == "GET":
                    return 200, self.snapshot()
                if sub in ("unthrottle", "async_step") and method == "POST":
                    if not isinstance(payload, dict):
                        raise ValueError(f"{sub} body must be a JSON object")
                    return 200, (controls.unthrottle if sub == "unthrottle" else controls.async_step)(
                        self, payload
                    )
        except (ValueError, TypeError) as exc:
            return 400, {"error": {"message": str(exc)}}
        return 404, {"error": {"message": f"unknown admin endpoint {method} /__admin/{sub}"}}

    # ------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(
                {
                    "format": 1,
                    "next_id": self.next_id,
                    "accounts": list(self.accounts.values()),
                    "objects": list(self.objects.values()),
                    "notifications": self.notifications,
                }
            )

    def save_state(self) -> None:
        if not self.state_file:
            return
        with self.lock:
            data = json.dumps(self.snapshot(), separators=(",", ":"))
            self.dirty = False
            self.last_save = time.monotonic()
        tmp = f"{self.state_file}.tmp{os.getpid()}.{threading.get_ident()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.replace(tmp, self.state_file)

    def load_state(self) -> None:
        if not self.state_file or not os.path.exists(self.state_file):
            return
        with open(self.state_file, encoding="utf-8") as fh:
            data = json.load(fh)
        with self.lock:
            self.next_id = max(int(data.get("next_id", FIRST_ID)), FIRST_ID)
            self.accounts = {a["account_id"]: a for a in data.get("accounts", [])}
            self.objects = {o["id"]: o for o in data.get("objects", [])}
            self.notifications = list(data.get("notifications", []))
            self.active_sets = {
                o["id"]
                for o in self.objects.values()
                if o.get("_type") == "async_request_set" and not async_sets.is_completed(o)
            }
            self.active_reports = dict.fromkeys(insights.unfinished(self.objects), time.monotonic())

    def resume_notifications(self) -> None:
        with self.lock:
            for o in list(self.objects.values()):
                if o.get("_type") == "async_request_set" and async_sets.is_completed(o):
                    async_sets.maybe_notify(self, o)

    def tick(self) -> None:
        if not self.active_sets and not self.active_reports:
            return
        with self.lock:
            now = time.monotonic()
            async_sets.tick(self, now)
            insights.tick(self, now)
