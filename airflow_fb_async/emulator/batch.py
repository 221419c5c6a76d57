"""Standard batch requests: ``POST /`` with a ``batch`` form field."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .core import Call, Resp, load_json_array, parse_bool, parse_form, split_relative_url
from .errors import GraphError, bad_token, code1_error, param_error, server_error
from .faults import entry_chosen
from .refs import RefError, referenced_names, substitute

if TYPE_CHECKING:
    from .context import Context

MAX_BATCH = 50


def parse_entries(raw: str | None) -> list[dict[str, Any]]:
    if raw is None or not raw.strip():
        raise param_error("The parameter batch is required")
    entries = load_json_array(
        raw, "batch", "Param batch must be a valid JSON array", "The batch parameter is not valid JSON."
    )
    if not isinstance(entries, list) or not entries:
        raise param_error("Param batch must be a non-empty JSON array")
    if len(entries) > MAX_BATCH:
        raise GraphError(f"(#100) Too many requests in batch message. Maximum batch size is {MAX_BATCH}", 100)
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise param_error(f"batch[{i}] must be a JSON object")
        if not isinstance(e.get("relative_url"), str):
            raise param_error(f"batch[{i}]: missing relative_url")
        method = str(e.get("method", "GET")).upper()
        if method not in ("GET", "POST", "DELETE", "PUT"):
            raise param_error(f"batch[{i}]: unsupported method {e.get('method')!r}")
    return entries


def _headers(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(raw, dict):
        raw = [{"name": k, "value": v} for k, v in raw.items()]
    for h in raw or []:
        if isinstance(h, str) and ":" in h:
            k, v = h.split(":", 1)
            out[k.strip().lower()] = v.strip()
        elif isinstance(h, dict) and "name" in h:
            out[str(h["name"]).strip().lower()] = str(h.get("value", "")).strip()
    return out


def _body_params(body: Any) -> dict[str, str]:
    if body is None:
        return {}
    if isinstance(body, dict):
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    return parse_form(str(body))


def _entry_text(e: dict[str, Any]) -> str:
    body = e.get("body")
    body_text = json.dumps(body) if isinstance(body, dict) else str(body or "")
    return unquote(str(e.get("relative_url", ""))) + " " + unquote(body_text)


def depends_on_names(e: dict[str, Any]) -> list[str]:
    """The names in an entry's ``depends_on``: one name (Graph's documented form) or a list of names."""
    dep = e.get("depends_on")
    if dep is None or dep == "":
        return []
    if isinstance(dep, str):
        return [dep]
    if isinstance(dep, list) and all(isinstance(d, str) for d in dep):
        return [d for d in dep if d]
    raise RefError(f"depends_on must be a request name or a list of names, not {json.dumps(dep)}")


def _depends(e: dict[str, Any]) -> list[str]:
    names = referenced_names(_entry_text(e))
    try:
        names.extend(depends_on_names(e))
    except RefError:
        pass  # reported when the entry runs
    return names


def entry_call(top: Call, e: dict[str, Any], lookup: Any = None) -> Call:
    method = str(e.get("method", "GET")).upper()
    if method == "PUT":
        method = "POST"
    version, path, query = split_relative_url(str(e["relative_url"]))
    body = {} if method in ("GET", "DELETE") else _body_params(e.get("body"))
    if lookup is not None:
        path = substitute(path, lookup)
        query = {k: substitute(v, lookup) for k, v in query.items()}
        body = {k: substitute(v, lookup) for k, v in body.items()}
    token = body.get("access_token") or query.get("access_token") or e.get("access_token") or top.token
    return Call(
        method=method,
        path=path,
        params={**query, **body},
        query=query,
        headers=_headers(e.get("headers")),
        token=token,
        base_url=top.base_url,
        version=version or top.version,
        in_batch=True,
    )


def run(ctx: Context, top: Call, entries: list[dict[str, Any]] | None = None) -> Resp:
    if entries is None:
        entries = parse_entries(top.params.get("batch"))
    store = ctx.store
    store.count("batch_entries", len(entries))
    limit = ctx.cfg["code1_above"]
    if limit is not None and len(entries) > int(limit):
        store.count_in("faults_injected", "code1")
        raise code1_error()
    null_fraction = float(ctx.cfg["null_fraction"])
    include_headers = parse_bool(top.params.get("include_headers")) is not False
    referenced = {n for e in entries for n in _depends(e)}
    outcomes: dict[str, Resp | None] = {}
    out: list[Any] = []
    accounts: list[str | None] = []
    for index, e in enumerate(entries):
        name = e.get("name") if isinstance(e.get("name"), str) else None
        if ctx.faults.null_entry(top.ordinal, index, null_fraction):
            store.count_in("faults_injected", "null")
            out.append(None)
            if name:
                outcomes[name] = None
            continue
        resp, call = _run_entry(ctx, top, e, outcomes)
        accounts.extend(a for a in ctx.accounts_of(call) if a not in accounts)
        if name:
            outcomes[name] = resp  # dependents see the real outcome, even if its answer is lost below
        if entry_chosen(top.entry_fault, index, f"{call.method} {e['relative_url']}") or (
            ctx.faults.random_entry_fault(top.ordinal, index, call.method)
        ):
            # Committed; the answer is replaced by a transient code 2 error (same headers).
            store.count_in("faults_injected", "entry_error_after_commit")
            top.entry_faults += 1
            resp = Resp(500, server_error().body(), resp.headers)
        omit = e.get("omit_response_on_success")
        omit = (
            (name in referenced)
            if omit is None
            else bool(parse_bool(omit) if isinstance(omit, str) else omit)
        )
        if omit and resp.status < 300:
            out.append(None)
            continue
        item: dict[str, Any] = {"code": resp.status}
        if include_headers:
            item["headers"] = [{"name": k, "value": v} for k, v in resp.headers.items()]
        if resp.body is None:
            item["body"] = None
        else:
            item["body"] = (
                resp.text if resp.text is not None else json.dumps(resp.body, separators=(",", ":"))
            )
        out.append(item)
    with store.lock:
        headers = ctx.usage.headers(accounts or [None], ctx.cfg)
    return Resp(200, out, headers)


def _run_entry(
    ctx: Context, top: Call, e: dict[str, Any], outcomes: dict[str, Resp | None]
) -> tuple[Resp, Call]:
    def lookup(name: str) -> Any:
        if name not in outcomes:
            raise RefError(f"no request named {name!r} ran before this one")
        resp = outcomes[name]
        if resp is None or resp.status >= 300:
            raise RefError(f"the request {name!r} this request depends on failed or was not executed")
        return resp.body

    try:
        for dep in depends_on_names(e):
            lookup(dep)
        call = entry_call(top, e, lookup)
    except RefError as exc:
        call = entry_call(top, e)
        return ctx.error_resp(call, GraphError(f"(#100) {exc}", 100, "GraphBatchException")), call
    if call.token != top.token and call.token not in ctx.tokens:
        return ctx.error_resp(call, bad_token()), call
    files: dict[str, tuple[str, bytes]] = {}
    attached = e.get("attached_files")
    if attached:
        for part in str(attached).split(","):
            part = part.strip()
            if part not in top.files:
                return ctx.error_resp(call, param_error(f"File {part!r} has not been attached")), call
            files[part] = top.files[part]
    call.files = files
    return ctx.execute(call), call


def accounts_of_entries(ctx: Context, entries: list[dict[str, Any]]) -> list[str | None]:
    """The ad accounts a whole batch's (parsed) entries name (for a throttle fault that blocks them all)."""
    out: list[str | None] = []
    for e in entries:
        _version, path, query = split_relative_url(str(e["relative_url"]))
        for acc in ctx.accounts_of(Call(method="GET", path=path, params=query)):
            if acc not in out:
                out.append(acc)
    return [a for a in out if a is not None] or [None]
