"""GraphHook and GraphAsyncHook against the emulator over HTTP (no mocked transport).

Every behavioural test runs twice, once per hook, through :class:`HookAdapter`, which drives either
hook with the same synchronous calls (the async one on a private event loop).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest
import requests

from airflow_fb_async.exceptions import (
    FacebookGraphError,
    GraphAmbiguousError,
    GraphAPIError,
    GraphAuthError,
    GraphInputError,
    GraphThrottledError,
    GraphTransientError,
)
from airflow_fb_async.hooks.graph import GraphAsyncHook, GraphHook
from tests.conftest import TEST_TOKEN, conn_json
from tests.emu_admin import EmulatorAdmin
from tests.waits import wait_for

ACCOUNT = "act_4242"
BAD_TOKEN = "EAAwrong+tok/en=NOT-valid-0123456789abcdef"


class HookAdapter:
    """Same synchronous surface over GraphHook or GraphAsyncHook."""

    def __init__(self, mode: str, conn_id: str, **hook_kwargs: Any) -> None:
        self.mode = mode
        self.loop: asyncio.AbstractEventLoop | None = None
        self.hook: GraphHook | GraphAsyncHook
        if mode == "sync":
            self.hook = GraphHook(graph_conn_id=conn_id, **hook_kwargs)
        else:
            self.loop = asyncio.new_event_loop()
            self.hook = GraphAsyncHook(graph_conn_id=conn_id, **hook_kwargs)

    def _run(self, value: Any) -> Any:
        if self.loop is None:
            return value
        return self.loop.run_until_complete(value)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._run(getattr(self.hook, name)(*args, **kwargs))

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call("request", method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("get", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.call("post", path, **kwargs)

    def pages(
        self, path: str, params: dict[str, Any] | None = None, page_size: int | None = None
    ) -> Iterator[Any]:
        if isinstance(self.hook, GraphHook):
            yield from self.hook.paginate(path, params, page_size=page_size)
            return
        assert self.loop is not None
        agen = self.hook.paginate(path, params, page_size=page_size)
        try:
            while True:
                try:
                    yield self.loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self.loop.run_until_complete(agen.aclose())

    def paginate(
        self, path: str, params: dict[str, Any] | None = None, page_size: int | None = None
    ) -> list[Any]:
        return list(self.pages(path, params, page_size))

    def scrub(self, text: str) -> str:
        return self.hook.scrub(text)

    def close(self) -> None:
        if isinstance(self.hook, GraphHook):
            self.hook.close()
        else:
            assert self.loop is not None
            self.loop.run_until_complete(self.hook.aclose())
            self.loop.close()


MakeHook = Callable[..., HookAdapter]


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _fresh_throttle_state() -> Iterator[None]:
    from airflow_fb_async.hooks.throttle import ThrottleState

    ThrottleState().reset()
    yield
    ThrottleState().reset()


@pytest.fixture
def make_hook(mode: str, graph_conn: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeHook]:
    """``make_hook(token=..., url=..., **extra)``: an adapter on a fresh connection (default one when
    called with no arguments)."""
    adapters: list[HookAdapter] = []

    def make(
        *,
        token: str = TEST_TOKEN,
        url: str | None = None,
        hook_kwargs: dict[str, Any] | None = None,
        **extra: Any,
    ) -> HookAdapter:
        conn_id = "facebook_graph_default"
        if token != TEST_TOKEN or url is not None or extra:
            conn_id = f"fb_test_{uuid.uuid4().hex[:8]}"
            monkeypatch.setenv(
                f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(url or graph_conn.url, token=token, **extra)
            )
        adapter = HookAdapter(mode, conn_id, **(hook_kwargs or {}))
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()


def _create_campaigns(emu: EmulatorAdmin, n: int, account: str = ACCOUNT) -> list[str]:
    """Create ``n`` campaigns cheaply: standard batches of 50 over plain requests."""
    ids: list[str] = []
    with requests.Session() as s:
        for start in range(0, n, 50):
            batch = [
                {
                    "method": "POST",
                    "relative_url": f"{account}/campaigns",
                    "body": f"name=c{i}&objective=OUTCOME_SALES&status=PAUSED",
                }
                for i in range(start, min(n, start + 50))
            ]
            resp = s.post(
                f"{emu.url}/v25.0/", data={"access_token": TEST_TOKEN, "batch": json.dumps(batch)}, timeout=60
            )
            resp.raise_for_status()
            for entry in resp.json():
                assert entry["code"] == 200, entry
                ids.append(json.loads(entry["body"])["id"])
    return ids


def _create_request_sets(emu: EmulatorAdmin, n: int) -> list[str]:
    ids: list[str] = []
    with requests.Session() as s:
        if n > 10:  # many: standard batches of 50 creates
            for start in range(0, n, 50):
                batch = [
                    {
                        "method": "POST",
                        "relative_url": f"{ACCOUNT}/async_batch_requests",
                        "body": urlencode(
                            {
                                "name": f"set {i}",
                                "adbatch": json.dumps(
                                    [
                                        {
                                            "name": "r",
                                            "relative_url": f"{ACCOUNT}/campaigns",
                                            "body": "name=x&objective=OUTCOME_SALES",
                                        }
                                    ]
                                ),
                            }
                        ),
                    }
                    for i in range(start, min(n, start + 50))
                ]
                resp = s.post(
                    f"{emu.url}/v25.0/",
                    data={"access_token": TEST_TOKEN, "batch": json.dumps(batch)},
                    timeout=60,
                )
                resp.raise_for_status()
                for entry in resp.json():
                    assert entry["code"] == 200, entry
                    ids.append(json.loads(entry["body"])["id"])
            return ids
        for i in range(n):
            adbatch = [
                {
                    "name": f"r{i}",
                    "relative_url": f"{ACCOUNT}/campaigns",
                    "body": f"name=x{i}&objective=OUTCOME_SALES",
                }
            ]
            resp = s.post(
                f"{emu.url}/v25.0/{ACCOUNT}/async_batch_requests",
                data={"name": f"set {i}", "adbatch": json.dumps(adbatch)},
                headers={"Authorization": f"OAuth {TEST_TOKEN}"},
                timeout=60,
            )
            assert resp.status_code == 200, resp.text
            ids.append(resp.json()["id"])
    return ids


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# basics
# ---------------------------------------------------------------------------------------------


def test_get_post_delete_roundtrip(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    hook = make_hook()
    assert hook.get("me", params={"fields": "id"})["id"]
    created = hook.post(f"{ACCOUNT}/campaigns", data={"name": "one", "objective": "OUTCOME_SALES"})
    assert created["id"]
    got = hook.get(created["id"], params={"fields": ["id", "name"]})
    assert got["name"] == "one"
    assert hook.call("cancel", created["id"]) is True
    assert hook.hook.api_version == "v25.0"
    assert hook.hook.base_url == f"{graph_conn.url}/v25.0"
    # the token went in the Authorization header: the emulator's call log shows no token anywhere
    assert TEST_TOKEN not in json.dumps(graph_conn.calls())


def test_context_managers_close_clients(graph_conn: EmulatorAdmin) -> None:
    with GraphHook() as hook:
        assert hook.get("me")["id"]
        assert hook._session is not None
    assert hook._session is None

    async def run() -> None:
        async with GraphAsyncHook() as ahook:
            assert (await ahook.get("me"))["id"]
            assert ahook._client is not None
        assert ahook._client is None

    asyncio.run(run())


# ---------------------------------------------------------------------------------------------
# (1) the token never leaks
# ---------------------------------------------------------------------------------------------


def _secret_forms(*secrets: str) -> list[str]:
    out: list[str] = []
    for s in secrets:
        out += [s, quote(s, safe=""), quote_plus(s)]
    return sorted(set(out))


def test_token_never_leaks_from_failures(
    make_hook: MakeHook,
    graph_conn: EmulatorAdmin,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="airflow_fb_async")
    emu = graph_conn
    hook = make_hook()
    camp = _create_campaigns(emu, 3)[0]
    failures: list[BaseException] = []
    results: list[str] = []

    def expect(exc_type: type[BaseException], fn: Callable[[], Any]) -> None:
        with pytest.raises(exc_type) as info:
            fn()
        failures.append(info.value)

    # 1 unknown path
    expect(GraphAPIError, lambda: hook.get("no_such_node/with_edge/too_deep"))
    # 2 unknown object
    expect(GraphAPIError, lambda: hook.get("999999999999"))
    # 3 bad token
    bad = make_hook(token=BAD_TOKEN)
    expect(GraphAuthError, lambda: bad.get("me"))
    # 4 bad token on a POST
    expect(
        GraphAuthError,
        lambda: bad.post(f"{ACCOUNT}/campaigns", data={"name": "x", "objective": "OUTCOME_SALES"}),
    )
    # 5 500s exhausting the retries
    emu.fault("500", count=6, method="GET")
    expect(GraphTransientError, lambda: hook.get("me"))
    # 6 500s exhausting the retries of a repeatable POST (an update of one object)
    emu.fault("500", count=6, method="POST")
    expect(GraphTransientError, lambda: hook.post(camp, data={"name": "renamed"}))
    # 6b a 500 on a create: uncertain, never resent (exactly-once contract)
    emu.fault("500", count=1, method="POST")
    expect(
        GraphAmbiguousError,
        lambda: hook.post(f"{ACCOUNT}/campaigns", data={"name": "x", "objective": "OUTCOME_SALES"}),
    )
    # 7 throttling exhausting the retries
    emu.fault("throttle", count=6, path_regex="campaigns")
    expect(GraphThrottledError, lambda: hook.get(f"{ACCOUNT}/campaigns"))
    emu.unthrottle()  # end the block now rather than sleep past it
    # 8 dropped connection on a POST
    emu.fault("drop_after_commit", method="POST")
    expect(
        GraphAmbiguousError,
        lambda: hook.post(f"{ACCOUNT}/campaigns", data={"name": "x", "objective": "OUTCOME_SALES"}),
    )
    # 9 connection closed before anything was done, on a POST (the client cannot tell: ambiguous)
    emu.fault("drop_before", method="POST")
    expect(
        GraphAmbiguousError,
        lambda: hook.post(f"{ACCOUNT}/campaigns", data={"name": "x", "objective": "OUTCOME_SALES"}),
    )
    # 10 dropped connections on a GET, exhausting the retries
    emu.fault("drop_after_commit", count=6, method="GET")
    expect(GraphTransientError, lambda: hook.get("me"))
    # 11 pagination error mid-way (500s after the first page)
    pages = hook.pages(f"{ACCOUNT}/campaigns", page_size=1)
    next(pages)
    emu.fault("500", count=6, path_regex="campaigns")
    expect(GraphTransientError, lambda: list(pages))
    # 12 pagination with a bad cursor
    expect(GraphAPIError, lambda: hook.paginate(f"{ACCOUNT}/campaigns", params={"after": "garbage-cursor"}))
    # 13 bad parameter (missing objective)
    expect(GraphAPIError, lambda: hook.post(f"{ACCOUNT}/campaigns", data={"name": "no objective"}))
    # 14 a path carrying the token in its query string (say a pasted paging.next URL)
    expect(GraphAPIError, lambda: hook.get(f"999999999999?access_token={TEST_TOKEN}&fields=id"))
    # 15 batch failing whole with code 1, raised at once through raise_codes
    emu.fault("code1")
    batch = json.dumps([{"method": "GET", "relative_url": "me"}])
    expect(
        GraphTransientError,
        lambda: hook.request("POST", "", data={"batch": batch}, idempotent=True, raise_codes={1, 960}),
    )
    # 16 unknown set ids in a multi-id read
    expect(GraphAPIError, lambda: hook.call("get_request_sets", ["111", "222"]))
    # 17 cancel of an unknown object
    expect(GraphAPIError, lambda: hook.call("cancel", "123456789"))
    # 18 connection refused (before sending: retried, then given up)
    refused = make_hook(url=f"http://127.0.0.1:{_closed_port()}", max_retries=2)
    expect(GraphTransientError, lambda: refused.get("me"))
    # 19 bad app secret
    emu.config(app_secret="the-real-secret")
    wrong_secret = make_hook(app_secret="not-the-secret")
    expect(GraphAuthError, lambda: wrong_secret.get("me"))
    # 20 app secret required but not sent
    expect(GraphAuthError, lambda: hook.get(camp))
    emu.config(app_secret=None)
    # 21 read timeout on a POST: sent, no answer in time
    # Held for ten minutes (until the next test's reset drops it): no descheduled client can
    # find the answer already there when it starts to read.
    emu.config(latency=600)
    slow = make_hook(timeout=0.1)
    expect(
        GraphAmbiguousError,
        lambda: slow.post(f"{ACCOUNT}/campaigns", data={"name": "s", "objective": "OUTCOME_SALES"}),
    )
    emu.config(latency=0.0)
    # 22 the token pasted where an id belongs, in a body: Graph echoes it, the hook scrubs it
    expect(
        GraphAPIError, lambda: hook.post(f"{ACCOUNT}/adsets", data={"name": "a", "campaign_id": TEST_TOKEN})
    )
    # 23 ... and in a URL: refused before sending (HTTP libraries log URLs themselves)
    expect(GraphInputError, lambda: hook.get(TEST_TOKEN, params={"fields": "id"}))
    expect(GraphInputError, lambda: hook.call("cancel", TEST_TOKEN))
    expect(GraphInputError, lambda: hook.get("me", params={"after": TEST_TOKEN}))
    # 24 test_connection with a bad token reports failure without the token
    if mode == "sync":
        assert isinstance(bad.hook, GraphHook)
        ok, message = bad.hook.test_connection()
        assert not ok
        results.append(message)

    assert len(failures) >= 20
    secrets = _secret_forms(TEST_TOKEN, BAD_TOKEN, "the-real-secret", "not-the-secret")
    texts = results[:]
    for exc in failures:
        assert isinstance(exc, FacebookGraphError)
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob, f"secret form {secret[:6]}... leaked"
    # the log is not empty: the per-call debug lines and retry lines were captured and checked
    assert "Graph GET /me ->" in caplog.text
    assert "Retrying" in caplog.text


def test_scrub_removes_token_forms(make_hook: MakeHook) -> None:
    hook = make_hook()
    assert hook.get("me")["id"]  # the async hook knows its token once the connection is read
    text = f"a {TEST_TOKEN} b {quote(TEST_TOKEN, safe='')} c https://x/?access_token=ZZZZZZZZ&after=1"
    out = hook.scrub(text)
    assert TEST_TOKEN not in out
    assert "ZZZZZZZZ" not in out
    assert "after=1" in out


# ---------------------------------------------------------------------------------------------
# (2) retries and throttling
# ---------------------------------------------------------------------------------------------


def test_500_three_times_then_success_uses_four_calls(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    hook = make_hook()
    graph_conn.fault("500", count=3)
    assert hook.get("me")["id"]
    counters = graph_conn.counters()
    assert counters["http_calls"] == 4
    assert counters["faults_injected"]["500"] == 3


def test_500_exhausts_after_one_plus_max_retries_calls(
    make_hook: MakeHook, graph_conn: EmulatorAdmin
) -> None:
    hook = make_hook(max_retries=2)
    graph_conn.fault("500", count=10)
    with pytest.raises(GraphTransientError) as info:
        hook.get("me")
    assert info.value.http_status == 500
    assert graph_conn.http_calls() == 3


def recording_sleep(mode: str, slept: list[float]) -> Callable[[float], Any]:
    """The hook's injectable sleep for ``mode``: records each wait asked for, then really waits it."""
    if mode == "sync":

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            time.sleep(seconds)

        return sleep

    async def async_sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    return async_sleep


