"""Hand the results of async request sets to the rest of a DAG.

:class:`AsyncRequestResultsOperator` pages through the ``requests`` edge of one or more async
request sets and either returns the normalised results through XCom (bounded by
``max_xcom_items``; it fails clearly rather than push too much) or streams them as JSON Lines to a
local path or any Airflow ``ObjectStoragePath`` URL, in constant memory.

Each request becomes one normalised item (:mod:`.result_items`): ``id``, ``request_set_id``,
``status`` (upper case), ``result`` (parsed), ``errors`` (always a list) and the extra ``fields``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_fb_async.exceptions import AsyncRequestSetError, GraphInputError, TooManyResultsError
from airflow_fb_async.hooks.set_fields import DEFAULT_SET_FIELDS
from airflow_fb_async.hooks.statuses import (
    AsyncRequestStatus,
    as_int,
    normalize_statuses,
    set_count,
    set_is_completed,
)
from airflow_fb_async.jsonl import JsonlWriter, StoragePath, storage_path
from airflow_fb_async.literals import is_empty_list, parse_literal
from airflow_fb_async.operators._graph_operator import GraphOperator
from airflow_fb_async.operators._xcom import bounded_list, check_int, limit_message, to_xcom
from airflow_fb_async.operators.result_items import (
    BASE_FIELDS,
    created_object_id,
    expected_total,
    normalize_request,
)
from airflow_fb_async.waiting.ids import normalize_ids

if TYPE_CHECKING:
    import os

    from airflow_fb_async._compat import Context, ObjectStoragePath, XComArg
    from airflow_fb_async.hooks.graph import GraphHook

#: Graph's page size when neither the operator nor the connection sets one (the emulator's max).
DEFAULT_PAGE_SIZE = 500

_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AsyncRequestResultsOperator(GraphOperator):
    """Read the results of async request sets: return them (XCom) or write them as JSON Lines.

    :param request_set_ids: One request set id or a list of them (templated). Any XCom of
        ``SubmitAsyncBatchOperator`` works as is (its id list, its ``summary`` XCom, a mapped
        submit's list of lists); a comma-separated string or a rendered list literal
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
        *GraphOperator.template_fields,
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
        # Non-templated arguments are checked at DAG parse time already.
        self._check_static_args()

    # ------------------------------------------------------------------ validation

    def _check_static_args(self) -> None:
        """The arguments that are never templated, checked when the DAG is parsed."""
        if not isinstance(self.ids_only, bool):
            raise GraphInputError(f"ids_only must be a bool, got {self.ids_only!r}")
        check_int("max_xcom_items", self.max_xcom_items, 1)
        check_int("page_size", self.page_size, 1, optional=True)

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
        """The status filter, upper case; with ``ids_only`` it must let SUCCESS through."""
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
        """Extra plain field names to read, without the ones always read or filled by the operator."""
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
        """Where to write JSON Lines, or None to return through XCom."""
        return None if self.output_path is None else storage_path(self.output_path, "output_path")

    # ------------------------------------------------------------------ execution

    def execute(self, context: Context) -> list[Any] | dict[str, Any]:
        """Validate every argument (before any HTTP), read the sets' counts, then page through
        their requests into XCom or a JSON Lines file."""
        set_ids = self._validated_set_ids()
        statuses = self._validated_statuses()
        extra_fields = self._validated_fields()
        output = self._validated_output()
        if self.ids_only and extra_fields:
            self.log.warning("results: ids_only=True ignores fields=%s", extra_fields)
            extra_fields = []

        hook = self.hook
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
        sets = hook.get_request_sets(set_ids, fields=DEFAULT_SET_FIELDS)
        totals: dict[str, int | None] = {}
        all_completed = True
        for set_id in set_ids:
            info = sets.get(set_id)
            if not isinstance(info, dict):
                raise AsyncRequestSetError(f"request set {set_id} was not returned by Graph (does it exist?)")
            if not set_is_completed(info):
                all_completed = False
                pending = set_count(info.get("initial_count")) + set_count(info.get("in_progress_count"))
                self.log.warning(
                    "results: set %s is not completed (%d request(s) not processed yet): results are partial",
                    set_id,
                    pending,
                )
            totals[set_id] = expected_total(info, statuses)
        # Fail before fetching anything when the counts already prove the limit is exceeded.
        if early_limit and self.ids_only:
            # Every id comes from a successful request (updates succeed without one): the success
            # counts bound the ids, and they only grow. Over the limit, the task could only ever
            # fail after reading pages for nothing, so it fails now.
            successes = sum(set_count((sets.get(set_id) or {}).get("success_count")) for set_id in set_ids)
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
        """The normalised items of every set, in order, with progress lines every page."""
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
        """``set S: 500/1200 fetched (41%)``, or without a known total just the count."""
        if total:
            pct = min(100, fetched * 100 // total)
            self.log.info("results: set %s: %d/%d fetched (%d%%)", set_id, fetched, total, pct)
        else:
            self.log.info("results: set %s: %d fetched", set_id, fetched)

    def _limit_message(self, count: int | str) -> str:
        """The failure text when more than ``max_xcom_items`` would be returned."""
        what = "object ids" if self.ids_only else "results"
        return limit_message(
            "AsyncRequestResultsOperator", count, what, self.max_xcom_items, "narrow them with statuses=..."
        )

    def _values(self, items: Iterable[dict[str, Any]], counts: Counter[str]) -> Iterator[Any]:
        """What is handed on: each item, or with ``ids_only`` the id each created (requests that
        created none are skipped and counted in the log). ``counts`` gains every item's status."""
        no_id = 0
        for item in items:
            counts[item["status"]] += 1
            if not self.ids_only:
                yield item
            elif (object_id := created_object_id(item)) is not None:
                yield object_id
            else:
                no_id += 1
        if no_id:
            self.log.info("results: %d successful request(s) returned no object id (updates?)", no_id)

    def _collect(self, hook: GraphHook, items: Iterator[dict[str, Any]]) -> list[Any]:
        """At most ``max_xcom_items`` values as plain, scrubbed JSON for XCom."""
        limit = self.max_xcom_items
        values = bounded_list(
            self._values(items, Counter()), limit, lambda: self._limit_message(f"more than {limit}")
        )
        result = to_xcom(hook.scrub, values, AsyncRequestSetError)
        self.log.info(
            "results: returning %d %s through XCom", len(result), "object ids" if self.ids_only else "items"
        )
        return list(result)

    def _write_jsonl(
        self, hook: GraphHook, items: Iterator[dict[str, Any]], output: StoragePath
    ) -> dict[str, Any]:
        """Stream the values to ``output`` as JSON Lines; return ``{"path", "count", "counts_by_status"}``."""
        counts: Counter[str] = Counter()
        with JsonlWriter(output, hook.scrub) as writer:
            for value in self._values(items, counts):
                writer.write(value)
        path = str(output)
        self.log.info("results: wrote %d line(s) to %s (%s)", writer.count, path, dict(counts))
        return {"path": path, "count": writer.count, "counts_by_status": dict(counts)}


def _hook_page_size(hook: GraphHook) -> int:
    """The page size the hook asks for when the operator does not set one (conn extra ``page_size``)."""
    try:
        size = as_int(hook.core.config.page_size)
    except Exception:  # not part of the hook's public contract: fall back to Graph's usual maximum
        size = None
    return size or DEFAULT_PAGE_SIZE
