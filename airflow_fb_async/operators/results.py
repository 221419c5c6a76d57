"""Hand the results of async request sets to the rest of a DAG.

:class:`AsyncRequestResultsOperator` pages through the ``requests`` edge of one or more async
request sets and either returns the normalised results through XCom (bounded by
``max_xcom_items``; it fails clearly rather than push too much) or streams them as JSON Lines to a
local path or any Airflow ``ObjectStoragePath`` URL, in constant memory.

Normalised item (one per request)::

    {
        "id": "<request id>",
        "request_set_id": "<set id>",
        "status": "SUCCESS",              # upper case, whatever Graph's spelling
        "result": {"id": "1202..."},      # parsed when Graph sends a JSON string
        "errors": [],                     # [{"error_code": int, "error_message": str, ...}]
        ...                               # plus every extra field asked for with ``fields``
    }

``errors`` is always a list: Graph's docs describe the error ``result`` as an array of
``{error_code, error_message}``, the official SDK and the emulator return one map, and a sync-style
``{"error": {"code", "message"}}`` envelope is accepted too. It is empty for successful requests.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow_fb_async._compat import BaseOperator, ObjectStoragePath
from airflow_fb_async.exceptions import AsyncRequestSetError, GraphInputError
from airflow_fb_async.exceptions import TooManyResultsError as TooManyResultsError
from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.hooks.statuses import (
    CANCELED_STATUSES,
    ERROR_STATUSES,
    AsyncRequestStatus,
    normalize_statuses,
    set_is_completed,
)
from airflow_fb_async.jsonl import JsonlWriter, StoragePath, storage_path
from airflow_fb_async.literals import is_empty_list, parse_literal
from airflow_fb_async.waiting.ids import normalize_ids

if TYPE_CHECKING:
    import os

    from airflow_fb_async._compat import Context, XComArg

#: Fields always read from the ``requests`` edge.
BASE_FIELDS = ("id", "status", "result")
#: Keys of a normalised item that ``fields`` cannot override.
RESERVED_KEYS = frozenset({"id", "request_set_id", "status", "result", "errors"})
#: Graph's page size when neither the operator nor the connection sets one (the emulator's max).
DEFAULT_PAGE_SIZE = 500

_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AsyncRequestResultsOperator(BaseOperator):
    """Read the results of async request sets: return them (XCom) or write them as JSON Lines.

    :param request_set_ids: One request set id or a list of them (templated). Any XCom of
        ``SubmitAsyncBatchOperator`` works as is (the id list, the ``wait_for_completion`` summary,
        a mapped submit's list of lists); a comma-separated string or a rendered list literal
        (``"['1', '2']"``) is accepted too. Duplicates are read once.
    :param statuses: Only requests with these statuses (templated): one status, a comma-separated
        string or a list, any spelling/case (``"error"``, ``["SUCCESS", "In_progress"]``). ``None``
        reads every request (with ``ids_only=True``: only ``SUCCESS``).
    :param fields: Extra fields of each request to read and add to every item (templated), e.g.
        ``["input", "scope_object_id", "created_time"]`` or ``"input,created_time"``. Plain field
        names only. ``id``, ``status`` and ``result`` are always read.
    :param output_path: Where to write JSON Lines instead of returning the items (templated): a
        local path or an ``ObjectStoragePath``/URL (``file:///data/out.jsonl``, ``s3://...``).
        The file is written under a temporary sibling name and renamed at the end, so a failed
        task never leaves a half-written file. The task then returns
        ``{"path", "count", "counts_by_status"}``.
    :param ids_only: Return the ids of the objects that successful requests created
        (``result.id``), in request order, ready for ``.expand()``. Successful requests whose
        result has no ``id`` (updates answer ``{"success": true}``) are skipped and counted in the
        log. With ``output_path`` each line of the file is one id as a JSON string, ``count`` is
        the number of ids written and ``counts_by_status`` counts every request read.
    :param max_xcom_items: Most items (or ids) returned through XCom when ``output_path`` is not
        set. More fails the task with a message that says to set ``output_path``; nothing is ever
        silently truncated. Fetching stops as soon as the limit is exceeded, or never starts when
        the sets' counts already show it (with ``ids_only``: when their success counts exceed it).
    :param page_size: Requests per page of the ``requests`` edge (default: the connection's
        ``page_size``, 500). Graph clamps it to its maximum.
    :param graph_conn_id: Airflow connection id of the Graph API (templated).
    :param api_version: Graph API version, e.g. ``v25.0`` (templated; default: the connection's).
    """

    template_fields: Sequence[str] = (
        "request_set_ids",
        "statuses",
        "fields",
        "output_path",
        "graph_conn_id",
        "api_version",
    )
    ui_color = "#e7f0fd"

    def __init__(
        self,
        *,
        request_set_ids: str | int | Sequence[str | int] | XComArg,
        statuses: str | Sequence[str] | XComArg | None = None,
        fields: str | Sequence[str] | XComArg | None = None,
        output_path: str | os.PathLike[str] | ObjectStoragePath | XComArg | None = None,
        ids_only: bool = False,
        max_xcom_items: int = 1000,
        page_size: int | None = None,
        graph_conn_id: str = "facebook_graph_default",
        api_version: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.request_set_ids = request_set_ids
        self.statuses = statuses
        self.fields = fields
        self.output_path = output_path
        self.ids_only = ids_only
        self.max_xcom_items = max_xcom_items
        self.page_size = page_size
        self.graph_conn_id = graph_conn_id
        self.api_version = api_version
        # Non-templated arguments are checked at DAG parse time already.
        self._check_static_args()

    # ------------------------------------------------------------------ validation

    def _check_static_args(self) -> None:
        if not isinstance(self.ids_only, bool):
            raise GraphInputError(f"ids_only must be a bool, got {self.ids_only!r}")
        if (
            isinstance(self.max_xcom_items, bool)
            or not isinstance(self.max_xcom_items, int)
            or self.max_xcom_items < 1
        ):
            raise GraphInputError(f"max_xcom_items must be an int >= 1, got {self.max_xcom_items!r}")
        if self.page_size is not None and (
            isinstance(self.page_size, bool) or not isinstance(self.page_size, int) or self.page_size < 1
        ):
            raise GraphInputError(f"page_size must be None or an int >= 1, got {self.page_size!r}")

    @staticmethod
    def _as_list(value: Any, what: str) -> list[Any]:
        """One value, a comma-separated string, a rendered list literal, or a list -> list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith(("[", "(")):
                # A list rendered to text by Jinja ("['1', '2']") or written as JSON.
                try:
                    parsed = parse_literal(text)
                except ValueError:
                    raise GraphInputError(f"{what}: cannot read {value!r} as a list") from None
                if not isinstance(parsed, list | tuple):
                    raise GraphInputError(f"{what}: cannot read {value!r} as a list")
                return list(parsed)
            return [part.strip() for part in text.split(",")] if text else []
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        if isinstance(value, Iterable) and not isinstance(value, bytes | dict):
            return list(value)
        raise GraphInputError(f"{what} must be a string or a list, got {type(value).__name__}: {value!r}")

    def _validated_set_ids(self) -> list[str]:
        """The set ids to read; ``[]`` (a submit that had nothing to do) is accepted: no results."""
        if is_empty_list(self.request_set_ids):
            return []
        return normalize_ids(self.request_set_ids, "request_set_ids")

    def _validated_statuses(self) -> list[str] | None:
        if self.statuses is None:
            statuses = None
        else:
            items = self._as_list(self.statuses, "statuses")
            try:
                statuses = normalize_statuses(items)
            except ValueError as exc:
                raise GraphInputError(f"statuses: {exc}") from None
        if self.ids_only:
            if statuses is None:
                return [AsyncRequestStatus.SUCCESS.value]
            if AsyncRequestStatus.SUCCESS.value not in statuses:
                raise GraphInputError(
                    f"ids_only=True returns the ids created by SUCCESS requests, but statuses={statuses} "
                    "excludes SUCCESS: drop statuses or include SUCCESS"
                )
        return statuses

    def _validated_fields(self) -> list[str]:
        if self.fields is None:
            return []
        out: list[str] = []
        for index, item in enumerate(self._as_list(self.fields, "fields")):
            if not isinstance(item, str) or not _FIELD_RE.match(item.strip()):
                raise GraphInputError(
                    f"fields[{index}] must be a field name (letters, digits, underscores), got {item!r}"
                )
            item = item.strip()
            if item in ("request_set_id", "errors"):
                raise GraphInputError(
                    f"fields[{index}] {item!r} is a key the operator fills itself; it is not a Graph field"
                )
            if item not in BASE_FIELDS and item not in out:
                out.append(item)
        return out

    def _validated_output(self) -> StoragePath | None:
        return None if self.output_path is None else storage_path(self.output_path, "output_path")

    # ------------------------------------------------------------------ execution

    def execute(self, context: Context) -> list[Any] | dict[str, Any]:
        set_ids = self._validated_set_ids()
        statuses = self._validated_statuses()
        extra_fields = self._validated_fields()
        output = self._validated_output()
        if self.ids_only and extra_fields:
            self.log.warning("results: ids_only=True ignores fields=%s", extra_fields)
            extra_fields = []

        hook = GraphHook(graph_conn_id=self.graph_conn_id, api_version=self.api_version)
        totals = self._read_totals(hook, set_ids, statuses, early_limit=output is None)
        items = self._iter_items(hook, set_ids, statuses, extra_fields, totals)
        try:
            if output is not None:
                return self._write_jsonl(hook, items, output)
            return self._collect(hook, items)
        finally:
            items.close()  # stop the pagination at once (limit exceeded, write error...)

    def _read_totals(
        self, hook: GraphHook, set_ids: list[str], statuses: list[str] | None, *, early_limit: bool
    ) -> dict[str, int | None]:
        """Read each set's counts (1 multi-id call per 50 sets) for progress totals and early checks."""
        if not set_ids:
            return {}
        count_fields = ["id", "is_completed", "total_count", "initial_count", "in_progress_count"]
        count_fields += ["success_count", "error_count", "canceled_count"]
        sets = hook.get_request_sets(set_ids, fields=count_fields)
        totals: dict[str, int | None] = {}
        all_completed = True
        for set_id in set_ids:
            info = sets.get(set_id)
            if not isinstance(info, dict):
                raise AsyncRequestSetError(f"request set {set_id} was not returned by Graph (does it exist?)")
            if not set_is_completed(info):
                all_completed = False
                pending = _int(info.get("initial_count")) + _int(info.get("in_progress_count"))
                self.log.warning(
                    "results: set %s is not completed (%d request(s) not processed yet): results are partial",
                    set_id,
                    pending,
                )
            totals[set_id] = _expected_total(info, statuses)
        # Fail before fetching anything when the counts already prove the limit is exceeded.
        if early_limit and self.ids_only:
            # Every id comes from a successful request (updates succeed without one): the success
            # counts bound the ids, and they only grow. Over the limit, the task could only ever
            # fail after reading pages for nothing, so it fails now.
            successes = sum(_int((sets.get(set_id) or {}).get("success_count")) for set_id in set_ids)
            if successes > self.max_xcom_items:
                raise TooManyResultsError(self._limit_message(f"up to {successes}"))
        # Exact only for all requests (total_count) or SUCCESS alone (success_count) of completed sets.
        exact = statuses is None or statuses == [AsyncRequestStatus.SUCCESS.value]
        if early_limit and not self.ids_only and exact and all_completed:
            known = sum(t for t in totals.values() if t is not None)
            if known > self.max_xcom_items:
                raise TooManyResultsError(self._limit_message(known))
        return totals

    def _iter_items(
        self,
        hook: GraphHook,
        set_ids: list[str],
        statuses: list[str] | None,
        extra_fields: list[str],
        totals: dict[str, int | None],
    ) -> Generator[dict[str, Any], None, None]:
        fields = [*BASE_FIELDS, *extra_fields]
        log_every = self.page_size or _hook_page_size(hook)
        wanted = set(statuses) if statuses is not None else None
        for set_id in set_ids:
            total = totals.get(set_id)
            fetched = skipped = 0
            for raw in hook.list_requests(set_id, statuses=statuses, fields=fields, page_size=self.page_size):
                item = normalize_request(raw, set_id, extra_fields)
                if wanted is not None and item["status"] not in wanted:
                    skipped += 1  # the server ignored (part of) the filter: filter here too
                    continue
                fetched += 1
                yield item
                if fetched % log_every == 0:
                    self._log_progress(set_id, fetched, total)
            if fetched % log_every or fetched == 0:
                self._log_progress(set_id, fetched, total)
            if skipped:
                self.log.info(
                    "results: set %s: %d request(s) outside statuses=%s dropped", set_id, skipped, statuses
                )

    def _log_progress(self, set_id: str, fetched: int, total: int | None) -> None:
        if total:
            pct = min(100, fetched * 100 // total)
            self.log.info("results: set %s: %d/%d fetched (%d%%)", set_id, fetched, total, pct)
        else:
            self.log.info("results: set %s: %d fetched", set_id, fetched)

    def _limit_message(self, count: int | str) -> str:
        what = "object ids" if self.ids_only else "results"
        return (
            f"AsyncRequestResultsOperator: {count} {what} to return, more than max_xcom_items="
            f"{self.max_xcom_items}. XCom is not meant for that much data and results are never truncated: "
            f"set output_path (a local path or an ObjectStoragePath URL) to write them as JSON Lines, "
            f"narrow them with statuses=..., or raise max_xcom_items."
        )

    def _collect(self, hook: GraphHook, items: Iterator[dict[str, Any]]) -> list[Any]:
        out: list[Any] = []
        no_id = 0
        for item in items:
            if self.ids_only:
                object_id = created_object_id(item)
                if object_id is None:
                    no_id += 1
                    continue
                out.append(object_id)
            else:
                out.append(item)
            if len(out) > self.max_xcom_items:
                raise TooManyResultsError(self._limit_message(f"more than {self.max_xcom_items}"))
        if no_id:
            self.log.info("results: %d successful request(s) returned no object id (updates?)", no_id)
        # A JSON round trip proves the XCom is serialisable; scrubbing on the way guards the token.
        try:
            result = json.loads(hook.scrub(json.dumps(out)))
        except (TypeError, ValueError) as exc:
            raise AsyncRequestSetError(f"results are not JSON-serialisable: {exc}") from None
        what = "object ids" if self.ids_only else "items"
        self.log.info("results: returning %d %s through XCom", len(result), what)
        return cast("list[Any]", result)

    def _write_jsonl(
        self, hook: GraphHook, items: Iterator[dict[str, Any]], output: StoragePath
    ) -> dict[str, Any]:
        counts: Counter[str] = Counter()
        no_id = 0
        with JsonlWriter(output, hook.scrub) as writer:
            for item in items:
                counts[item["status"]] += 1
                value: Any = item
                if self.ids_only:
                    value = created_object_id(item)
                    if value is None:
                        no_id += 1
                        continue
                writer.write(value)
        if no_id:
            self.log.info("results: %d successful request(s) returned no object id (updates?)", no_id)
        path = str(output)
        self.log.info("results: wrote %d line(s) to %s (%s)", writer.count, path, dict(counts))
        return {"path": path, "count": writer.count, "counts_by_status": dict(counts)}


# ---------------------------------------------------------------------- normalisation helpers


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _hook_page_size(hook: GraphHook) -> int:
    """The page size the hook asks for when the operator does not set one (conn extra ``page_size``)."""
    try:
        return int(hook.core.config.page_size) or DEFAULT_PAGE_SIZE
    except Exception:  # not part of the hook's public contract: fall back to Graph's usual maximum
        return DEFAULT_PAGE_SIZE


def _expected_total(info: dict[str, Any], statuses: list[str] | None) -> int | None:
    """Best estimate of how many requests of a set match ``statuses``, from its counts."""
    if statuses is None:
        return _int(info.get("total_count")) if "total_count" in info else None
    wanted = {AsyncRequestStatus(s) for s in statuses}
    count_fields: set[str] = set()
    for status in wanted:
        if status is AsyncRequestStatus.SUCCESS:
            count_fields.add("success_count")
        elif status in ERROR_STATUSES:
            count_fields.add("error_count")
        elif status in CANCELED_STATUSES:
            count_fields.add("canceled_count")
        elif status is AsyncRequestStatus.INITIAL:
            count_fields.add("initial_count")
        elif status is AsyncRequestStatus.IN_PROGRESS:
            count_fields.add("in_progress_count")
        else:
            return None  # no count field maps to it (PENDING_DEPENDENCY)
    if not all(f in info for f in count_fields):
        return None
    return sum(_int(info.get(f)) for f in count_fields)


def _parse_json_text(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[", '"') or text in ("true", "false", "null"):
            try:
                return json.loads(text)
            except ValueError:
                return value
    return value


def _as_error_code(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _normalize_error(entry: Any) -> dict[str, Any] | None:
    entry = _parse_json_text(entry)
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("error"), dict):  # sync-style envelope {"error": {"code", "message"}}
        entry = entry["error"]
    if not any(k in entry for k in ("error_code", "error_message", "code", "message")):
        return None
    out = {
        "error_code": _as_error_code(entry.get("error_code", entry.get("code"))),
        "error_message": entry.get("error_message", entry.get("message")),
    }
    for key, value in entry.items():
        if key not in ("error_code", "error_message", "code", "message") and key not in out:
            out[key] = value
    return out


def normalize_errors(result: Any) -> list[dict[str, Any]]:
    """Error ``result`` of a request -> list of ``{"error_code", "error_message", ...}``.

    Accepts a map (SDK, emulator), an array of maps (Graph's docs), either as a JSON string, and a
    sync-style ``{"error": {...}}`` envelope.
    """
    result = _parse_json_text(result)
    entries = result if isinstance(result, list) else [result]
    return [e for e in (_normalize_error(x) for x in entries) if e is not None]


def normalize_request(
    raw: dict[str, Any], request_set_id: str, extra_fields: Sequence[str] = ()
) -> dict[str, Any]:
    """One item of ``<set>/requests`` -> the operator's normalised item."""
    status_raw = raw.get("status")
    try:
        status: str | None = AsyncRequestStatus.parse(status_raw).value if status_raw is not None else None
    except ValueError:
        status = str(status_raw).strip().upper()  # an unknown spelling: keep it, never crash
    result = _parse_json_text(raw.get("result"))
    errors = [] if status == AsyncRequestStatus.SUCCESS.value or result is None else normalize_errors(result)
    item: dict[str, Any] = {
        "id": None if raw.get("id") is None else str(raw["id"]),
        "request_set_id": request_set_id,
        "status": status,
        "result": result,
        "errors": errors,
    }
    for field in extra_fields:
        if field not in RESERVED_KEYS:
            item[field] = raw.get(field)
    return item


def created_object_id(item: dict[str, Any]) -> str | None:
    """The object id a successful request created (``result.id``), else None."""
    if item.get("status") != AsyncRequestStatus.SUCCESS.value:
        return None
    result = item.get("result")
    if isinstance(result, dict) and result.get("id") not in (None, ""):
        return str(result["id"])
    return None
