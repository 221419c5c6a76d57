"""Insights: synchronous reports and async report runs (``AdReportRun``) over the account's objects.

Flow of an async report::

    POST act_X/insights (or <campaign|adset|ad>/insights)  -> {"report_run_id": R}   kind insights_start
        the parameters are checked at once; a queued job_failed / job_skipped fault or
        insights_fail_above_days decides the run's fate
    background tick (engine lock held): progress += insights_pace x dt   (0 pauses)
        Job Not Started -> Job Started -> Job Running -> Job Completed (rows computed now)
                                                      \\-> Job Failed at 50 % / Job Skipped at once
    GET R (or GET /?ids=R1,R2)                        -> async_status, async_percent_completion, ...
    GET R/insights?limit=&after=                      -> the rows, cursor paged

A synchronous ``GET <node>/insights`` builds the same rows at once. Rows: one per object at the
requested level (account, campaign, adset, ad) per time increment, with string metrics derived
from (object id, day) by a hash, so the same question always gets the same answer and a month's
row is the sum of its days' rows.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .core import RESERVED_PARAMS, Call, parse_fields, parse_json_param
from .errors import GraphError, bad_json, param_error
from .model import COMPLETED, NOT_STARTED, RUN_FAILED, RUN_TYPE, RUNNING, SKIPPED, STARTED
from .views import paginate

if TYPE_CHECKING:
    from .context import Context

LEVELS = ("account", "campaign", "adset", "ad")
FAIL_AT_PERCENT = 50
METRICS = ("impressions", "clicks", "spend", "reach", "ctr", "cpc", "cpm", "frequency")
DEFAULT_METRICS = ("impressions", "clicks", "spend", "reach", "ctr", "cpc")
ID_FIELDS = tuple(f"{lvl}_{kind}" for lvl in LEVELS for kind in ("id", "name"))
KNOWN_FIELDS = frozenset({*METRICS, *ID_FIELDS, "account_currency", "date_start", "date_stop"})
FILTER_OPERATORS = frozenset({"IN", "NOT_IN", "EQUAL", "NOT_EQUAL"})
MAX_INCREMENT = 90
# Not parameters of the report (paging, auth, output format).
NOT_REPORT_PARAMS = RESERVED_PARAMS - {"fields"} | {"limit", "after", "before", "summary"}


@dataclass(frozen=True)
class ReportSpec:
    """What a report asks for, checked."""

    level: str
    fields: list[str] | None
    since: dt.date
    until: dt.date
    increment: str | int  # "all_days", "monthly" or a number of days
    filtering: list[dict[str, Any]]

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1


# ---------------------------------------------------------------- parameters


def today() -> dt.date:
    """The emulator's "today" (UTC)."""
    return dt.date(*time.gmtime()[:3])


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def preset_range(preset: str, now: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The dates of a ``date_preset`` (``last_Nd`` ends yesterday, like Graph)."""
    day = now or today()
    yesterday = day - dt.timedelta(days=1)
    last_n = {"last_3d": 3, "last_7d": 7, "last_14d": 14, "last_28d": 28, "last_30d": 30, "last_90d": 90}
    if preset == "today":
        return day, day
    if preset == "yesterday":
        return yesterday, yesterday
    if preset in last_n:
        return day - dt.timedelta(days=last_n[preset]), yesterday
    if preset == "this_month":
        return _month_start(day), day
    if preset == "last_month":
        end = _month_start(day) - dt.timedelta(days=1)
        return _month_start(end), end
    if preset == "this_year":
        return day.replace(month=1, day=1), day
    raise param_error(
        f"Param date_preset must be one of {{today, yesterday, {', '.join(last_n)}, this_month, "
        f"last_month, this_year}}, not {preset!r}"
    )


def _date(value: Any, key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise param_error(f"Param time_range[{key}] must be a date YYYY-MM-DD, not {value!r}") from None


def _time_range(params: dict[str, str]) -> tuple[dt.date, dt.date]:
    if "time_range" in params:
        value = parse_json_param(params, "time_range")
        if not isinstance(value, dict) or "since" not in value or "until" not in value:
            raise bad_json("time_range", 'expected {"since": "YYYY-MM-DD", "until": "YYYY-MM-DD"}')
        since, until = _date(value["since"], "since"), _date(value["until"], "until")
        if since > until:
            raise param_error("Param time_range: since must not be after until")
        return since, until
    return preset_range(str(params.get("date_preset") or "last_30d").strip().lower())


def _increment(params: dict[str, str]) -> str | int:
    raw = str(params.get("time_increment") or "all_days").strip().lower()
    if raw in ("all_days", "monthly"):
        return raw
    if raw.isdigit() and 1 <= int(raw) <= MAX_INCREMENT:
        return int(raw)
    raise param_error(f"Param time_increment must be 1..{MAX_INCREMENT}, monthly or all_days, not {raw!r}")


def _filtering(params: dict[str, str]) -> list[dict[str, Any]]:
    value = parse_json_param(params, "filtering")
    if value is None:
        return []
    if not (isinstance(value, list) and all(isinstance(f, dict) and "field" in f for f in value)):
        raise bad_json("filtering", "expected a list of {field, operator, value}")
    for flt in value:
        op = str(flt.get("operator", "IN")).upper()
        if op not in FILTER_OPERATORS and str(flt["field"]).endswith(".id"):
            raise param_error(f"Param filtering: operator {op!r} is not supported on {flt['field']}")
    return value


def _filter_level(flt: dict[str, Any]) -> str | None:
    name = str(flt.get("field", ""))
    head, _, tail = name.partition(".")
    return head if tail == "id" and head in LEVELS else None


def parse_spec(params: dict[str, str], node_type: str) -> ReportSpec:
    """Check a report's parameters (code 100 errors naming the parameter)."""
    filtering = _filtering(params)
    level = str(params.get("level") or "").strip().lower()
    if level and level not in LEVELS:
        raise param_error(f"Param level must be one of {{{', '.join(LEVELS)}}}, not {level!r}")
    if not level:
        named = [lvl for lvl in (_filter_level(f) for f in filtering) if lvl]
        level = max(named, key=LEVELS.index) if node_type == "account" and named else node_type
    fields = parse_fields(params.get("fields"))
    unknown = [f for f in fields or () if f not in KNOWN_FIELDS]
    if unknown:
        raise param_error(
            f"{', '.join(unknown)} is not valid for fields param. Known: {', '.join(sorted(KNOWN_FIELDS))}"
        )
    since, until = _time_range(params)
    return ReportSpec(level, fields, since, until, _increment(params), filtering)


# ---------------------------------------------------------------- rows


def buckets(spec: ReportSpec) -> list[tuple[dt.date, dt.date]]:
    """The (start, stop) date ranges of the report's rows."""
    if spec.increment == "all_days":
        return [(spec.since, spec.until)]
    out = []
    start = spec.since
    while start <= spec.until:
        if spec.increment == "monthly":
            stop = _month_end(start)
        else:
            stop = start + dt.timedelta(days=int(spec.increment) - 1)
        stop = min(stop, spec.until)
        out.append((start, stop))
        start = stop + dt.timedelta(days=1)
    return out


def day_stats(seed: str, day: dt.date) -> tuple[int, int, int, int]:
    """(impressions, clicks, spend in cents, reach) of one object on one day, from a hash."""
    h = int(hashlib.sha1(f"{seed}|{day.isoformat()}".encode()).hexdigest()[:12], 16)
    impressions = 100 + h % 9000
    clicks = impressions // (20 + (h >> 16) % 30)
    spend_cents = impressions * (2 + (h >> 24) % 7) // 10
    reach = impressions * (70 + (h >> 32) % 25) // 100
    return impressions, clicks, spend_cents, reach


def metrics(seed: str, start: dt.date, stop: dt.date) -> dict[str, str]:
    """The metrics of one object over [start, stop] (sums of its days), as Graph's strings."""
    imp = clk = cents = reach = 0
    day = start
    while day <= stop:
        i, c, s, r = day_stats(seed, day)
        imp, clk, cents, reach = imp + i, clk + c, cents + s, reach + r
        day += dt.timedelta(days=1)
    spend = cents / 100
    return {
        "impressions": str(imp),
        "clicks": str(clk),
        "spend": f"{spend:.2f}",
        "reach": str(reach),
        "ctr": f"{clk * 100 / imp:.6f}" if imp else "0",
        "cpc": f"{spend / clk:.6f}" if clk else "0",
        "cpm": f"{spend * 1000 / imp:.6f}" if imp else "0",
        "frequency": f"{imp / reach:.6f}" if reach else "0",
    }


def _subjects(ctx: Context, node: dict[str, Any], spec: ReportSpec) -> list[dict[str, Any]]:
    """The objects the rows are about, filtered as the report asks."""
    ntype = node["_type"]
    level = spec.level
    if ntype != "account" and LEVELS.index(level) <= LEVELS.index(ntype):
        return [node]
    if level == "account":
        return [node]
    scope = {} if ntype == "account" else {f"{ntype}_id": node["id"]}
    objs = [
        o
        for o in ctx.store.find(level, account_id=node["account_id"], **scope)
        if o.get("status") != "DELETED"
    ]
    for flt in spec.filtering:
        flevel = _filter_level(flt)
        if flevel is None or flevel == "account":
            continue  # metric filters are accepted and not applied
        raw = flt.get("value")
        values = [str(v) for v in (raw if isinstance(raw, list) else [raw])]
        op = str(flt.get("operator", "IN")).upper()
        key = "id" if flevel == level else f"{flevel}_id"
        if flevel == level and op in ("IN", "EQUAL") and ntype == "account":
            # Rows follow the filter's order; an id the emulator does not know is taken on trust.
            by_id = {o["id"]: o for o in objs}
            objs = [by_id.get(v) or {"_type": level, "id": v} for v in values]
        elif op in ("IN", "EQUAL"):
            objs = [o for o in objs if str(o.get(key)) in values]
        else:
            objs = [o for o in objs if str(o.get(key)) not in values]
    return objs


def _ids(ctx: Context, obj: dict[str, Any], level: str, account: dict[str, Any]) -> dict[str, str]:
    """``<level>_id`` / ``<level>_name`` of a row's object and its parents."""
    out = {"account_id": account["account_id"], "account_name": account["name"]}
    for lvl in LEVELS[1 : LEVELS.index(level) + 1]:
        oid = obj["id"] if lvl == level else obj.get(f"{lvl}_id")
        if oid:
            out[f"{lvl}_id"] = str(oid)
            name = (obj if lvl == level else ctx.store.get(str(oid)) or {}).get("name")
            if name:
                out[f"{lvl}_name"] = str(name)
    return out


def build_rows(ctx: Context, node: dict[str, Any], spec: ReportSpec) -> list[dict[str, Any]]:
    """Every row of a report, date-major then object."""
    account = ctx.store.account(node["account_id"])
    level = spec.level if node["_type"] == "account" else max(spec.level, node["_type"], key=LEVELS.index)
    subjects = _subjects(ctx, node, spec)
    rows = []
    for start, stop in buckets(spec):
        for obj in subjects:
            seed = obj["id"]
            ids = _ids(ctx, obj, level, account)
            stats = metrics(seed, start, stop)
            if spec.fields is None:
                row: dict[str, Any] = {"account_id": ids["account_id"]}
                if level != "account":
                    row.update({k: ids[k] for k in (f"{level}_id", f"{level}_name") if k in ids})
                row.update({k: stats[k] for k in DEFAULT_METRICS})
            else:
                known = {**ids, **stats, "account_currency": account.get("currency", "USD")}
                row = {f: known[f] for f in spec.fields if f in known}
            row["date_start"], row["date_stop"] = start.isoformat(), stop.isoformat()
            rows.append(row)
    return rows


def page_rows(ctx: Context, call: Call, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Cursor pages over rows, through the emulator's one paging function."""
    items = [{"id": str(i + 1), "_row": r} for i, r in enumerate(rows)]
    return paginate(ctx, call, items, render_one=lambda item: item["_row"])


# ---------------------------------------------------------------- handlers (named in the route table)


def sync_report(ctx: Context, call: Call, node: dict[str, Any]) -> dict[str, Any]:
    """``GET <node>/insights``: the rows at once."""
    return page_rows(ctx, call, build_rows(ctx, node, parse_spec(call.params, node["_type"])))


def start_run(ctx: Context, call: Call, node: dict[str, Any]) -> dict[str, Any]:
    """``POST <node>/insights``: a new report run (checked now, computed when it completes)."""
    spec = parse_spec(call.params, node["_type"])
    fate = ctx.faults.take_job(call.path)
    if fate is not None:
        ctx.store.count_in("faults_injected", fate)
    limit = ctx.cfg["insights_fail_above_days"]
    if fate is None and limit is not None and spec.days > int(limit):
        fate = "job_failed"
    run = {
        "_type": RUN_TYPE,
        "id": ctx.store.new_id(),
        "account_id": node["account_id"],
        "time_ref": int(time.time()),
        "time_completed": 0,
        "async_status": NOT_STARTED,
        "async_percent_completion": 0,
        "date_start": spec.since.isoformat(),
        "date_stop": spec.until.isoformat(),
        "_node": node["id"],
        # The range is fixed when the run starts: a date_preset does not move if it ends after midnight.
        "_params": {
            **{k: v for k, v in call.params.items() if k not in NOT_REPORT_PARAMS | {"date_preset"}},
            "time_range": json.dumps({"since": spec.since.isoformat(), "until": spec.until.isoformat()}),
        },
        "_fate": fate,
        "_progress": 0.0,
    }
    ctx.store.add_run(run, time.monotonic())
    return {"report_run_id": run["id"]}


def run_rows(ctx: Context, call: Call, run: dict[str, Any]) -> dict[str, Any]:
    """``GET <report_run_id>/insights``: the rows of a completed run, paged."""
    if run["async_status"] != COMPLETED:
        raise GraphError(
            f"(#100) The report run {run['id']} is not complete (async_status {run['async_status']!r}, "
            f"{run['async_percent_completion']}%): read its rows after Job Completed",
            100,
        )
    return page_rows(ctx, call, run.get("_rows") or [])


def use_case(ctx: Context, call: Call) -> str:
    """The business use case a call counts against (``ads_insights`` for insights and report runs)."""
    segs = call.segs
    if len(segs) == 2 and segs[1] == "insights":
        return "ads_insights"
    ids = segs[:1] or [i for i in str(call.params.get("ids", "")).split(",") if i.strip()]
    if ids and all((ctx.store.get(i.strip()) or {}).get("_type") == RUN_TYPE for i in ids):
        return "ads_insights"
    return "ads_management"


def tick(ctx: Context, now: float) -> None:
    """Advance every unfinished report run by ``insights_pace`` percent per second (lock held)."""
    store = ctx.store
    pace = float(ctx.cfg["insights_pace"])
    for rid, last in store.active_runs():
        run = store.get(rid)
        if run is None or run.get("_type") != RUN_TYPE:
            store.run_done(rid)
            continue
        store.run_ticked(rid, now)
        if pace <= 0:
            continue
        fate = run.get("_fate")
        progress = min(100.0, float(run["_progress"]) + pace * max(0.0, now - last))
        changes: dict[str, Any] = {"_progress": progress}
        if fate == "job_skipped":
            changes.update(_finished(SKIPPED, 0))
        elif fate == "job_failed" and progress >= FAIL_AT_PERCENT:
            changes.update(_finished(RUN_FAILED, FAIL_AT_PERCENT))
        elif progress >= 100:
            node = store.get(run["_node"]) or store.account(run["account_id"])
            changes["_rows"] = build_rows(ctx, node, parse_spec(run["_params"], node["_type"]))
            changes.update(_finished(COMPLETED, 100))
        else:
            changes["async_status"] = STARTED if run["async_status"] == NOT_STARTED else RUNNING
            changes["async_percent_completion"] = int(progress)
        store.update(run, changes)
        if "time_completed" in changes:
            store.run_done(rid)


def _finished(status: str, percent: int) -> dict[str, Any]:
    """The fields of a run that ends with ``status``."""
    return {"async_status": status, "async_percent_completion": percent, "time_completed": int(time.time())}
