"""Graph nodes and edges: ad accounts, campaigns, ad sets, ads, creatives, images, insights,
request sets and requests (the async-specific parts live in ``async_sets``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from . import async_sets, insights
from .core import (
    ACT_RE,
    RESERVED_PARAMS,
    Call,
    decode_cursor,
    encode_cursor,
    now_iso,
    parse_bool,
    parse_fields,
    parse_json_param,
    parse_list_param,
    seq_of,
)
from .errors import (
    GraphError,
    bad_json,
    missing_field,
    param_error,
    unknown_edge,
    unknown_object,
    unknown_path,
)

if TYPE_CHECKING:
    from .engine import Engine

AD_TYPES = ("campaign", "adset", "ad", "adcreative", "adimage")
NODE_NAMES = {
    "account": "AdAccount",
    "campaign": "Campaign",
    "adset": "AdSet",
    "ad": "Ad",
    "adcreative": "AdCreative",
    "adimage": "AdImage",
    "async_request_set": "AdAsyncRequestSet",
    "async_request": "AdAsyncRequest",
    "user": "User",
    insights.RUN_TYPE: "AdReportRun",
}
DEFAULT_FIELDS = {
    "account": ["id", "account_id", "name"],
    "adimage": ["hash", "id"],
    "user": ["id", "name"],
    insights.RUN_TYPE: insights.RUN_DEFAULT_FIELDS,
}
JSON_FIELDS = frozenset(
    {
        "targeting",
        "creative",
        "promoted_object",
        "object_story_spec",
        "degrees_of_freedom_spec",
        "special_ad_categories",
        "asset_feed_spec",
        "tracking_specs",
        "conversion_specs",
        "adlabels",
        "bid_constraints",
        "attribution_spec",
        "frequency_control_specs",
        "pacing_type",
        "execution_options",
    }
)
INT_FIELDS = frozenset({"daily_budget", "lifetime_budget", "bid_amount", "spend_cap"})
STATUSES = frozenset({"ACTIVE", "PAUSED", "DELETED", "ARCHIVED"})
EDGE_CHILD = {
    "campaigns": "campaign",
    "adsets": "adset",
    "ads": "ad",
    "adcreatives": "adcreative",
    "adimages": "adimage",
}
USER_ID = "100000000000001"


# ---------------------------------------------------------------- rendering / paging


def select(obj: dict[str, Any], fields: list[str] | None, default: list[str]) -> dict[str, Any]:
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


def public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def render(eng: Engine, obj: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    otype = obj.get("_type", "")
    if otype == "async_request_set":
        return select(async_sets.set_view(eng, obj), fields, async_sets.SET_DEFAULT_FIELDS)
    if otype == "async_request":
        return select(async_sets.request_view(eng, obj), fields, async_sets.REQUEST_DEFAULT_FIELDS)
    return select(public(obj), fields, DEFAULT_FIELDS.get(otype, ["id", "name"]))


def paginate(eng: Engine, call: Call, items: list[dict[str, Any]], render_one: Any = None) -> dict[str, Any]:
    params = call.params
    max_page = int(eng.cfg["max_page_size"])
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
    render_one = render_one or (lambda o: render(eng, o, fields))
    data = [render_one(o) for o in page]
    out: dict[str, Any] = {"data": data}
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


# ---------------------------------------------------------------- routing


def route(eng: Engine, call: Call) -> Any:
    segs = call.segs
    method = call.method
    params = call.params
    if not segs:
        if method == "GET":
            if "ids" in params:
                return get_multi(eng, call)
            if "id" in params:
                return render(eng, node(eng, params["id"]), parse_fields(params.get("fields")))
            raise param_error("Missing parameter: id or ids")
        if method == "POST" and "batch" in params:
            raise param_error("A batch request cannot contain a batch request")
        raise unknown_object("", method)
    if len(segs) > 2:
        raise unknown_path(call.path)
    head = segs[0]
    if head == "requests" and len(segs) == 1 and method == "GET" and "id" in params:
        set_obj = node(eng, params["id"])
        if set_obj.get("_type") != "async_request_set":
            raise unknown_edge("requests", NODE_NAMES.get(set_obj.get("_type", ""), "Node"))
        return async_sets.list_requests(eng, call, set_obj)
    obj = node(eng, head)
    if len(segs) == 1:
        if method == "GET":
            return render(eng, obj, parse_fields(params.get("fields")))
        if method == "POST":
            return update(eng, call, obj)
        if method == "DELETE":
            return delete(eng, obj)
        raise unknown_object(head, method)
    return edge(eng, call, obj, segs[1])


def node(eng: Engine, obj_id: str) -> dict[str, Any]:
    obj_id = str(obj_id).strip()
    if obj_id == "me":
        return {"_type": "user", "id": USER_ID, "name": "Emulator User"}
    m = ACT_RE.match(obj_id)
    if m:
        return eng.account(m.group(1))
    obj = eng.objects.get(obj_id)
    if obj is None:
        raise unknown_object(obj_id)
    return obj


def get_multi(eng: Engine, call: Call) -> dict[str, Any]:
    ids = parse_list_param(call.params, "ids") or []
    if not ids:
        raise param_error("The parameter ids is required")
    if len(ids) > 50:
        raise param_error("Too many IDs. Maximum: 50.")
    fields = parse_fields(call.params.get("fields"))
    missing = [i for i in ids if not (ACT_RE.match(i) or i == "me" or i in eng.objects)]
    if missing:
        raise GraphError(f"(#803) Some of the aliases you requested do not exist: {','.join(missing)}", 803)
    return {i: render(eng, node(eng, i), fields) for i in ids}


def edge(eng: Engine, call: Call, obj: dict[str, Any], name: str) -> Any:
    otype = obj.get("_type", "")
    method = call.method
    if otype == "user" and name == "adaccounts" and method == "GET":
        return paginate(eng, call, list(eng.accounts.values()))
    if otype == "account":
        acc = obj["account_id"]
        if method == "POST":
            if name in ("campaigns", "adsets", "ads", "adcreatives"):
                return create(eng, call, acc, EDGE_CHILD[name])
            if name == "adimages":
                return upload_images(eng, call, acc)
            if name == "async_batch_requests":
                return async_sets.create_set(eng, call, acc)
            if name == "insights":
                return insights.start_run(eng, call, obj)
        elif method == "GET":
            if name in EDGE_CHILD:
                return paginate(eng, call, filter_children(eng, call, EDGE_CHILD[name], account_id=acc))
            if name == "insights":
                return insights.sync_report(eng, call, obj)
            if name == "reachestimate":
                return reach_estimate(eng, call, acc)
            if name in ("asyncadrequestsets", "async_batch_requests"):
                return async_sets.list_sets(eng, call, acc)
            if name in ("async_requests", "asyncadrequests"):
                return async_sets.list_account_requests(eng, call, acc)
    elif method == "POST" and otype in ("campaign", "adset", "ad") and name == "insights":
        return insights.start_run(eng, call, obj)
    elif method == "GET":
        if otype == "campaign" and name in ("adsets", "ads"):
            return paginate(eng, call, filter_children(eng, call, EDGE_CHILD[name], campaign_id=obj["id"]))
        if otype == "adset" and name == "ads":
            return paginate(eng, call, filter_children(eng, call, "ad", adset_id=obj["id"]))
        if otype == "adset" and name == "asyncadrequests":
            return async_sets.list_adset_requests(eng, call, obj["id"])
        if otype in ("campaign", "adset", "ad") and name == "insights":
            return insights.sync_report(eng, call, obj)
        if otype == insights.RUN_TYPE and name == "insights":
            return insights.run_rows(eng, call, obj)
        if otype == "async_request_set" and name == "requests":
            return async_sets.list_requests(eng, call, obj)
        if otype == "ad" and name == "adcreatives":
            cid = (obj.get("creative") or {}).get("creative_id")
            items = [eng.objects[cid]] if cid in eng.objects else []
            return paginate(eng, call, items)
    raise unknown_edge(name, NODE_NAMES.get(otype, "Node"))


def filter_children(eng: Engine, call: Call, otype: str, **match: str) -> list[dict[str, Any]]:
    params = call.params
    extra: dict[str, set[str]] = {}
    for key, field in (
        ("adset_ids", "adset_id"),
        ("campaign_ids", "campaign_id"),
        ("ad_ids", "id"),
        ("hashes", "hash"),
    ):
        values = parse_list_param(params, key)
        if values is not None:
            extra[field] = set(values)
    statuses = parse_list_param(params, "effective_status")
    out = []
    for obj in eng.objects.values():
        if obj.get("_type") != otype:
            continue
        if any(obj.get(k) != v for k, v in match.items()):
            continue
        if any(str(obj.get(k)) not in vals for k, vals in extra.items()):
            continue
        if statuses is not None:
            if obj.get("effective_status") not in statuses:
                continue
        elif obj.get("status") == "DELETED":
            continue
        out.append(obj)
    return out


# ---------------------------------------------------------------- writes


def _clean_fields(params: dict[str, str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in RESERVED_PARAMS:
            continue
        if key in JSON_FIELDS:
            out[key] = parse_json_param(params, key)
        elif key in INT_FIELDS:
            try:
                out[key] = int(value)
            except ValueError:
                raise GraphError(
                    f"(#100) Param {key} must be an integer",
                    100,
                    user_title=f"Invalid {key}",
                    user_msg=f"The value of '{key}' for this {what} must be a whole number.",
                ) from None
        else:
            out[key] = value
    status = out.get("status")
    if status is not None and status not in STATUSES:
        raise param_error(f"Param status must be one of {{{', '.join(sorted(STATUSES))}}}")
    return out


def _require(params: dict[str, str], names: tuple[str, ...], what: str) -> None:
    for name in names:
        if not str(params.get(name, "")).strip():
            raise missing_field(name, what)


def _existing(eng: Engine, obj_id: Any, otype: str, field: str) -> dict[str, Any]:
    obj = eng.objects.get(str(obj_id))
    if obj is None or obj.get("_type") != otype or obj.get("status") == "DELETED":
        raise GraphError(
            f"(#100) Param {field} must be a valid {NODE_NAMES[otype]} id: {obj_id}",
            100,
            user_title=f"Invalid {field}",
            user_msg=f"The {NODE_NAMES[otype]} '{obj_id}' given in '{field}' does not exist.",
        )
    return obj


def create(eng: Engine, call: Call, account_id: str, otype: str) -> dict[str, Any]:
    params = call.params
    what = NODE_NAMES[otype]
    if otype == "campaign":
        _require(params, ("name", "objective"), "campaign")
        if not re.fullmatch(r"[A-Z_]+", params["objective"]):
            raise param_error("Param objective must be one of the supported objectives")
    elif otype == "adset":
        _require(params, ("name", "campaign_id"), "ad set")
    elif otype == "ad":
        _require(params, ("name", "adset_id", "creative"), "ad")
    elif otype == "adcreative":
        _require(params, ("name",), "ad creative")
    fields = _clean_fields(params, what)
    extra: dict[str, Any] = {}
    if otype == "adset":
        camp = _existing(eng, fields["campaign_id"], "campaign", "campaign_id")
        if camp["account_id"] != account_id:
            raise param_error("The campaign belongs to another ad account")
    elif otype == "ad":
        adset = _existing(eng, fields["adset_id"], "adset", "adset_id")
        if adset["account_id"] != account_id:
            raise param_error("The ad set belongs to another ad account")
        creative = fields["creative"]
        if not isinstance(creative, dict) or not creative.get("creative_id"):
            raise GraphError(
                "(#100) Param creative must be a JSON object with a creative_id",
                100,
                user_title="Missing field: creative_id",
                user_msg="The ad's creative must name an existing creative_id.",
            )
        _existing(eng, creative["creative_id"], "adcreative", "creative")
        extra["campaign_id"] = adset["campaign_id"]
    status = fields.get("status", "PAUSED" if otype != "adcreative" else "ACTIVE")
    ts = now_iso()
    obj = {
        "_type": otype,
        "id": eng.new_id(),
        "account_id": account_id,
        **fields,
        **extra,
        "status": status,
        "effective_status": status,
        "created_time": ts,
        "updated_time": ts,
    }
    eng.add_object(obj)
    if parse_bool(params.get("redownload")):
        return public(obj)
    return {"id": obj["id"]}


def upload_images(eng: Engine, call: Call, account_id: str) -> dict[str, Any]:
    images: list[tuple[str, bytes]] = [(fname or part, data) for part, (fname, data) in call.files.items()]
    if "bytes" in call.params:
        try:
            data = base64.b64decode(call.params["bytes"], validate=True)
        except (binascii.Error, ValueError):
            raise param_error("Param bytes must be base64 encoded image data") from None
        images.append(("bytes", data))
    if not images:
        raise GraphError(
            "(#100) An image file (multipart upload) or the bytes parameter is required",
            100,
            user_title="Missing field: filename",
            user_msg="Upload an image file or pass its base64 content in 'bytes'.",
        )
    out: dict[str, Any] = {}
    for name, data in images:
        if not data:
            raise param_error(f"The image {name!r} is empty")
        digest = hashlib.md5(data).hexdigest()
        url = f"https://emulator.invalid/adimages/{account_id}/{digest}.jpg"
        ts = now_iso()
        obj = {
            "_type": "adimage",
            "id": eng.new_id(),
            "account_id": account_id,
            "hash": digest,
            "name": name,
            "url": url,
            "bytes_len": len(data),
            "status": "ACTIVE",
            "created_time": ts,
            "updated_time": ts,
        }
        eng.add_object(obj)
        out[name] = {"hash": digest, "url": url}
    return {"images": out}


def update(eng: Engine, call: Call, obj: dict[str, Any]) -> dict[str, Any]:
    otype = obj.get("_type")
    if otype == "async_request_set":
        return async_sets.update_set(eng, call, obj)
    if otype in ("async_request", "user", insights.RUN_TYPE):
        raise unknown_object(obj["id"], "post")
    if otype == "account":
        fields = _clean_fields(call.params, "ad account")
        obj.update({k: v for k, v in fields.items() if k not in ("id", "account_id")})
        eng.mark_dirty()
        return {"success": True}
    fields = _clean_fields(call.params, NODE_NAMES[otype or "campaign"])
    for key in ("id", "account_id", "campaign_id", "adset_id", "hash"):
        fields.pop(key, None)
    if "creative" in fields:
        creative = fields["creative"]
        if not isinstance(creative, dict) or not creative.get("creative_id"):
            raise bad_json("creative", "a creative_id is required")
        _existing(eng, creative["creative_id"], "adcreative", "creative")
    if "name" in fields and not str(fields["name"]).strip():
        raise missing_field("name", NODE_NAMES[otype or "campaign"])
    obj.update(fields)
    if "status" in fields:
        obj["effective_status"] = fields["status"]
    obj["updated_time"] = now_iso()
    eng.mark_dirty()
    if parse_bool(call.params.get("redownload")):
        return {"success": True, **public(obj)}
    return {"success": True}


def delete(eng: Engine, obj: dict[str, Any]) -> dict[str, Any]:
    otype = obj.get("_type")
    if otype == "async_request_set":
        return async_sets.cancel_set(eng, obj)
    if otype == "async_request":
        return async_sets.cancel_request(eng, obj)
    if otype not in AD_TYPES:
        raise unknown_object(obj.get("id", ""), "delete")
    obj["status"] = obj["effective_status"] = "DELETED"
    obj["updated_time"] = now_iso()
    eng.mark_dirty()
    return {"success": True}


# ---------------------------------------------------------------- reach estimate


def reach_estimate(eng: Engine, call: Call, account_id: str) -> dict[str, Any]:
    spec = parse_json_param(call.params, "targeting_spec")
    if spec is None:
        raise missing_field("targeting_spec", "reach estimate")
    if not isinstance(spec, dict):
        raise bad_json("targeting_spec", "expected a JSON object")
    h = int(hashlib.sha1(repr(sorted(spec.items(), key=str)).encode()).hexdigest()[:6], 16)
    lower = 1_000_000 + h * 10
    return {
        "data": {"users_lower_bound": lower, "users_upper_bound": int(lower * 1.18), "estimate_ready": True}
    }
