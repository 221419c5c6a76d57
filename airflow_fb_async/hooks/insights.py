"""The hooks' insights calls: start async report runs, read them 50 per call, page their rows.

::

    start_insights_report(act, params)  POST act_<id>/insights            -> report_run_id
    get_report_runs(run_ids)            GET /?ids=R1,...,R50&fields=...    -> {run_id: {async_status, ...}}
    iter_report_rows(run_id)            GET <run_id>/insights, cursor pages -> rows

:class:`InsightsMixin` adds these to :class:`~airflow_fb_async.hooks.graph.GraphHook`, and
:class:`AsyncInsightsMixin` their async twins, under the same names, to ``GraphAsyncHook``
(``class GraphHook(InsightsMixin, GraphHookBase[...])``, ``class GraphAsyncHook(AsyncInsightsMixin,
GraphHookBase[...])``; ``await ahook.get_report_runs(...)``). They go through the hooks' own request,
multi-id and pagination paths, so retries, scrubbing and throttling are the hooks'. Everything that
is not I/O (checking and encoding the report's parameters, reading the answers) is shared here.

Throttling: insights calls count against the ad account's ``ads_insights`` business use case, which
Graph reports in ``X-Business-Use-Case-Usage`` keyed by the account; the hooks' throttle state
records it per account. A report run's path does not name its account, so the mixins remember each
run's account (from the start, and from ``account_id`` in reads) and wait out that account's block
or slowdown before reading the run.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow_fb_async.exceptions import GraphAPIError, GraphInputError
from airflow_fb_async.hooks.encoding import encode_fields, fields_param
from airflow_fb_async.hooks.graph_base import check_multi, multi_id_params
from airflow_fb_async.hooks.ids import account_digits, normalize_ad_account_id

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_fb_async.hooks.call import CallOptions
    from airflow_fb_async.hooks.throttle import ThrottleState

__all__ = [
    "DEFAULT_REPORT_RUN_FIELDS",
    "JOB_COMPLETED",
    "JOB_FAILED_STATUSES",
    "AsyncInsightsMixin",
    "InsightsMixin",
    "insights_params",
    "report_run_done",
]

log = logging.getLogger("airflow_fb_async.hooks.insights")

LEVELS = ("account", "campaign", "adset", "ad")
TIME_INCREMENTS = ("all_days", "monthly")
MAX_TIME_INCREMENT = 90
DEFAULT_REPORT_RUN_FIELDS = (
    "id",
    "account_id",
    "async_status",
    "async_percent_completion",
    "date_start",
    "date_stop",
)
JOB_COMPLETED = "Job Completed"
JOB_FAILED_STATUSES = frozenset({"Job Failed", "Job Skipped"})
_JSON_SCALARS = (str, int, float, bool, type(None))


# --------------------------------------------------------------------------------------------------
# Parameters and answers (pure)
# --------------------------------------------------------------------------------------------------


def _bad(key: str, message: str) -> GraphInputError:
    return GraphInputError(f"insights parameter {key!r}: {message}")


def _day(value: Any, key: str) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise _bad(
        "time_range", f"{key} must be a date or a 'YYYY-MM-DD' string, got {type(value).__name__} {value!r}"
    )


def _time_range(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or set(value) != {"since", "until"}:
        raise _bad("time_range", f"expected {{'since': 'YYYY-MM-DD', 'until': 'YYYY-MM-DD'}}, got {value!r}")
    since, until = _day(value["since"], "since"), _day(value["until"], "until")
    if since > until:
        raise _bad("time_range", f"since {since} is after until {until}")
    return {"since": since, "until": until}


def _time_increment(value: Any) -> str:
    text = str(value).strip().lower() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if text in TIME_INCREMENTS or (text.isdigit() and 1 <= int(text) <= MAX_TIME_INCREMENT):
        return text
    raise _bad(
        "time_increment",
        f"expected 1..{MAX_TIME_INCREMENT}, 'monthly' or 'all_days', got {type(value).__name__} {value!r}",
    )


def _names(key: str, value: Any) -> str:
    """``fields`` / ``breakdowns``: a comma-separated string or a list of names."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) and v.strip() for v in value):
        return fields_param(value) or ""
    raise _bad(key, f"expected a non-empty list of names or a comma-separated string, got {value!r}")


