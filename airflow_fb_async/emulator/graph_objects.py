"""Graph nodes and edges of the ad objects: reads (a node, many ids, list edges) and writes (create,
update, delete, image upload), and the reach estimate. Every function with the signature
``(ctx, call, node)`` is a handler named in the route table (``routes``); the async request sets and
insights have their own modules."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import TYPE_CHECKING, Any

from . import model
from .core import (
    ACT_RE,
    RESERVED_PARAMS,
    Call,
    now_iso,
    parse_bool,
    parse_fields,
    parse_json_param,
    parse_list_param,
)
from .errors import GraphError, bad_json, missing_field, param_error, unknown_object
from .views import paginate, render, resolve

if TYPE_CHECKING:
    from .context import Context

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

# ---------------------------------------------------------------- reads


def read_node(ctx: Context, call: Call, node: dict[str, Any]) -> dict[str, Any]:
    """``GET /<id>``."""
    return render(node, parse_fields(call.params.get("fields")))


def read_id_param(ctx: Context, call: Call, _root: dict[str, Any]) -> dict[str, Any]:
    """``GET /?id=X``."""
    return render(resolve(ctx, call.params["id"]), parse_fields(call.params.get("fields")))


def read_many(ctx: Context, call: Call, _root: dict[str, Any]) -> dict[str, Any]:
    """``GET /?ids=a,b``: up to 50 nodes of any kind; an unknown id is code 803."""
    ids = parse_list_param(call.params, "ids") or []
    if not ids:
        raise param_error("The parameter ids is required")
    if len(ids) > 50:
        raise param_error("Too many IDs. Maximum: 50.")
    fields = parse_fields(call.params.get("fields"))
    missing = [i for i in ids if not (ACT_RE.match(i) or i == "me" or ctx.store.has(i))]
    if missing:
        raise GraphError(f"(#803) Some of the aliases you requested do not exist: {','.join(missing)}", 803)
    return {i: render(resolve(ctx, i), fields) for i in ids}


def list_ad_accounts(ctx: Context, call: Call, _user: dict[str, Any]) -> dict[str, Any]:
    """``GET /me/adaccounts``."""
    return paginate(ctx, call, ctx.store.accounts())


def list_children(ctx: Context, call: Call, parent: dict[str, Any]) -> dict[str, Any]:
    """``GET <account|campaign|adset>/<campaigns|adsets|ads|adcreatives|adimages>``."""
    ptype = parent["_type"]
    scope = {"account_id": parent["account_id"]} if ptype == model.ACCOUNT else {f"{ptype}_id": parent["id"]}
    return paginate(ctx, call, filter_children(ctx, call, EDGE_CHILD[call.segs[1]], **scope))


def list_ad_creatives(ctx: Context, call: Call, ad: dict[str, Any]) -> dict[str, Any]:
    """``GET <ad>/adcreatives``: the ad's one creative."""
    cid = (ad.get("creative") or {}).get("creative_id")
    creative = ctx.store.get(cid) if isinstance(cid, str) else None
    return paginate(ctx, call, [creative] if creative is not None else [])


def filter_children(ctx: Context, call: Call, otype: str, **match: str) -> list[dict[str, Any]]:
    """Objects of ``otype`` under a parent, filtered by the list parameters (``adset_ids``...) and
    ``effective_status``; deleted ones only when ``effective_status`` asks for them."""
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
    for obj in ctx.store.find(otype, **match):
        if any(str(obj.get(k)) not in vals for k, vals in extra.items()):
            continue
        if statuses is not None:
            if obj.get("effective_status") not in statuses:
                continue
        elif obj.get("status") == "DELETED":
            continue
        out.append(obj)
    return out


def reach_estimate(ctx: Context, call: Call, account: dict[str, Any]) -> dict[str, Any]:
    """``GET act_X/reachestimate?targeting_spec=``: a stable number derived from the spec."""
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


def _existing(ctx: Context, obj_id: Any, otype: str, field: str) -> dict[str, Any]:
    obj = ctx.store.get(str(obj_id))
    if obj is None or obj.get("_type") != otype or obj.get("status") == "DELETED":
        name = model.NODE_NAMES[otype]
        raise GraphError(
            f"(#100) Param {field} must be a valid {name} id: {obj_id}",
            100,
            user_title=f"Invalid {field}",
            user_msg=f"The {name} '{obj_id}' given in '{field}' does not exist.",
        )
    return obj