def test_throttle_waits_regain_time_then_succeeds(
    make_hook: MakeHook, graph_conn: EmulatorAdmin, mode: str
) -> None:
    slept: list[float] = []
    hook = make_hook(hook_kwargs={"sleep": recording_sleep(mode, slept)})
    graph_conn.fault("throttle", count=1, path_regex="campaigns", regain_minutes=2)
    assert hook.get(f"{ACCOUNT}/campaigns")["data"] == []
    # waited estimated_time_to_regain_access (2 "minutes" x 0.05 s) and did not hammer
    assert graph_conn.http_calls() == 2
    assert sum(slept) >= 0.1
    # Only this test's calls: a call of an earlier test may straddle the reset and be logged after it.
    statuses = [c["status"] for c in graph_conn.calls() if c["path"].endswith(f"{ACCOUNT}/campaigns")]
    assert statuses == [400, 200]


def test_throttle_blocks_other_calls_on_the_same_account(
    make_hook: MakeHook, graph_conn: EmulatorAdmin
) -> None:
    """Process-wide state: a second hook about to call the blocked account waits instead of calling."""
    hook = make_hook()
    other = make_hook(hook_kwargs={})
    graph_conn.fault("throttle", count=1, path_regex="campaigns", regain_minutes=4)
    with pytest.raises(GraphThrottledError):
        hook.request("GET", f"{ACCOUNT}/campaigns", max_retries=0)
    assert other.get(f"{ACCOUNT}/adsets")["data"] == []
    assert [c["status"] for c in graph_conn.calls()] == [400, 200]