def _plain(key: str, value: Any, where: str = "") -> Any:
    """Any other value as JSON data: dates as ISO strings, tuples as lists; anything else that is
    not JSON (sets, bytes, objects) is a :class:`GraphInputError` naming the key and the type."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _bad(key, f"key {k!r}{where} must be a string, got {type(k).__name__}")
            out[k] = _plain(key, v, f"{where}[{k!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_plain(key, v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise _bad(key, f"value{where} of type {type(value).__name__} is not JSON ({value!r})")


def insights_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Check a report's parameters and encode them as Graph form fields.

    Known keys are checked for what Graph accepts (``level``, ``time_range``, ``time_increment``,
    ``fields``, ``breakdowns``, ``filtering``, ``date_preset``); any other key (``action_attribution_windows``,
    ``sort``...) must hold JSON. Raises :class:`GraphInputError` naming the key, before any call.
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise GraphInputError(f"insights parameters must be a dict, got {type(params).__name__}")
    out: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key.strip():
            raise GraphInputError(f"insights parameter names must be non-empty strings, got {key!r}")
        if value is None:
            continue
        if key == "level":
            if not isinstance(value, str) or value.strip().lower() not in LEVELS:
                raise _bad(key, f"expected one of {', '.join(LEVELS)}, got {value!r}")
            value = value.strip().lower()
        elif key == "date_preset":
            if not isinstance(value, str) or not value.strip():
                raise _bad(key, f"expected a preset name such as 'last_7d', got {value!r}")
            value = value.strip().lower()
        elif key == "time_range":
            value = _time_range(value)
        elif key == "time_increment":
            value = _time_increment(value)
        elif key in ("fields", "breakdowns"):
            value = _names(key, value)
        elif key == "filtering":
            if not isinstance(value, list | tuple) or not all(
                isinstance(f, Mapping) and "field" in f for f in value
            ):
                raise _bad(key, f"expected a list of {{'field', 'operator', 'value'}} dicts, got {value!r}")
            value = _plain(key, value)
        else:
            value = _plain(key, value)
        out[key] = value
    return encode_fields(out)


def report_run_id_of(answer: Any, account: str) -> str:
    """The ``report_run_id`` of a start answer (a :class:`GraphAPIError` if there is none)."""
    run_id = answer.get("report_run_id") if isinstance(answer, Mapping) else None
    if not isinstance(run_id, str | int) or not str(run_id).strip():
        raise GraphAPIError(f"POST act_{account}/insights answered no report_run_id: {answer!r}")
    return str(run_id).strip()


def report_run_done(run: Mapping[str, Any]) -> bool:
    """True when a run's rows can be read: ``Job Completed`` at 100 %."""
    return run.get("async_status") == JOB_COMPLETED and str(run.get("async_percent_completion")) == "100"


class _RunAccounts:
    """Which ad account each report run belongs to (process-wide, bounded, thread-safe)."""

    def __init__(self, maxsize: int = 20_000) -> None:
        self._lock = threading.Lock()
        self._map: OrderedDict[str, str] = OrderedDict()
        self._maxsize = maxsize

    def remember(self, run_id: str, account: Any) -> None:
        if not isinstance(account, str | int) or not str(account).strip():
            return
        with self._lock:
            self._map[run_id] = str(account).strip().removeprefix("act_")
            self._map.move_to_end(run_id)
            while len(self._map) > self._maxsize:
                self._map.popitem(last=False)

    def learn(self, runs: Mapping[str, Any]) -> None:
        for run_id, run in runs.items():
            if isinstance(run, Mapping):
                self.remember(run_id, run.get("account_id"))

    def of(self, run_ids: Iterable[str]) -> list[str]:
        with self._lock:
            found = [self._map.get(r) for r in run_ids]
        return list(dict.fromkeys(a for a in found if a))


RUN_ACCOUNTS = _RunAccounts()


def _pause_before(throttle: ThrottleState, run_ids: Sequence[str], what: str) -> float:
    pause, reason = throttle.wait_time(RUN_ACCOUNTS.of(run_ids))
    if pause > 0:
        log.info("Throttle pause %.2fs before %s (%s)", pause, what, reason)
    return pause


# --------------------------------------------------------------------------------------------------
# The mixins (I/O through the hooks' request / multi-id / paginate)
# --------------------------------------------------------------------------------------------------

AnswerT = TypeVar("AnswerT", covariant=True)
PagesT = TypeVar("PagesT", covariant=True)


class _Host(Protocol[AnswerT, PagesT]):
    """What the mixins use of their hook: ``_Host[Any, Iterator]`` is :class:`GraphHook`,
    ``_Host[Coroutine, AsyncIterator]`` is ``GraphAsyncHook``."""

    @property
    def _sleep(self) -> Callable[[float], Any]: ...

    @property
    def throttle(self) -> ThrottleState: ...

    def request(self, method: str, path: str, **options: Unpack[CallOptions]) -> AnswerT: ...

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> PagesT: ...


def _start_args(ad_account_id: Any, params: Mapping[str, Any] | None) -> tuple[str, str, dict[str, str]]:
    account = account_digits(ad_account_id)
    return account, f"{normalize_ad_account_id(account)}/insights", insights_params(params)