def _creative_of(ctx: Context, creative: Any, bad: GraphError) -> None:
    """Check an ad's ``creative`` (``{"creative_id": <existing creative>}``)."""
    if not isinstance(creative, dict) or not creative.get("creative_id"):
        raise bad
    _existing(ctx, creative["creative_id"], "adcreative", "creative")


def create(ctx: Context, call: Call, account: dict[str, Any]) -> dict[str, Any]:
    """``POST act_X/<campaigns|adsets|ads|adcreatives>``: required fields and parents checked."""
    params = call.params
    account_id = account["account_id"]
    otype = EDGE_CHILD[call.segs[1]]
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
    fields = _clean_fields(params, model.NODE_NAMES[otype])
    extra: dict[str, Any] = {}
    if otype == "adset":
        camp = _existing(ctx, fields["campaign_id"], "campaign", "campaign_id")
        if camp["account_id"] != account_id:
            raise param_error("The campaign belongs to another ad account")
    elif otype == "ad":
        adset = _existing(ctx, fields["adset_id"], "adset", "adset_id")
        if adset["account_id"] != account_id:
            raise param_error("The ad set belongs to another ad account")
        _creative_of(
            ctx,
            fields["creative"],
            GraphError(
                "(#100) Param creative must be a JSON object with a creative_id",
                100,
                user_title="Missing field: creative_id",
                user_msg="The ad's creative must name an existing creative_id.",
            ),
        )
        extra["campaign_id"] = adset["campaign_id"]
    status = fields.get("status", "PAUSED" if otype != "adcreative" else "ACTIVE")
    ts = now_iso()
    obj = ctx.store.create(
        {
            "_type": otype,
            "id": ctx.store.new_id(),
            "account_id": account_id,
            **fields,
            **extra,
            "status": status,
            "effective_status": status,
            "created_time": ts,
            "updated_time": ts,
        }
    )
    if parse_bool(params.get("redownload")):
        return model.public(obj)
    return {"id": obj["id"]}


def upload_images(ctx: Context, call: Call, account: dict[str, Any]) -> dict[str, Any]:
    """``POST act_X/adimages``: multipart files or base64 ``bytes`` -> ``{"images": {name: {hash, url}}}``."""
    account_id = account["account_id"]
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
        ctx.store.create(
            {
                "_type": "adimage",
                "id": ctx.store.new_id(),
                "account_id": account_id,
                "hash": digest,
                "name": name,
                "url": url,
                "bytes_len": len(data),
                "status": "ACTIVE",
                "created_time": ts,
                "updated_time": ts,
            }
        )
        out[name] = {"hash": digest, "url": url}
    return {"images": out}


def update_account(ctx: Context, call: Call, account: dict[str, Any]) -> dict[str, Any]:
    """``POST act_X``."""
    fields = _clean_fields(call.params, "ad account")
    ctx.store.update(account, {k: v for k, v in fields.items() if k not in ("id", "account_id")})
    return {"success": True}


def update(ctx: Context, call: Call, obj: dict[str, Any]) -> dict[str, Any]:
    """``POST /<ad object>``: ids and parents cannot change; ``status`` sets ``effective_status``."""
    what = model.NODE_NAMES[obj["_type"]]
    fields = _clean_fields(call.params, what)
    for key in ("id", "account_id", "campaign_id", "adset_id", "hash"):
        fields.pop(key, None)
    if "creative" in fields:
        _creative_of(ctx, fields["creative"], bad_json("creative", "a creative_id is required"))
    if "name" in fields and not str(fields["name"]).strip():
        raise missing_field("name", what)
    if "status" in fields:
        fields["effective_status"] = fields["status"]
    ctx.store.update(obj, {**fields, "updated_time": now_iso()})
    if parse_bool(call.params.get("redownload")):
        return {"success": True, **model.public(obj)}
    return {"success": True}


def delete(ctx: Context, call: Call, obj: dict[str, Any]) -> dict[str, Any]:
    """``DELETE /<ad object>``: status ``DELETED`` (it leaves list edges)."""
    ctx.store.delete(obj)
    return {"success": True}


def refuse_update(ctx: Context, call: Call, node: dict[str, Any]) -> Any:
    """``POST`` on a node that cannot be updated (the user, a request, a report run)."""
    raise unknown_object(node["id"], "post")


def refuse_delete(ctx: Context, call: Call, node: dict[str, Any]) -> Any:
    """``DELETE`` on a node that cannot be deleted (an account, the user, a report run)."""
    raise unknown_object(node.get("id", ""), "delete")