def test_throttle_exhausts_retries(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    hook = make_hook(max_retries=2)
    graph_conn.fault("throttle", count=5, path_regex="campaigns")
    with pytest.raises(GraphThrottledError) as info:
        hook.get(f"{ACCOUNT}/campaigns")
    assert info.value.code == 80004
    assert info.value.retry_after == pytest.approx(0.05)
    assert graph_conn.http_calls() == 3


def test_raise_codes_bypass_retry(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    hook = make_hook()
    graph_conn.fault("code1")
    batch = json.dumps([{"method": "GET", "relative_url": "me"}])
    with pytest.raises(GraphTransientError) as info:
        hook.request(
            "POST",
            "",
            data={"batch": batch, "include_headers": "true"},
            idempotent=True,
            raise_codes={1, 960},
        )
    assert info.value.code == 1
    assert graph_conn.http_calls() == 1


def test_not_retryable_error_raises_at_once(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    hook = make_hook(token=BAD_TOKEN)
    with pytest.raises(GraphAuthError) as info:
        hook.get("me")
    assert info.value.code == 190
    assert graph_conn.http_calls() == 1


def test_fake_sleep_is_used_for_backoff(graph_conn: EmulatorAdmin) -> None:
    slept: list[float] = []
    hook = GraphHook(sleep=slept.append, rng=lambda a, b: b)
    graph_conn.fault("500", count=3)
    hook.get("me")
    assert slept == [0.01, 0.02, 0.04]


async def test_async_sleep_is_injectable(graph_conn: EmulatorAdmin) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async with GraphAsyncHook(sleep=fake_sleep, rng=lambda a, b: b) as hook:
        graph_conn.fault("500", count=2)
        assert (await hook.get("me"))["id"]
    assert slept == [0.01, 0.02]


# ---------------------------------------------------------------------------------------------
# (3) dropped connections
# ---------------------------------------------------------------------------------------------


def test_post_drop_after_commit_is_ambiguous_and_not_resent(
    make_hook: MakeHook, graph_conn: EmulatorAdmin
) -> None:
    hook = make_hook()
    graph_conn.fault("drop_after_commit", method="POST")
    with pytest.raises(GraphAmbiguousError):
        hook.post(f"{ACCOUNT}/campaigns", data={"name": "once", "objective": "OUTCOME_SALES"})
    counters = graph_conn.counters()
    assert counters["objects_created"] == 1
    assert counters["http_calls"] == 1


def test_idempotent_post_is_retried_after_a_drop(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    hook = make_hook()
    camp = hook.post(f"{ACCOUNT}/campaigns", data={"name": "before", "objective": "OUTCOME_SALES"})["id"]
    graph_conn.fault("drop_after_commit", method="POST")
    assert hook.request("POST", camp, data={"name": "after"}, idempotent=True) in (True, {"success": True})
    assert graph_conn.http_calls() == 3


def test_get_with_dropped_connection_is_retried(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    hook = make_hook()
    graph_conn.fault("drop_after_commit", method="GET")
    graph_conn.fault("drop_before", method="GET")
    assert hook.get("me")["id"]
    assert graph_conn.http_calls() == 3


def test_connection_refused_is_retried_before_send(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    hook = make_hook(url=f"http://127.0.0.1:{_closed_port()}", max_retries=2)
    with pytest.raises(GraphTransientError, match="before the request was sent"):
        hook.post(f"{ACCOUNT}/campaigns", data={"name": "x", "objective": "OUTCOME_SALES"})


def test_tls_handshake_failure_is_retried_before_send(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    # https:// to the emulator's plain-HTTP port: the TLS handshake fails, nothing was sent.
    https_url = graph_conn.url.replace("http://", "https://")
    hook = make_hook(url=https_url, max_retries=1)
    with pytest.raises(GraphTransientError, match="before the request was sent"):
        hook.post(f"{ACCOUNT}/campaigns", data={"name": "x", "objective": "OUTCOME_SALES"})
    assert graph_conn.counters()["objects_created"] == 0


def test_ssl_error_while_reading_the_answer_counts_as_sent() -> None:
    # urllib3 wraps any ssl.SSLError (handshake or mid-response) in its SSLError, and requests in
    # its own: one raised while reading the answer must not make a POST look unsent (resent twice).
    import ssl

    import urllib3.exceptions

    from airflow_fb_async.hooks.graph import requests_failed_before_send

    def read_response() -> None:
        raise ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] decryption failed")

    try:
        read_response()
    except ssl.SSLError as exc:
        inner = urllib3.exceptions.SSLError(exc)
    wrapped = requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "/v25.0/x", inner))  # type: ignore[arg-type]
    assert requests_failed_before_send(wrapped) is False
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert requests_failed_before_send(requests.exceptions.SSLError(urllib3.exceptions.SSLError(cert)))


# ---------------------------------------------------------------------------------------------
# (4) appsecret_proof
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("timed", [False, True])
def test_appsecret_proof_accepted(make_hook: MakeHook, graph_conn: EmulatorAdmin, timed: bool) -> None:
    graph_conn.config(app_secret="s3cr3t-app")
    hook = make_hook(app_secret="s3cr3t-app", appsecret_time=timed)
    assert hook.get("me")["id"]
    assert hook.post(f"{ACCOUNT}/campaigns", data={"name": "p", "objective": "OUTCOME_SALES"})["id"]
    batch = json.dumps([{"method": "GET", "relative_url": "me"}])
    entries = hook.request("POST", "", data={"batch": batch, "include_headers": "false"}, idempotent=True)
    assert entries[0]["code"] == 200
    calls = graph_conn.calls()
    assert [c["status"] for c in calls] == [200, 200, 200]
    # the GET carried the proof in its query (redacted in the log); the timed form adds appsecret_time
    assert calls[0]["query"]["appsecret_proof"] == "REDACTED"
    assert ("appsecret_time" in calls[0]["query"]) is timed


def test_appsecret_proof_value_never_in_library_logs(
    make_hook: MakeHook, graph_conn: EmulatorAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    """urllib3 (DEBUG) and httpx (INFO) log request URLs; the proof in a GET's query is redacted there."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # Airflow's logging config quiets httpx: turn it up
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    graph_conn.config(app_secret="s3cr3t-app")
    hook = make_hook(app_secret="s3cr3t-app")
    assert hook.get("me")["id"]
    library_lines = [r.getMessage() for r in caplog.records if r.name in ("urllib3.connectionpool", "httpx")]
    assert any("appsecret_proof=***" in line for line in library_lines), library_lines
    assert not re.search(r"appsecret_proof=[0-9a-f]{16}", caplog.text)


def test_wrong_appsecret_fails_clearly(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(app_secret="s3cr3t-app")
    hook = make_hook(app_secret="wrong-secret")
    with pytest.raises(GraphAuthError, match="appsecret") as info:
        hook.get("me")
    assert "app_secret" in str(info.value)
    assert graph_conn.http_calls() == 1


# ---------------------------------------------------------------------------------------------
# (5) pagination
# ---------------------------------------------------------------------------------------------


def test_paginate_1234_items_with_an_empty_middle_page(
    make_hook: MakeHook, graph_conn: EmulatorAdmin
) -> None:
    created = _create_campaigns(graph_conn, 1234)
    hook = make_hook()
    graph_conn.fault("empty_page", count=1, path_regex="campaigns")
    before = graph_conn.counters()["calls_by_kind"].get("get_edge", 0)
    # the empty page is the second one: a first page, an empty one, then the rest
    pages = hook.pages(f"{ACCOUNT}/campaigns", params={"fields": "id,name"})
    items = [next(pages)]
    graph_conn.fault("empty_page", count=1, path_regex="campaigns")
    items += list(pages)
    assert len(items) == 1234
    assert sorted(i["id"] for i in items) == sorted(created)
    pages = graph_conn.counters()["calls_by_kind"]["get_edge"] - before
    assert pages == 5  # an empty first page, 500, an empty page, 500, 234
    for call in graph_conn.calls():
        assert "access_token" not in (call.get("query") or {}) or call["query"]["access_token"] == "REDACTED"


def test_paginate_small_pages_and_list_helpers(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    _create_campaigns(graph_conn, 7)
    hook = make_hook(page_size=3)
    before = graph_conn.http_calls()
    assert len(hook.paginate(f"{ACCOUNT}/campaigns")) == 7
    assert graph_conn.http_calls() - before == 3
    # what the hook returns never holds the token: paging links are cleaned
    page = hook.get(f"{ACCOUNT}/campaigns", params={"limit": 2})
    assert "access_token" not in page["paging"]["next"]
    assert len(hook.get(page["paging"]["next"])["data"]) == 2


# ---------------------------------------------------------------------------------------------
# (6) ETag
# ---------------------------------------------------------------------------------------------


def test_etag_second_get_is_304_and_returns_cached_data(
    make_hook: MakeHook, graph_conn: EmulatorAdmin
) -> None:
    _create_campaigns(graph_conn, 3)
    hook = make_hook()
    seq = len(graph_conn.calls())
    first = hook.get(f"{ACCOUNT}/campaigns", params={"fields": "id,name"}, etag=True)
    second = hook.get(f"{ACCOUNT}/campaigns", params={"fields": "id,name"}, etag=True)
    assert second == first
    assert len(first["data"]) == 3
    assert [c["status"] for c in graph_conn.calls()[seq:]] == [200, 304]


def test_etag_cached_body_is_not_shared_with_callers(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    _create_campaigns(graph_conn, 2)
    hook = make_hook()
    first = hook.get(f"{ACCOUNT}/campaigns", params={"fields": "id,name"}, etag=True)
    pristine = json.loads(json.dumps(first))
    first["data"].clear()  # the caller edits what it got
    second = hook.get(f"{ACCOUNT}/campaigns", params={"fields": "id,name"}, etag=True)
    assert second == pristine
    second["data"].pop()
    third = hook.get(f"{ACCOUNT}/campaigns", params={"fields": "id,name"}, etag=True)
    assert third == pristine
    assert [c["status"] for c in graph_conn.calls()][-3:] == [200, 304, 304]


def test_etag_value_without_cached_body_still_returns_data(
    make_hook: MakeHook, graph_conn: EmulatorAdmin
) -> None:
    hook = make_hook()
    resp = requests.get(
        f"{graph_conn.url}/v25.0/me", headers={"Authorization": f"OAuth {TEST_TOKEN}"}, timeout=10
    )
    etag = resp.headers["ETag"]
    graph_conn.reset()
    graph_conn.config(regain_unit_seconds=0.05)
    data = hook.get("me", etag=etag)
    assert data == resp.json()
    assert [c["status"] for c in graph_conn.calls()] == [304, 200]


# ---------------------------------------------------------------------------------------------
# (7) request sets
# ---------------------------------------------------------------------------------------------


def test_get_request_sets_reads_200_sets_in_4_calls(make_hook: MakeHook, graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(async_pace=0)  # no background processing needed here
    set_ids = _create_request_sets(graph_conn, 200)
    hook = make_hook()
    before = graph_conn.counters()
    sets = hook.call("get_request_sets", set_ids)
    after = graph_conn.counters()
    assert set(sets) == set(set_ids)
    assert after["calls_by_kind"]["get_multi"] - before["calls_by_kind"].get("get_multi", 0) == 4
    assert after["http_calls"] - before["http_calls"] == 4
    one = sets[set_ids[0]]
    for field in ("total_count", "success_count", "error_count", "canceled_count", "is_completed", "name"):
        assert field in one


def test_request_set_helpers_sync(graph_conn: EmulatorAdmin) -> None:
    set_id = _create_request_sets(graph_conn, 1)[0]
    with GraphHook() as hook:
        got = hook.get_request_set(set_id)
        assert got["id"] == set_id
        assert got["total_count"] == 1
        sets = list(hook.list_request_sets(ACCOUNT))
        assert [s["id"] for s in sets] == [set_id]
        assert hook.update_request_set(set_id, name="renamed") is True
        assert hook.get_request_set(set_id, fields=["name"])["name"] == "renamed"
        reqs = list(hook.list_requests(set_id, fields=["id", "status"]))
        assert len(reqs) == 1
        wait_for(
            lambda: hook.get_request_set(set_id),
            lambda view: bool(view["is_completed"]),
            f"request set {set_id} to complete",
        )
        done = list(hook.list_requests(set_id, statuses="success", fields="id,status,result"))
        assert len(done) == 1
        assert done[0]["status"].upper() == "SUCCESS"
        assert list(hook.list_requests(set_id, statuses=["error"])) == []
        assert hook.cancel(set_id) is True


async def test_request_set_helpers_async(graph_conn: EmulatorAdmin) -> None:
    set_id = _create_request_sets(graph_conn, 1)[0]
    async with GraphAsyncHook() as hook:
        got = await hook.get_request_set(set_id)
        assert got["total_count"] == 1
        assert [r async for r in hook.list_requests(set_id)]
        assert await hook.cancel(set_id) is True


# ---------------------------------------------------------------------------------------------
# connection
# ---------------------------------------------------------------------------------------------


def test_connection_extras_both_forms(graph_conn: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "facebook_graph",
        "host": graph_conn.url + "/",
        "password": TEST_TOKEN,
        "extra": {
            "extra__facebook_graph__api_version": "v24.0",
            "extra__facebook_graph__max_retries": "3",
            "page_size": 25,
            "timeout": "7.5",
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_FB_FORMS", json.dumps(conn))
    hook = GraphHook("fb_forms")
    cfg = hook.core.config
    assert (cfg.api_version, cfg.max_retries, cfg.page_size, cfg.timeout) == ("v24.0", 3, 25, 7.5)
    assert cfg.host == graph_conn.url
    assert (cfg.backoff_base, cfg.throttle_threshold, cfg.regain_unit_seconds) == (1.0, 90.0, 60.0)
    assert GraphHook("fb_forms", api_version="v23.0").api_version == "v23.0"

    async def read_async() -> tuple[str, int]:
        async with GraphAsyncHook("fb_forms") as ahook:
            return ahook.api_version, ahook.config.page_size

    assert asyncio.run(read_async()) == ("v24.0", 25)


def test_hook_class_attributes() -> None:
    assert GraphHook.conn_type == "facebook_graph"
    assert GraphHook.conn_name_attr == "graph_conn_id"
    assert GraphHook.default_conn_name == "facebook_graph_default"
    assert GraphHook.hook_name == "Facebook Graph API"
    assert GraphAsyncHook.conn_type == "facebook_graph"


def test_test_connection(graph_conn: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = GraphHook().test_connection()
    assert ok
    assert TEST_TOKEN not in message
    monkeypatch.setenv("AIRFLOW_CONN_FB_BAD", conn_json(graph_conn.url, token=BAD_TOKEN))
    ok, message = GraphHook("fb_bad").test_connection()
    assert not ok
    assert "190" in message
    assert BAD_TOKEN not in message
    monkeypatch.setenv("AIRFLOW_CONN_FB_NOTOKEN", conn_json(graph_conn.url, token=""))
    ok, message = GraphHook("fb_notoken").test_connection()
    assert not ok
    assert "no access token" in message


def test_get_objects_reads_any_kind_50_ids_per_call(graph_conn: EmulatorAdmin) -> None:
    with GraphHook() as hook:
        ids = [
            hook.post(f"{ACCOUNT}/campaigns", data={"name": f"o{i}", "objective": "OUTCOME_SALES"})["id"]
            for i in range(60)
        ]
        before = graph_conn.counters()["calls_by_kind"]["get_multi"]
        got = hook.get_objects([*ids, "act_4242"])
    assert set(got) == {*ids, "act_4242"}
    assert got[ids[0]]["id"] == ids[0]
    assert graph_conn.counters()["calls_by_kind"]["get_multi"] - before == 2  # 61 ids -> 50 + 11


def test_list_ad_set_requests_filters_by_status_in_any_case(graph_conn: EmulatorAdmin) -> None:
    with GraphHook() as hook:
        camp_id = hook.post(f"{ACCOUNT}/campaigns", data={"name": "c", "objective": "OUTCOME_SALES"})["id"]
        adset_id = hook.post(f"{ACCOUNT}/adsets", data={"name": "s", "campaign_id": camp_id})["id"]
        creative_id = hook.post(f"{ACCOUNT}/adcreatives", data={"name": "cr"})["id"]
        creative = json.dumps({"creative_id": creative_id})
        ads = [
            {
                "name": f"ad{i}",
                "relative_url": f"{ACCOUNT}/ads",
                "body": f"name=ad{i}&adset_id={adset_id}&creative={creative}",
            }
            for i in range(3)
        ] + [
            {"name": "bad", "relative_url": f"{ACCOUNT}/ads", "body": f"adset_id={adset_id}"}
        ]  # no name: error
        (set_id,) = hook.create_async_batch(ACCOUNT, ads, name="ad set requests")
        wait_for(
            lambda: hook.get_request_set(set_id),
            lambda view: bool(view["is_completed"]),
            f"request set {set_id} to complete",
        )
        ok = list(hook.list_ad_set_requests(adset_id, statuses=["success"]))
        failed = list(hook.list_ad_set_requests(adset_id, statuses="Error"))
    assert len(ok) == 3
    assert {str(r["scope_object_id"]) for r in ok} == {adset_id}
    assert {r["status"].upper() for r in ok} == {"SUCCESS"}
    assert len(failed) == 1