def _rows_path(report_run_id: Any) -> str:
    text = str(report_run_id).strip() if isinstance(report_run_id, str | int) else ""
    if isinstance(report_run_id, bool) or not text or any(c in text for c in "/?&#, "):
        raise GraphInputError(
            f"report_run_id must be one report run id, got {type(report_run_id).__name__} {report_run_id!r}"
        )
    return f"{text}/insights"


# A report run only reads data: starting one again after a lost answer leaves at most an unused
# run behind, so the start call is sent as repeatable (retried after a dropped connection).
_START_IS_REPEATABLE = True


def _started(answer: Any, account: str) -> str:
    """The run id of a start answer, remembered with its account (for throttle pauses)."""
    run_id = report_run_id_of(answer, account)
    RUN_ACCOUNTS.remember(run_id, account)
    return run_id


def _run_reads(
    throttle: ThrottleState, report_run_ids: str | Iterable[str], fields: str | Iterable[str] | None
) -> Iterator[tuple[float, dict[str, Any]]]:
    """Each multi-id read of report runs (50 ids): the pause its runs' accounts ask for, its params."""
    for params in multi_id_params(report_run_ids, fields, DEFAULT_REPORT_RUN_FIELDS):
        yield _pause_before(throttle, params["ids"].split(","), "GET /?ids= (report runs)"), params


def _learned(answer: Any) -> dict[str, dict[str, Any]]:
    """A multi-id answer of report runs, their accounts remembered."""
    runs = check_multi(answer, "GET /?ids=")
    RUN_ACCOUNTS.learn(runs)
    return runs


def _rows_read(throttle: ThrottleState, report_run_id: Any) -> tuple[str, float]:
    """The rows' path of a report run, and the pause its account asks for."""
    path = _rows_path(report_run_id)
    return path, _pause_before(throttle, [path.split("/")[0]], f"GET /{path}")


SyncHost = _Host[Any, Iterator[dict[str, Any]]]
AsyncHost = _Host[Coroutine[Any, Any, Any], AsyncIterator[dict[str, Any]]]


class InsightsMixin:
    """Insights calls of the sync hook: ``class GraphHook(InsightsMixin, GraphHookBase[...])``."""

    def start_insights_report(self: SyncHost, ad_account_id: str, params: Mapping[str, Any] | None) -> str:
        """Start an async report run on an ad account (``POST act_<id>/insights``); its id.

        :param params: the report's parameters (``fields``, ``level``, ``date_preset`` or
            ``time_range``, ``time_increment``, ``breakdowns``, ``filtering``, ...), checked first.
        """
        account, path, data = _start_args(ad_account_id, params)
        return _started(self.request("POST", path, data=data, idempotent=_START_IS_REPEATABLE), account)

    def get_report_runs(
        self: SyncHost, report_run_ids: str | Iterable[str], fields: str | Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Read report runs with multi-id ``GET /?ids=`` (50 per call): ``{run_id: fields}``.

        ``fields`` defaults to :data:`DEFAULT_REPORT_RUN_FIELDS` (status, percent, account, dates).
        """
        out: dict[str, dict[str, Any]] = {}
        for pause, params in _run_reads(self.throttle, report_run_ids, fields):
            if pause > 0:
                self._sleep(pause)
            out.update(_learned(self.request("GET", "", params=params)))
        return out

    def iter_report_rows(
        self: SyncHost, report_run_id: str, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The rows of a completed report run (``GET <report_run_id>/insights``), page by page."""
        path, pause = _rows_read(self.throttle, report_run_id)
        if pause > 0:
            self._sleep(pause)
        yield from self.paginate(path, page_size=page_size)


class AsyncInsightsMixin:
    """Insights calls of the async hook: ``class GraphAsyncHook(AsyncInsightsMixin, GraphHookBase[...])``."""

    async def start_insights_report(
        self: AsyncHost, ad_account_id: str, params: Mapping[str, Any] | None
    ) -> str:
        """Async twin of :meth:`InsightsMixin.start_insights_report`."""
        account, path, data = _start_args(ad_account_id, params)
        return _started(await self.request("POST", path, data=data, idempotent=_START_IS_REPEATABLE), account)

    async def get_report_runs(
        self: AsyncHost, report_run_ids: str | Iterable[str], fields: str | Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Async twin of :meth:`InsightsMixin.get_report_runs` (50 runs per call)."""
        out: dict[str, dict[str, Any]] = {}
        for pause, params in _run_reads(self.throttle, report_run_ids, fields):
            if pause > 0:
                await self._sleep(pause)
            out.update(_learned(await self.request("GET", "", params=params)))
        return out

    async def iter_report_rows(
        self: AsyncHost, report_run_id: str, page_size: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Async twin of :meth:`InsightsMixin.iter_report_rows`."""
        path, pause = _rows_read(self.throttle, report_run_id)
        if pause > 0:
            await self._sleep(pause)
        async for row in self.paginate(path, page_size=page_size):
            yield row
