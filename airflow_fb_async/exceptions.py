"""Typed errors of the provider.

Every error this package raises on purpose derives from :class:`FacebookGraphError`, so callers (and
property-based tests) can tell "ours, with a clear message" from an unexpected crash. Messages never
contain the access token: the hook scrubs text before it reaches these classes.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from airflow_fb_async._compat import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from collections.abc import Mapping


class FacebookGraphError(AirflowException):
    """Base class of every error raised by airflow_fb_async."""


class GraphInputError(FacebookGraphError, ValueError):
    """Bad input, found before any HTTP call. Names the offending item (index and/or name)."""

    def __init__(
        self, message: str, *, index: int | None = None, name: str | None = None, line: int | None = None
    ) -> None:
        self.index = index
        self.name = name
        #: 1-based line of a JSON Lines requests file (file-fed operators), else None.
        self.line = line
        #: The message without the "request ...: " prefix (to name the item again, e.g. by line).
        self.detail = message
        where = []
        if index is not None:
            where.append(f"#{index}")
        if name is not None:
            where.append(repr(name))
        if line is not None:
            where.append(f"on line {line}")
        prefix = f"request {' '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class GraphAPIError(FacebookGraphError):
    """An error answered by the Graph API (or a transport failure shaped like one).

    Carries Graph's error envelope fields and ``http_status``, the HTTP status of Graph's answer
    (None when no answer came). ``status_code`` is a deprecated alias: on an ``AirflowException`` it
    means the status the API server answers with, another thing.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        error_subcode: int | None = None,
        type: str | None = None,
        is_transient: bool = False,
        fbtrace_id: str | None = None,
        http_status: int | None = None,
        error_user_title: str | None = None,
        error_user_msg: str | None = None,
        method: str | None = None,
        path: str | None = None,
        status_code: int | None = None,
    ) -> None:
        if status_code is not None:
            _warn_status_code()
            http_status = status_code if http_status is None else http_status
        self.message = message
        self.code = code
        self.error_subcode = error_subcode
        self.type = type
        self.is_transient = is_transient
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status
        self.error_user_title = error_user_title
        self.error_user_msg = error_user_msg
        self.method = method
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        parts = ["Graph API transport error" if self.code is None else f"Graph API error {self.code}"]
        if self.error_subcode:
            parts[0] += f"/{self.error_subcode}"
        if self.type:
            parts.append(f"({self.type})")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.method and self.path is not None:
            parts.append(f"on {self.method} /{self.path.lstrip('/')}")
        text = " ".join(parts) + f": {self.message}"
        if self.error_user_msg and self.error_user_msg not in self.message:
            text += f" ({self.error_user_msg})"
        if self.fbtrace_id:
            text += f" [fbtrace_id={self.fbtrace_id}]"
        return text

    @property  # AirflowException.status_code is the API server's status, another thing
    def status_code(self) -> int | None:  # type: ignore[override]
        """Deprecated alias of :attr:`http_status`."""
        _warn_status_code()
        return self.http_status

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (for XComs and trigger events)."""
        return {
            "message": self.message,
            "code": self.code,
            "error_subcode": self.error_subcode,
            "type": self.type,
            "is_transient": self.is_transient,
            "fbtrace_id": self.fbtrace_id,
            "http_status": self.http_status,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_api_error, (type(self), self.message, self.__dict__.copy()))


def _warn_status_code() -> None:
    warnings.warn(
        "GraphAPIError.status_code is deprecated: use http_status (AirflowException.status_code "
        "is the API server's status)",
        DeprecationWarning,
        stacklevel=3,
    )


def _rebuild_api_error(cls: type[GraphAPIError], message: str, state: dict[str, Any]) -> GraphAPIError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    Exception.__init__(err, err._render())
    return err


class GraphAuthError(GraphAPIError):
    """Invalid or expired token (190), bad appsecret_proof, missing permission (10, 200)."""


class GraphThrottledError(GraphAPIError):
    """Rate limited (4, 17, 32, 341, 613, 80000-80014). ``retry_after`` is seconds, when known."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class GraphTransientError(GraphAPIError):
    """A failure Graph marks as temporary (codes 1, 2, is_transient, HTTP 5xx, network errors)."""


class GraphAmbiguousError(GraphAPIError):
    """The request was sent but no answer came back: it may or may not have taken effect.

    Raised instead of blindly resending a non-idempotent call (a POST that creates something).
    """


class GraphBatchError(FacebookGraphError):
    """A standard batch failed: some entries failed (``fail_on_error=True``: ``failures``), or the
    batch could not go on (the token was rejected midway: ``results`` and ``cause``).

    ``results`` holds one entry per request in input order, None for entries never sent or not done,
    so nothing Graph already did is forgotten; ``cause`` is the error that stopped the batch.
    """

    def __init__(
        self,
        message: str,
        failures: list[dict[str, Any]] | None = None,
        *,
        results: list[dict[str, Any] | None] | None = None,
        cause: BaseException | None = None,
    ) -> None:
        self.failures = failures if failures is not None else []
        self.results = results
        self.cause = cause
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_batch_error, (str(self), self.failures, self.results, self.cause))


def _rebuild_batch_error(
    message: str,
    failures: list[dict[str, Any]],
    results: list[dict[str, Any] | None] | None,
    cause: BaseException | None,
) -> GraphBatchError:
    return GraphBatchError(message, failures, results=results, cause=cause)


class AsyncRequestSetError(FacebookGraphError):
    """Waiting on async request sets ended badly (error or timeout), or requests failed.

    ``status`` is the waiting event's status (``error``, ``timeout``, ``malformed``; None when the
    error did not come from an event) and ``request_sets`` the last known counts per set, so a
    caller can tell which sets finished without parsing the message.
    """

    def __init__(
        self,
        message: str,
        *,
        status: str | None = None,
        request_sets: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        self.status = status
        self.request_sets: dict[str, dict[str, int]] = {
            str(k): dict(v) for k, v in (request_sets or {}).items()
        }
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_set_error, (str(self), self.status, self.request_sets))


def _rebuild_set_error(
    message: str, status: str | None, request_sets: dict[str, dict[str, int]]
) -> AsyncRequestSetError:
    return AsyncRequestSetError(message, status=status, request_sets=request_sets)


class InsightsReportError(FacebookGraphError):
    """An insights report cannot be completed: a range failed more than ``max_job_retries`` times,
    a report run vanished, or waiting on the runs ended in error or timeout."""


class TooManyResultsError(FacebookGraphError, AirflowFailException):
    """More results than ``max_xcom_items`` would go through XCom.

    Derives from ``AirflowFailException``: retrying cannot make the result set smaller, so the task
    fails at once instead of burning its retries.
    """
