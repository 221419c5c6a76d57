"""GraphBatchOperator: run a standard Graph batch of any size from a task, exactly once across retries.

Flow of one try::

    render -> validate (no HTTP) -> [] ? return [] -> journal = task state store (Airflow 3.3+)
      -> hook.batch(..., journal=journal) -> fail_on_error ? push XCom, fail naming the entries
                  `-- GraphBatchError (the batch could not go on): push the results so far, fail

The journal (:mod:`airflow_fb_async.operators.task_state`) makes a retry of the task send only what
an earlier try did not settle; it is kept after success, so clearing the task with the same
rendered requests returns the earlier results instead of running the writes again.

File-fed (``requests_path``): with ``output_path`` the file is sent window by window in bounded
memory (:mod:`airflow_fb_async.operators.file_batch`); without it the file is read into a list
(its results go to XCom anyway) after the same line-numbered validation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_fb_async.exceptions import GraphBatchError, GraphInputError
from airflow_fb_async.hooks.batch_outcomes import entry_failed
from airflow_fb_async.hooks.batch_validate import validate_requests
from airflow_fb_async.jsonl import JsonlWriter, StoragePath, storage_path
from airflow_fb_async.literals import parse_rendered_list
from airflow_fb_async.operators._files import exactly_one, read_window
from airflow_fb_async.operators._graph_operator import GraphOperator
from airflow_fb_async.operators._xcom import push_xcom
from airflow_fb_async.operators.file_batch import run_file_batch, scan_batch_file
from airflow_fb_async.operators.task_state import journal_from_context, refuse_blind_resend

if TYPE_CHECKING:
    from airflow_fb_async._compat import Context
    from airflow_fb_async.hooks.batch_journal import BatchJournal
    from airflow_fb_async.hooks.graph import GraphHook
    from airflow_fb_async.operators._files import FileScan

# How many failing entries the task error lists (all of them are on the exception's ``failures``).
MAX_LISTED_FAILURES = 20


def _error_summary(result: Mapping[str, Any]) -> tuple[int | None, str]:
    body = result.get("body")
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        code = error.get("code")
        return (code if isinstance(code, int) else None), str(error.get("message") or error.get("type") or "")
    return None, "" if body is None else str(body)[:200]


def batch_failures(
    requests: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any] | None]
) -> list[dict[str, Any]]:
    """The failing entries of a batch result: ``{"index", "name", "method", "code", "error_code", "message"}``.

    ``None`` results (entries a stopped batch never sent) are not failures of their own.
    """
    failures = []
    for index, result in enumerate(results):
        if result is None or not entry_failed(result):
            continue
        request = requests[index] if index < len(requests) else {}
        error_code, message = _error_summary(result)
        failures.append(
            {
                "index": index,
                "name": request.get("name") if isinstance(request, Mapping) else None,
                "method": str(request.get("method", "")).upper() if isinstance(request, Mapping) else "",
                "code": result.get("code"),
                "error_code": error_code,
                "message": message,
            }
        )
    return failures


def failure_lines(failures: Sequence[Mapping[str, Any]], total: int | None = None) -> str:
    """One line per failing entry (at most ``MAX_LISTED_FAILURES``): [line,] index, name, method,
    codes, message; ``total`` is the number of failures when ``failures`` holds only the first ones."""
    lines = []
    for f in failures[:MAX_LISTED_FAILURES]:
        label = (f"line {f['line']} " if f.get("line") is not None else "") + f"#{f['index']}"
        label += f" {f['name']!r}" if f["name"] else ""
        detail = f"code {f['code']}"
        if f["error_code"] is not None:
            detail += f", error {f['error_code']}"
        lines.append(f"  {label} ({f['method']}): {detail}: {f['message']}")
    total = len(failures) if total is None else total
    if total > len(lines):
        lines.append(f"  ... and {total - len(lines)} more")
    return "\n".join(lines)


class GraphBatchOperator(GraphOperator):
    """Run a standard Graph API batch (``POST /`` with ``batch``) of any size.

    The requests are validated before any call, planned into calls of at most 50 (dependency
    chains kept together or resolved client-side), sent ``max_concurrency`` calls at a time, and
    entries Graph answers ``null`` are retried. See :mod:`airflow_fb_async.hooks.batch`.

    Exactly once across task retries (Airflow 3.3+): the batch keeps a journal in the task state
    store, keyed by the task instance and a hash of the rendered requests. A later try with the same
    requests does not resend entries an earlier try settled (their results are returned, references
    to them resolve) nor entries whose outcome is unknown (504 ``BatchEntryAmbiguous``); it sends the
    entries that failed with a definite error and those never sent. Changed requests start afresh
    (logged). The journal outlives success: clearing the task reruns only what is not settled. On an
    Airflow without the store the operator logs so at INFO and a retry resends everything.

    A batch that cannot go on (token rejected midway, ...) pushes the results so far as the try's
    XCom ``return_value`` (``None`` for entries never sent) and fails with a message saying how far
    it got. An empty ``requests`` list succeeds with ``[]`` and sends nothing.

    File-fed: ``requests_path`` names a JSON Lines file (one request dict per line, the shape of
    ``requests``; validation errors name the line). It is cut into windows of ``window_size``
    requests; a reference or ``depends_on`` reaches only requests of its own window, and a chain of
    linked lines spanning at most ``window_size`` requests always stays in one window (see
    :mod:`airflow_fb_async.hooks.request_windows`). With ``output_path`` the results are written
    there as JSON Lines, one per request in input order, and the task returns ``{"path", "count",
    "failed"}``; the run resumes across tries keyed by the file's content (see
    :mod:`airflow_fb_async.operators.file_batch`).

    :param requests: list of dicts with ``method``, ``relative_url`` and optional ``body`` (str or
        dict), ``name``, ``depends_on``, ``omit_response_on_success``, ``attached_files``,
        ``headers``. (templated) Exactly one of ``requests`` and ``requests_path``.
    :param requests_path: a JSON Lines requests file: local path or ``ObjectStoragePath`` URL.
        (templated)
    :param output_path: write the results there as JSON Lines (local path or ``ObjectStoragePath``
        URL, written atomically) and return ``{"path", "count", "failed"}``. (templated)
    :param window_size: requests of a file held and planned at once (also how far references
        reach in a file).
    :param files: multipart parts named by ``attached_files``: part name -> file path or bytes.
        (templated)
    :param include_headers: keep each entry's response headers in the result.
    :param fail_on_error: fail the task, after the whole batch ran, when any entry has code >= 400
        (or did not complete), naming the failing entries.
    :param max_concurrency: batch calls in flight at once.
    :param resend_creates_without_state: on an Airflow without ``task_state_store`` (before 3.3) a
        later try of the task cannot tell what an earlier try created, so by default it refuses,
        before any HTTP call, to send a batch holding creates again; ``True`` sends it anyway.
    :param graph_conn_id: the ``facebook_graph`` connection. (templated)
    :param api_version: Graph API version, e.g. ``v25.0`` (default: the connection's). (templated)
    :param batch_options: extra engine options (``max_rounds``, ``max_ads_per_chunk``,
        ``max_adsets_per_campaign_per_chunk`` (default 1: ad set creates naming the same
        ``campaign_id`` go in different calls; None disables), ``chunk_size``, ``round_backoff``).

    Returns (XCom) one ``{"code", "headers", "body"}`` per request, in input order (with
    ``output_path``: ``{"path", "count", "failed"}``).
    """

    template_fields: Sequence[str] = (
        "requests",
        "requests_path",
        "output_path",
        "files",
        *GraphOperator.template_fields,
    )
    ui_color = "#4267B2"

    def __init__(
        self,
        *,
        requests: list[dict[str, Any]] | Any = None,
        requests_path: Any = None,
        output_path: Any = None,
        window_size: int = 1000,
        files: dict[str, Any] | None = None,
        include_headers: bool = True,
        fail_on_error: bool = True,
        max_concurrency: int = 4,
        graph_conn_id: str = "facebook_graph_default",
        api_version: str | None = None,
        batch_options: dict[str, Any] | None = None,
        resend_creates_without_state: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(graph_conn_id=graph_conn_id, api_version=api_version, **kwargs)
        exactly_one(requests, requests_path, "GraphBatchOperator")
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
            raise GraphInputError(f"window_size must be a positive integer, got {window_size!r}")
        self.requests = requests
        self.requests_path = requests_path
        self.output_path = output_path
        self.window_size = window_size
        self.files = files
        self.include_headers = include_headers
        self.fail_on_error = fail_on_error
        self.max_concurrency = max_concurrency
        self.batch_options = dict(batch_options or {})
        self.resend_creates_without_state = resend_creates_without_state

    def journal(self, context: Context, requests: Sequence[Any]) -> BatchJournal | None:
        """Where the batch records what it sent and what came back, for a later try of this task."""
        return journal_from_context(context, requests, self.log)

    def _push_results(self, context: Context, results: Any) -> bool:
        """Push ``results`` (list, or a file run's summary) as this try's ``return_value`` before
        failing, so what ran is visible."""
        return push_xcom(context, "return_value", results if isinstance(results, dict) else list(results))

    def execute(self, context: Context) -> list[dict[str, Any]] | dict[str, Any]:
        """Validate every request (before any connection lookup), run the batch (resuming an earlier
        try's journal), and return the results, or the file summary with ``output_path``."""
        output = None if self.output_path is None else storage_path(self.output_path, "output_path")
        lines: list[int] | None = None
        if self.requests_path is not None:
            source = storage_path(self.requests_path, "requests_path")
            # Before the hook, even before a connection lookup: bad lines never reach Graph.
            scan = scan_batch_file(source, self.window_size, self.files)
            self.log.info(
                "Requests file %s: %d request(s) in %d window(s), sha256 %s",
                source,
                scan.count,
                len(scan.windows),
                scan.sha256[:16],
            )
            if output is not None:
                return self._execute_file(context, scan, output)
            requests, lines = [], []
            for span in scan.windows:
                window = read_window(scan, span)
                requests += window.requests
                lines += window.lines
        else:
            requests = parse_rendered_list(self.requests)
            if isinstance(requests, tuple):
                requests = list(requests)
        # Before the hook, even before a connection lookup: bad input never reaches Graph.
        validated = validate_requests(requests, self.files)
        if not validated:
            self.log.info("No requests: nothing to send")
            return self._write(output, None, []) if output is not None else []
        journal = self.journal(context, requests)
        if journal is None and not self.resend_creates_without_state:
            refuse_blind_resend(context, validated)
        hook = self.hook
        self.log.info(
            "Running a standard batch of %d requests (max_concurrency=%d)",
            len(requests),
            self.max_concurrency,
        )
        try:
            results = hook.batch(
                requests,
                include_headers=self.include_headers,
                files=self.files,
                max_concurrency=self.max_concurrency,
                validated=validated,
                journal=journal,
                **self.batch_options,
            )
        except GraphBatchError as err:
            if err.results is None:
                raise
            raise self._stopped(context, hook, requests, err, resumable=journal is not None) from err
        failures = batch_failures(requests, results)
        if lines is not None:
            failures = [{**f, "line": lines[f["index"]]} for f in failures]
        self.log.info("Batch done: %d entries, %d failed", len(results), len(failures))
        if output is not None:
            summary = self._write(output, hook, results)
            summary["failed"] = len(failures)
            return self._finish(context, hook, summary, failures, len(failures), len(results))
        return self._finish(context, hook, results, failures, len(failures), len(results))

    def _write(
        self, output: StoragePath, hook: GraphHook | None, results: list[dict[str, Any]]
    ) -> dict[str, Any]:
        with JsonlWriter(output, hook.scrub if hook is not None else None) as writer:
            for result in results:
                writer.write(result)
        self.log.info("Wrote %d result line(s) to %s", writer.count, output)
        return {"path": str(output), "count": writer.count, "failed": 0}

    def _execute_file(self, context: Context, scan: FileScan, output: StoragePath) -> dict[str, Any]:
        if not scan.count:
            self.log.info("No requests in the file: nothing to send")
            return self._write(output, None, [])
        store = context.get("task_state_store")
        if store is None:
            self.log.info(
                "This Airflow has no task_state_store (Airflow 3.3+): a retry of this task sends the file "
                "from its first window again."
            )
        hook = self.hook
        summary, failures = run_file_batch(
            scan=scan,
            output=output,
            hook=hook,
            store=store,
            window_size=self.window_size,
            log=self.log,
            batch_failures=batch_failures,
            run_options={
                "include_headers": self.include_headers,
                "files": self.files,
                "max_concurrency": self.max_concurrency,
                **self.batch_options,
            },
        )
        return self._finish(context, hook, summary, failures, summary["failed"], summary["count"])

    def _finish(
        self,
        context: Context,
        hook: GraphHook,
        value: Any,
        failures: list[dict[str, Any]],
        failed: int,
        total: int,
    ) -> Any:
        """Return ``value`` (the XCom), or with ``fail_on_error`` and failures push it and fail naming them."""
        if not failed or not self.fail_on_error:
            return value
        self._push_results(context, value)
        raise GraphBatchError(
            hook.scrub(f"{failed} of {total} batch entries failed:\n" + failure_lines(failures, failed)),
            failures=[{**f, "message": hook.scrub(f["message"])} for f in failures],
        )

    def _stopped(
        self,
        context: Context,
        hook: GraphHook,
        requests: Sequence[Mapping[str, Any]],
        err: GraphBatchError,
        *,
        resumable: bool,
    ) -> GraphBatchError:
        """The task's error for a batch that could not go on, after pushing the results it has."""
        results = list(err.results or [])
        where = "this try's XCom return_value" if self._push_results(context, results) else "on this error"
        settled = sum(result is not None for result in results)
        failures = batch_failures(requests, results)
        retry = (
            "a retry of this task sends only what is not settled"
            if resumable
            else "without a task state store a retry sends only reads and repeatable writes again "
            "(a batch holding creates is refused unless resend_creates_without_state=True)"
        )
        text = (
            f"The batch stopped with {settled} of {len(results)} entries settled "
            f"({len(results) - settled} not sent or not done): "
            f"{err.cause if err.cause is not None else err}. "
            f"The results so far are {where} (None for those not settled); {retry}."
        )
        if failures:
            text += f"\n{len(failures)} settled entries failed:\n" + failure_lines(failures)
        return GraphBatchError(
            hook.scrub(text),
            failures=[{**f, "message": hook.scrub(f["message"])} for f in failures],
            results=results,
            cause=err.cause,
        )
