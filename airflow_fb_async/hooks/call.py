"""One Graph call, sans-IO: :class:`GraphCore` (per connection) and :class:`GraphCall` (per call).

Nothing here does I/O or sleeps. A call is a sequence of steps (:meth:`GraphCall.steps`) that both
hooks drive, each with its own client and sleep (``time.sleep`` vs ``await asyncio.sleep``)::

    call = core.new_call(method, path, **options)    # CallOptions: checked before any HTTP
    steps = call.steps()
    step = next(steps)
    while True:                                       # until the generator returns the answer
        if step is a Sleep:       sleep(step.seconds); step = steps.send(None)
        else (an HttpRequest):    step = steps.send(<send it>: call.on_response(status, headers, body)
                                                    or call.on_transport_error(exc, sent=...))

Inside :meth:`GraphCall.steps`: the throttle pause (blocked / near-limit accounts), a fresh request
(fresh timed ``appsecret_proof``), the answer read into an :class:`Outcome` (done, or an error and
the delay before the next attempt, from the one :class:`~.retry.RetryPolicy`). Errors are parsed
by :mod:`.errors`, the ETag cache is :mod:`.etag`, the throttle state :mod:`.throttle`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_fb_async import __version__
from airflow_fb_async.exceptions import (
    GraphAmbiguousError,
    GraphAPIError,
    GraphAuthError,
    GraphInputError,
    GraphTransientError,
)
from airflow_fb_async.hooks.encoding import FileSpec, encode_fields, normalize_files
from airflow_fb_async.hooks.errors import ambiguous_from, error_from_response, make_error, parse_json_body
from airflow_fb_async.hooks.etag import EtagCache
from airflow_fb_async.hooks.paging import clean_paging
from airflow_fb_async.hooks.retry import RetryPolicy, is_repeatable
from airflow_fb_async.hooks.scrub import Scrubber
from airflow_fb_async.hooks.throttle import ThrottleState, accounts_in, lower_headers
from airflow_fb_async.hooks.urls import AUTH_FIELDS, appsecret_proof, split_path

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_fb_async.hooks.config import GraphConfig

log = logging.getLogger("airflow_fb_async.hooks.graph")

USER_AGENT = f"airflow-fb-async/{__version__}"


class CallOptions(TypedDict, total=False):
    """The settings of one Graph call, declared once for ``GraphHook.request``,
    ``GraphAsyncHook.request`` and :meth:`GraphCore.new_call` (``**options: Unpack[CallOptions]``).

    - ``params``: query parameters (lists / dicts JSON-encoded, bools lower case);
    - ``data``: form fields of a POST; ``files``: multipart parts (bytes, file or tuple);
    - ``etag``: ``True``, a conditional GET from the hook's ETag cache; a string, send that ETag;
      either way the data comes back (the cached body on 304);
    - ``idempotent``: safe to resend after an uncertain outcome (default
      :func:`~.retry.is_repeatable`: reads, DELETE, an update ``POST <id>``);
    - ``raise_codes``: Graph error codes raised at once, without retry;
    - ``max_retries`` / ``timeout``: override the connection's for this call.
    """

    params: Mapping[str, Any] | None
    data: Mapping[str, Any] | str | None
    files: Mapping[str, Any] | None
    etag: bool | str | None
    idempotent: bool | None
    raise_codes: Collection[int]
    max_retries: int | None
    timeout: float | None


@dataclass(frozen=True)
class Sleep:
    """A step of :meth:`GraphCall.steps`: wait this long, then go on."""

    seconds: float


@dataclass
class HttpRequest:
    """What a client must send (both clients accept these shapes)."""

    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    data: dict[str, str] | None
    files: dict[str, FileSpec] | None
    timeout: float


@dataclass
class Outcome:
    """Result of one attempt: ``done`` with ``value``, or an ``error`` with the delay before the next
    attempt (``delay`` None: raise ``error`` now)."""

    done: bool
    value: Any = None
    error: GraphAPIError | None = None
    delay: float | None = None


class GraphCore:
    """Per-connection sans-IO state: config, scrubber, retry policy, throttle view, ETag cache."""

    def __init__(
        self,
        config: GraphConfig,
        *,
        rng: Callable[[float, float], float] | None = None,
        clock: Callable[[], float] = time.time,
        etag_cache: EtagCache | None = None,
    ) -> None:
        self.config = config
        self.scrub = Scrubber([config.token, config.app_secret])
        policy_kwargs: dict[str, Any] = {"rng": rng} if rng is not None else {}
        self.policy = RetryPolicy(
            max_retries=config.max_retries,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            max_wait=config.max_throttle_wait,
            **policy_kwargs,
        )
        self.throttle = ThrottleState(
            regain_unit_seconds=config.regain_unit_seconds,
            throttle_threshold=config.throttle_threshold,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            max_wait=config.max_throttle_wait,
        )
        self.etags = etag_cache if etag_cache is not None else EtagCache()
        self.clock = clock

    def new_call(self, method: str, path: str, **options: Unpack[CallOptions]) -> GraphCall:
        """The state of one call (``options``: :class:`CallOptions`); checks its input first."""
        return GraphCall(self, method, path, options)

    def require_token(self) -> None:
        """GraphAuthError (naming the connection) when it has no token: before any HTTP call."""
        if not self.config.token:
            raise GraphAuthError(
                f"connection {self.config.conn_id!r} has no access token (set its password)",
            )


class GraphCall:
    """The state of one logical Graph call across its attempts."""

    def __init__(self, core: GraphCore, method: str, path: str, options: CallOptions) -> None:
        unknown = sorted(set(options) - CallOptions.__optional_keys__)
        if unknown:  # what a misspelt keyword argument raised before the options had one declaration
            raise TypeError(
                f"unexpected call option(s) {unknown}; known: {sorted(CallOptions.__optional_keys__)}"
            )
        core.require_token()
        params, data, files = options.get("params"), options.get("data"), options.get("files")
        etag, idempotent = options.get("etag"), options.get("idempotent")
        max_retries, timeout = options.get("max_retries"), options.get("timeout")
        self.core = core
        self.method = str(method).upper().strip()
        if not self.method.isalpha():
            raise GraphInputError(f"bad HTTP method {method!r}")
        self.path, path_params = split_path(path)
        self.params = {**path_params, **encode_fields(params)}
        for name in AUTH_FIELDS & self.params.keys():
            del self.params[name]
        self.data = encode_fields(data) if (data is not None or files) else None
        if self.data is not None:
            for name in AUTH_FIELDS & self.data.keys():
                del self.data[name]
        self.files = normalize_files(files)
        scrub = core.scrub
        if scrub(self.path) != self.path or any(
            scrub(f"{k}={v}") != f"{k}={v}" for k, v in self.params.items()
        ):
            # A URL is logged by the HTTP libraries themselves (urllib3 debug lines): refuse it.
            raise GraphInputError(
                f"refusing to put a credential in the URL of {self.method} /{scrub(self.path)}: "
                "the access token belongs in the connection, not in the path or params"
            )
        if self.method in {"GET", "DELETE"} and (self.data or self.files):
            raise GraphInputError(f"{self.method} takes no body (use params)")
        self.idempotent = is_repeatable(self.method, self.path) if idempotent is None else bool(idempotent)
        self.raise_codes = frozenset(options.get("raise_codes") or ())
        self.max_retries = max_retries
        self.timeout = core.config.timeout if timeout is None else timeout
        self.url = f"{core.config.base_url}/{self.path}"
        self.where = core.scrub(f"{self.method} /{self.path}")  # goes into every log line
        batch_text = self.data.get("batch") if self.data else None
        self.accounts = accounts_in(self.path, self.params.get("ids"), batch_text)
        self.etag_mode = etag if etag not in (None, False, "") else None
        self.cache_key = EtagCache.key(self.method, self.url, self.params) if self.etag_mode else None
        self.sent_etag: str | None = None
        self.attempts = 0
        self.failures = 0
        self._started = 0.0

    # -- before each attempt --------------------------------------------------------------------

    def throttle_pause(self) -> float:
        """Seconds to wait before the next attempt (blocked / near-limit accounts); logs it."""
        pause, reason = self.core.throttle.wait_time(self.accounts)
        if pause > 0:
            log.info("Throttle pause %.2fs before %s (%s)", pause, self.where, reason)
        return pause

    def build(self) -> HttpRequest:
        """The next attempt's request: auth header, appsecret proof, If-None-Match, token in the body
        of the root POST (standard batch)."""
        self.attempts += 1
        cfg = self.core.config
        headers = {
            "Authorization": f"OAuth {cfg.token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        auth_fields: dict[str, str] = {}
        if cfg.app_secret:
            if cfg.appsecret_time:
                stamp = int(self.core.clock())
                auth_fields["appsecret_proof"] = appsecret_proof(cfg.app_secret, cfg.token, stamp)
                auth_fields["appsecret_time"] = str(stamp)
            else:
                auth_fields["appsecret_proof"] = appsecret_proof(cfg.app_secret, cfg.token)
        params = dict(self.params)
        data = dict(self.data) if self.data is not None else None
        if self.method == "POST":
            data = data if data is not None else {}
            data.update(auth_fields)
            if self.path == "":
                data["access_token"] = cfg.token
        else:
            params.update(auth_fields)
        self.sent_etag = None
        if self.cache_key is not None:
            if isinstance(self.etag_mode, str):
                self.sent_etag = self.etag_mode
            else:
                cached = self.core.etags.get(self.cache_key)
                self.sent_etag = cached[0] if cached else None
            if self.sent_etag:
                headers["If-None-Match"] = self.sent_etag
        self._started = time.monotonic()
        return HttpRequest(
            method=self.method,
            url=self.url,
            params=params,
            headers=headers,
            data=data,
            files=self.files,
            timeout=self.timeout,
        )

    # -- after each attempt ---------------------------------------------------------------------

    def _elapsed_ms(self) -> float:
        return (time.monotonic() - self._started) * 1000.0

    def on_response(self, status: int, headers: Mapping[str, Any], content: bytes) -> Outcome:
        ms = self._elapsed_ms()
        log.debug("Graph %s -> %s in %.0f ms (attempt %d)", self.where, status, ms, self.attempts)
        self.core.throttle.observe(headers, self.accounts[0] if len(self.accounts) == 1 else None)
        if status == 304 and self.cache_key is not None:
            cached = self.core.etags.get(self.cache_key)
            if cached is not None and cached[0] == self.sent_etag:
                return Outcome(done=True, value=cached[1])
            # A 304 for an ETag whose body we never saw: ask again, unconditionally.
            log.debug("Graph %s: 304 without a cached body, fetching again", self.where)
            self.etag_mode = None
            self.cache_key = None
            return Outcome(done=False, delay=0.0)
        if 200 <= status < 300:
            try:
                body = parse_json_body(content)
            except ValueError:
                err = make_error(
                    GraphAPIError,
                    "answer is not JSON",
                    scrub=self.core.scrub,
                    http_status=status,
                    method=self.method,
                    path=self.path,
                )
                return Outcome(done=False, error=err, delay=None)
            if not (isinstance(body, Mapping) and isinstance(body.get("error"), Mapping) and len(body) == 1):
                clean_paging(body)
                if self.cache_key is not None:
                    etag_header = lower_headers(headers).get("etag")
                    if etag_header:
                        self.core.etags.put(self.cache_key, etag_header, body)
                return Outcome(done=True, value=body)
        error = error_from_response(
            status,
            headers,
            content,
            method=self.method,
            path=self.path,
            scrub=self.core.scrub,
            regain_unit_seconds=self.core.config.regain_unit_seconds,
            accounts=self.accounts,
            max_wait=self.core.config.max_throttle_wait,
        )
        if not self.idempotent and isinstance(error, GraphTransientError):
            # A 5xx / code 1 / code 2 / is_transient answer does not prove that a create did not
            # happen (Graph may have committed it before failing): never resend it blindly.
            error = ambiguous_from(error)
        return self._decide(error)

    def on_transport_error(self, exc: BaseException, *, sent: bool) -> Outcome:
        """A failure without an answer. ``sent``: the request may have reached Graph."""
        ms = self._elapsed_ms()
        summary = self.core.scrub(f"{type(exc).__name__}: {exc}")
        log.debug(
            "Graph %s -> no answer after %.0f ms (attempt %d): %s", self.where, ms, self.attempts, summary
        )
        if not sent:
            cls: type[GraphAPIError] = GraphTransientError
            message = f"connection failed before the request was sent: {summary}"
        elif self.idempotent:
            cls = GraphTransientError
            message = f"connection lost after the request was sent (idempotent, safe to retry): {summary}"
        else:
            cls = GraphAmbiguousError
            message = (
                "connection lost after the request was sent; it may or may not have taken effect "
                f"(not resent): {summary}"
            )
        error = make_error(cls, message, scrub=self.core.scrub, method=self.method, path=self.path)
        return self._decide(error)

    def on_unusable_request(self, exc: BaseException) -> Outcome:
        """The client refused the request itself (bad URL, unsupported scheme...): raised at once."""
        error = make_error(
            GraphAPIError,
            f"request could not be made: {type(exc).__name__}: {exc}",
            scrub=self.core.scrub,
            method=self.method,
            path=self.path,
        )
        return Outcome(done=False, error=error, delay=None)

    def _decide(self, error: GraphAPIError) -> Outcome:
        self.failures += 1
        delay = self.core.policy.delay_for(
            error, self.failures, raise_codes=self.raise_codes, max_retries=self.max_retries
        )
        if delay is not None:
            limit = self.core.policy.max_retries if self.max_retries is None else self.max_retries
            log.info(
                "Retrying %s in %.2fs (retry %d/%d) after: %s",
                self.where,
                delay,
                self.failures,
                limit,
                error,
            )
        elif self.failures > 1:
            log.warning("Giving up on %s after %d attempts: %s", self.where, self.attempts, error)
        return Outcome(done=False, error=error, delay=delay)

    # -- the loop both hooks drive ------------------------------------------------------------------

    def steps(self) -> Generator[Sleep | HttpRequest, Outcome | None, Any]:
        """The call as a sequence of steps: yields :class:`Sleep` (answer with None) or the
        :class:`HttpRequest` to send (answer with the attempt's :class:`Outcome`, from
        :meth:`on_response` / :meth:`on_transport_error` / :meth:`on_unusable_request`). Returns the
        parsed answer; raises the call's typed error when it gives up."""
        while True:
            pause = self.throttle_pause()
            if pause > 0:
                yield Sleep(pause)
            outcome = yield self.build()
            assert outcome is not None, "answer an HttpRequest step with its Outcome"
            if outcome.done:
                return outcome.value
            if outcome.delay is None:
                assert outcome.error is not None
                raise outcome.error
            if outcome.delay > 0:
                yield Sleep(outcome.delay)
