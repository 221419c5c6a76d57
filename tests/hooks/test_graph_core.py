"""Unit tests of the sans-IO core (pure functions: no HTTP), and the throttle cap against the emulator."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json

import httpx
import pytest
import requests
import urllib3.exceptions

from airflow_fb_async import exceptions
from airflow_fb_async.hooks.call import GraphCore
from airflow_fb_async.hooks.config import GraphConfig, parse_conn_config
from airflow_fb_async.hooks.errors import error_from_response
from airflow_fb_async.hooks.etag import EtagCache
from airflow_fb_async.hooks.graph import GraphAsyncHook, GraphHook, requests_failed_before_send
from airflow_fb_async.hooks.graph_async import httpx_failed_before_send
from airflow_fb_async.hooks.paging import PageWalker, clean_paging, next_page_params
from airflow_fb_async.hooks.retry import RetryPolicy
from airflow_fb_async.hooks.scrub import Scrubber
from airflow_fb_async.hooks.throttle import (
    MAX_THROTTLE_WAIT,
    ThrottleState,
    _ThrottleStore,
    parse_usage_headers,
)
from airflow_fb_async.hooks.urls import appsecret_proof, split_path
from tests.conftest import CONN_ENV, conn_json
from tests.emu_admin import EmulatorAdmin

TOKEN = "EAAunit+tok/en=with-special-chars-1234567890"


# -- connection parsing ---------------------------------------------------------------------------


def test_conn_defaults() -> None:
    cfg = parse_conn_config("c", host=None, password=TOKEN, extra={})
    assert cfg.host == "https://graph.facebook.com"
    assert cfg.api_version == "v25.0"
    assert cfg.base_url == "https://graph.facebook.com/v25.0"
    assert (cfg.timeout, cfg.max_retries, cfg.backoff_base, cfg.backoff_max) == (60.0, 5, 1.0, 60.0)
    assert (cfg.throttle_threshold, cfg.regain_unit_seconds, cfg.page_size) == (90.0, 60.0, 500)
    assert cfg.app_secret is None
    assert cfg.appsecret_time is False
    assert TOKEN not in repr(cfg)


def test_conn_both_extra_forms_prefixed_wins() -> None:
    extra = {
        "api_version": "v24.0",
        "extra__facebook_graph__max_retries": "7",
        "timeout": 12,
        "extra__facebook_graph__appsecret_time": "true",
        "app_secret": "plain",
        "extra__facebook_graph__app_secret": "prefixed",
        "extra__facebook_graph__page_size": "",  # empty UI field falls back to the plain key
        "page_size": 100,
    }
    cfg = parse_conn_config("c", host="127.0.0.1", password=TOKEN, extra=extra, port=8999, schema="http")
    assert cfg.host == "http://127.0.0.1:8999"
    assert cfg.api_version == "v24.0"
    assert cfg.max_retries == 7
    assert cfg.timeout == 12.0
    assert cfg.page_size == 100
    assert cfg.appsecret_time is True
    assert cfg.app_secret == "prefixed"


def test_conn_api_version_override_and_normalisation() -> None:
    cfg = parse_conn_config(
        "c", host="http://h:1/", password="t", extra={"api_version": "v24.0"}, api_version="25"
    )
    assert cfg.api_version == "v25.0"
    assert cfg.host == "http://h:1"


@pytest.mark.parametrize(
    "extra",
    [
        {"max_retries": "many"},
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"appsecret_time": "perhaps"},
        {"api_version": "latest"},
    ],
)
def test_conn_bad_extras(extra: dict[str, object]) -> None:
    with pytest.raises(exceptions.GraphInputError):
        parse_conn_config("c", host=None, password="t", extra=extra)


# -- scrubbing --------------------------------------------------------------------------------------


def test_scrubber_removes_all_forms() -> None:
    scrub = Scrubber([TOKEN, "s3cret-app"])
    text = (
        f"raw {TOKEN} url {requests.utils.quote(TOKEN, safe='')} plus "
        f"{TOKEN.replace('+', '%2B').replace('/', '%2F').replace('=', '%3D')} "
        "https://x/y?access_token=OTHERTOKEN123&after=abc appsecret_proof=deadbeef "
        "Authorization: OAuth SOMEOTHERTOKEN99 app s3cret-app"
    )
    out = scrub(text)
    for bad in (
        TOKEN,
        requests.utils.quote(TOKEN, safe=""),
        "OTHERTOKEN123",
        "deadbeef",
        "SOMEOTHERTOKEN99",
        "s3cret-app",
    ):
        assert bad not in out
    assert "after=abc" in out


def test_appsecret_proof_forms() -> None:
    assert appsecret_proof("sec", "tok") == hmac.new(b"sec", b"tok", hashlib.sha256).hexdigest()
    assert (
        appsecret_proof("sec", "tok", 1700000000)
        == hmac.new(b"sec", b"tok|1700000000", hashlib.sha256).hexdigest()
    )


# -- request building ---------------------------------------------------------------------------------


def _core(**kw: object) -> GraphCore:
    cfg = GraphConfig(conn_id="c", host="http://h", token=TOKEN, **kw)  # type: ignore[arg-type]
    return GraphCore(cfg, clock=lambda: 1700000000.0)


def test_build_get_has_header_auth_and_proof_not_token_in_url() -> None:
    call = _core(app_secret="sec").new_call(
        "get", "act_1/campaigns?fields=id&access_token=LEAK", params={"limit": 5}
    )
    req = call.build()
    assert req.url == "http://h/v25.0/act_1/campaigns"
    assert req.params == {"fields": "id", "limit": "5", "appsecret_proof": appsecret_proof("sec", TOKEN)}
    assert req.headers["Authorization"] == f"OAuth {TOKEN}"
    assert req.data is None


def test_build_root_post_puts_token_in_body_and_timed_proof() -> None:
    call = _core(app_secret="sec", appsecret_time=True).new_call(
        "POST", "", data={"batch": [{"a": 1}], "x": True}
    )
    req = call.build()
    assert req.params == {}
    assert req.data is not None
    assert req.data["access_token"] == TOKEN
    assert req.data["batch"] == '[{"a":1}]'
    assert req.data["x"] == "true"
    assert req.data["appsecret_time"] == "1700000000"
    assert req.data["appsecret_proof"] == appsecret_proof("sec", TOKEN, 1700000000)
    non_root = _core().new_call("POST", "act_1/campaigns", data={"name": "n"}).build()
    assert non_root.data == {"name": "n"}


def test_get_with_body_rejected() -> None:
    with pytest.raises(exceptions.GraphInputError):
        _core().new_call("GET", "me", data={"a": 1})


def test_missing_token_is_auth_error() -> None:
    core = GraphCore(GraphConfig(conn_id="c"))
    with pytest.raises(exceptions.GraphAuthError, match="no access token"):
        core.new_call("GET", "me")


def test_split_path_absolute_next_url() -> None:
    path, q = split_path(f"https://graph.facebook.com/v25.0/act_1/ads?access_token={TOKEN}&limit=5&after=xyz")
    assert path == "act_1/ads"
    assert q == {"limit": "5", "after": "xyz"}


# -- errors -------------------------------------------------------------------------------------------


def _err(
    status: int, error: dict[str, object] | None, headers: dict[str, str] | None = None
) -> exceptions.GraphAPIError:
    body = json.dumps({"error": error}).encode() if error is not None else b"<html>oops</html>"
    return error_from_response(
        status, headers or {}, body, method="GET", path="me", scrub=Scrubber([TOKEN]), regain_unit_seconds=0.5
    )


@pytest.mark.parametrize(
    ("status", "error", "cls"),
    [
        (400, {"code": 190, "message": "bad token"}, exceptions.GraphAuthError),
        (400, {"code": 102, "message": "session"}, exceptions.GraphAuthError),
        (400, {"code": 100, "message": "Invalid appsecret_proof provided"}, exceptions.GraphAuthError),
        (400, {"code": 200, "message": "permission"}, exceptions.GraphAuthError),
        (400, {"code": 10, "message": "permission"}, exceptions.GraphAuthError),
        (400, {"code": 100, "message": "bad param"}, exceptions.GraphAPIError),
        (400, {"code": 1, "message": "unknown"}, exceptions.GraphTransientError),
        (400, {"code": 2, "message": "service"}, exceptions.GraphTransientError),
        (400, {"code": 9999, "message": "x", "is_transient": True}, exceptions.GraphTransientError),
        (500, {"code": 100, "message": "x"}, exceptions.GraphTransientError),
        (502, None, exceptions.GraphTransientError),
        (400, {"code": 17, "message": "limit"}, exceptions.GraphThrottledError),
        (400, {"code": 80004, "message": "limit"}, exceptions.GraphThrottledError),
        (400, {"code": 613, "message": "limit"}, exceptions.GraphThrottledError),
        (404, None, exceptions.GraphAPIError),
    ],
)
def test_error_classes(
    status: int, error: dict[str, object] | None, cls: type[exceptions.GraphAPIError]
) -> None:
    err = _err(status, error)
    assert type(err) is cls
    assert err.http_status == status


def test_error_fields_and_scrubbed_message() -> None:
    err = _err(
        400,
        {
            "code": 100,
            "error_subcode": 33,
            "message": f"bad access_token={TOKEN}",
            "type": "GraphMethodException",
            "fbtrace_id": "TRACE",
            "error_user_msg": f"user {TOKEN}",
        },
    )
    assert (err.code, err.error_subcode, err.fbtrace_id, err.type) == (
        100,
        33,
        "TRACE",
        "GraphMethodException",
    )
    assert TOKEN not in str(err)
    assert TOKEN not in repr(err)
    assert TOKEN not in (err.error_user_msg or "")


def test_throttle_error_retry_after_from_buc_header() -> None:
    buc = {"123": [{"type": "ads_management", "call_count": 100, "estimated_time_to_regain_access": 3}]}
    err = _err(400, {"code": 80004, "message": "too many"}, {"X-Business-Use-Case-Usage": json.dumps(buc)})
    assert isinstance(err, exceptions.GraphThrottledError)
    assert err.retry_after == pytest.approx(1.5)


# -- retry policy ------------------------------------------------------------------------------------


def test_retry_policy_decisions() -> None:
    policy = RetryPolicy(max_retries=3, backoff_base=1.0, backoff_max=5.0, rng=lambda a, b: b)
    transient = exceptions.GraphTransientError("x", code=2)
    assert [policy.delay_for(transient, n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, None]
    assert policy.backoff(10) == 5.0  # capped
    assert policy.delay_for(exceptions.GraphThrottledError("t", code=4, retry_after=7.0), 1) == 7.0
    assert policy.delay_for(exceptions.GraphThrottledError("t", code=4), 2) == 2.0
    assert policy.delay_for(exceptions.GraphAmbiguousError("a"), 1) is None
    assert policy.delay_for(exceptions.GraphAPIError("p", code=100), 1) is None
    assert policy.delay_for(exceptions.GraphAuthError("p", code=190), 1) is None
    assert policy.delay_for(exceptions.GraphTransientError("x", code=1), 1, raise_codes={1}) is None
    assert policy.delay_for(transient, 1, max_retries=0) is None


def test_full_jitter_stays_in_range() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base=0.5, backoff_max=3.0)
    for n in range(1, 10):
        for _ in range(50):
            assert 0.0 <= policy.backoff(n) <= min(3.0, 0.5 * 2 ** (n - 1))


# -- transport failure classification ------------------------------------------------------------------


def test_requests_before_or_after_send() -> None:
    pool = urllib3.HTTPConnectionPool("h")
    before = requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(pool, "/x", urllib3.exceptions.NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    )
    after = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed"))
    )
    reset = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )
    assert requests_failed_before_send(before)
    assert requests_failed_before_send(requests.exceptions.ConnectTimeout("t"))
    assert not requests_failed_before_send(after)
    assert not requests_failed_before_send(reset)
    assert not requests_failed_before_send(requests.exceptions.ReadTimeout("t"))


def test_httpx_before_or_after_send() -> None:
    assert httpx_failed_before_send(httpx.ConnectError("x"))
    assert httpx_failed_before_send(httpx.ConnectTimeout("x"))
    for exc in (
        httpx.ReadError("x"),
        httpx.ReadTimeout("x"),
        httpx.RemoteProtocolError("x"),
        httpx.WriteError("x"),
    ):
        assert not httpx_failed_before_send(exc)


# -- pagination step -----------------------------------------------------------------------------------


def test_next_page_params() -> None:
    base = {"limit": "2"}
    assert next_page_params({"data": [1, 2], "paging": {"cursors": {"after": "A"}}}, base) is None
    page = {
        "data": [],
        "paging": {"cursors": {"after": "B"}, "next": f"http://h/v25.0/x?access_token={TOKEN}&after=B"},
    }
    assert next_page_params(page, base) == {"limit": "2", "after": "B"}
    offset_page = {
        "data": [1],
        "paging": {"next": f"http://h/v25.0/x?access_token={TOKEN}&offset=10&limit=2"},
    }
    nxt = next_page_params(offset_page, base)
    assert nxt == {"limit": "2", "offset": "10"}
    assert next_page_params(page, {"limit": "2", "after": "B"}) == {"limit": "2", "after": "B"}


def test_page_walker_follows_empty_repeats_but_not_stalls() -> None:
    link = f"http://h/v25.0/x?access_token={TOKEN}&limit=2"
    walker = PageWalker({"limit": "2"}, "GET /x", max_stalls=2)
    empty_repeat = {"data": [], "paging": {"cursors": {}, "next": link}}
    assert walker.step(empty_repeat) == []
    assert walker.params == {"limit": "2"}
    assert walker.step({"data": [1], "paging": {"cursors": {"after": "A"}, "next": link}}) == [1]
    assert walker.params == {"limit": "2", "after": "A"}
    assert walker.step({"data": [2]}) == [2]
    assert walker.params is None
    stuck = PageWalker({"limit": "2"}, "GET /x")
    with pytest.raises(exceptions.GraphAPIError, match="did not advance"):
        stuck.step({"data": [1], "paging": {"next": link}})
    forever = PageWalker({"limit": "2"}, "GET /x", max_stalls=2)
    forever.step(empty_repeat)
    forever.step(empty_repeat)
    with pytest.raises(exceptions.GraphAPIError, match="did not advance"):
        forever.step(empty_repeat)


def test_clean_paging_strips_credentials() -> None:
    body = {
        "data": [],
        "paging": {"next": f"http://h/v25.0/x?limit=2&access_token={TOKEN}&appsecret_proof=p&after=Q"},
    }
    clean_paging(body)
    assert body["paging"]["next"] == "http://h/v25.0/x?limit=2&after=Q"


# -- throttle state --------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_block_and_slowdown() -> None:
    clock = _Clock()
    state = ThrottleState(
        regain_unit_seconds=2.0,
        throttle_threshold=90,
        backoff_base=1.0,
        backoff_max=60,
        clock=clock,
        store=_ThrottleStore(),
    )
    buc = {"55": [{"call_count": 100, "total_time": 10, "estimated_time_to_regain_access": 3}]}
    state.observe({"x-business-use-case-usage": json.dumps(buc)})
    assert state.wait_time(["act_55"])[0] == pytest.approx(6.0)
    assert state.wait_time(["act_66"])[0] == 0.0
    clock.now += 6.5
    # the 100% reading was taken while blocked: once the block is over it does not slow us down
    assert state.wait_time(["55"])[0] == 0.0
    state.observe([{"name": "X-Business-Use-Case-Usage", "value": json.dumps({"55": [{"call_count": 95}]})}])
    assert state.wait_time(["55"])[0] == pytest.approx(1.0 + 9.0 * 0.5)
    # BUC and X-Ad-Account-Usage about the same blocked account: still "observed while blocked"
    both = {
        "X-Business-Use-Case-Usage": json.dumps(
            {"55": [{"call_count": 100, "estimated_time_to_regain_access": 1}]}
        ),
        "X-Ad-Account-Usage": json.dumps({"acc_id_util_pct": 100}),
    }
    state.observe(both, account_id="act_55")
    clock.now += 2.5
    assert state.wait_time(["55"])[0] == 0.0
    state.observe({"X-App-Usage": json.dumps({"call_count": 50})})
    assert state.usage() == 50
    state.observe({"X-Ad-Account-Usage": json.dumps({"acc_id_util_pct": 12})}, account_id="act_77")
    assert state.usage("77") == 12


def test_parse_usage_headers_ignores_garbage() -> None:
    assert parse_usage_headers({"X-Business-Use-Case-Usage": "not json", "X-App-Usage": "[1]"}) == []


# -- etag cache ----------------------------------------------------------------------------------------------


def test_etag_cache_is_bounded_lru_without_credentials() -> None:
    cache = EtagCache(maxsize=2)
    k1 = EtagCache.key("GET", "u1", {"fields": "id", "access_token": TOKEN, "appsecret_proof": "p"})
    assert TOKEN not in repr(k1)
    assert "appsecret_proof" not in repr(k1)
    k2, k3 = EtagCache.key("GET", "u2", {}), EtagCache.key("GET", "u3", {})
    cache.put(k1, "e1", 1)
    cache.put(k2, "e2", 2)
    assert cache.get(k1) == ("e1", 1)
    cache.put(k3, "e3", 3)
    assert cache.get(k2) is None
    assert cache.get(k1) == ("e1", 1)
    assert len(cache) == 2


# -- malformed usage headers (issue 13, edge 2b) -------------------------------------------------------


MALFORMED_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", '"abc"', "null", "[1]", "{}", "true", "-5"]


@pytest.mark.parametrize("raw", MALFORMED_NUMBERS)
def test_parse_usage_headers_ignores_non_finite_and_non_numeric(raw: str) -> None:
    # Python's json module reads NaN / Infinity / 1e400 as floats: they must not leak into readings.
    headers = {
        "X-App-Usage": f'{{"call_count": {raw}, "total_cputime": 7, "total_time": {raw}}}',
        "X-Business-Use-Case-Usage": (
            f'{{"55": [{{"call_count": {raw}, "total_time": 3, "estimated_time_to_regain_access": {raw}}}]}}'
        ),
        "X-Ad-Account-Usage": f'{{"acc_id_util_pct": {raw}}}',
    }
    readings = {r.key: r for r in parse_usage_headers(headers, account_hint="act_66")}
    assert readings["__app__"].usage_pct == 7.0
    assert (readings["55"].usage_pct, readings["55"].regain_minutes) == (3.0, 0.0)
    assert readings["66"].usage_pct == 0.0


@pytest.mark.parametrize("raw", MALFORMED_NUMBERS)
def test_observe_never_raises_on_malformed_headers(raw: str) -> None:
    state = ThrottleState(regain_unit_seconds=60, clock=_Clock(), store=_ThrottleStore())
    headers = {
        "X-App-Usage": f'{{"call_count": {raw}}}',
        "X-Business-Use-Case-Usage": f'{{"55": [{{"call_count": {raw}, "estimated_time_to_regain_access": {raw}}}]}}',
    }
    state.observe(headers)
    pause, _ = state.wait_time(["55"])
    assert pause == 0.0
    assert state.blocked_for("55") == 0.0


def test_huge_regain_is_capped_by_max_throttle_wait() -> None:
    clock = _Clock()
    state = ThrottleState(regain_unit_seconds=60, max_wait=30.0, clock=clock, store=_ThrottleStore())
    buc = '{"55": [{"call_count": 100, "estimated_time_to_regain_access": 1e12}]}'
    state.observe({"X-Business-Use-Case-Usage": buc})
    assert state.wait_time(["55"])[0] == pytest.approx(30.0)
    assert state.blocked_for("55") == pytest.approx(30.0)
    clock.now += 30.5
    assert state.wait_time(["55"])[0] == 0.0
    # The default cap is an hour.
    default = ThrottleState(regain_unit_seconds=60, clock=clock, store=_ThrottleStore())
    default.observe({"X-Business-Use-Case-Usage": buc})
    assert default.wait_time(["55"])[0] == pytest.approx(MAX_THROTTLE_WAIT) == 3600.0


@pytest.mark.parametrize(("regain", "expected"), [("1e12", 30.0), ("1e400", None), ("NaN", None), ("2", 1.0)])
def test_throttle_error_retry_after_is_finite_and_capped(regain: str, expected: float | None) -> None:
    buc = f'{{"123": [{{"call_count": 100, "estimated_time_to_regain_access": {regain}}}]}}'
    err = error_from_response(
        400,
        {"X-Business-Use-Case-Usage": buc},
        json.dumps({"error": {"code": 80004, "message": "too many"}}).encode(),
        method="GET",
        path="act_123/ads",
        scrub=str,
        regain_unit_seconds=0.5,
        max_wait=30.0,
    )
    assert isinstance(err, exceptions.GraphThrottledError)
    assert err.retry_after == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("retry_after", [float("inf"), 1e12, float("nan"), -3.0])
def test_retry_policy_caps_and_sanitises_retry_after(retry_after: float) -> None:
    policy = RetryPolicy(max_retries=3, backoff_base=1.0, backoff_max=5.0, max_wait=30.0, rng=lambda a, b: b)
    delay = policy.delay_for(exceptions.GraphThrottledError("t", code=4, retry_after=retry_after), 1)
    assert delay is not None
    assert 0.0 <= delay <= 30.0
    if retry_after != retry_after:  # NaN: unknown, so the plain back-off
        assert delay == 1.0


def test_conn_max_throttle_wait_extra() -> None:
    assert parse_conn_config("c", host=None, password="t", extra={}).max_throttle_wait == 3600.0
    cfg = parse_conn_config("c", host=None, password="t", extra={"max_throttle_wait": "120"})
    assert cfg.max_throttle_wait == 120.0
    assert GraphCore(cfg).throttle.max_wait == 120.0
    assert GraphCore(cfg).policy.max_wait == 120.0
    with pytest.raises(exceptions.GraphInputError, match="max_throttle_wait"):
        parse_conn_config("c", host=None, password="t", extra={"max_throttle_wait": "forever"})


def test_huge_regain_from_the_emulator_never_sleeps_longer_than_the_cap(
    graph_conn: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator announces estimated_time_to_regain_access = 10**12 minutes (and keeps the account
    blocked): every sleep of the hook stays under max_throttle_wait, and it gives up after max_retries."""
    monkeypatch.setenv(CONN_ENV, conn_json(graph_conn.url, max_throttle_wait=0.5, max_retries=3))
    slept: list[float] = []
    hook = GraphHook(sleep=slept.append)
    graph_conn.fault("throttle", count=1, method="GET", regain_minutes=10**12)
    try:
        with pytest.raises(exceptions.GraphThrottledError) as info:
            hook.get("act_4242/campaigns")
        assert info.value.retry_after == pytest.approx(0.5)
        assert graph_conn.http_calls() == 4
        assert len(slept) >= 3, slept  # a retry delay per retry, plus a store pause when still blocked
        assert all(0 < s <= 0.5 for s in slept), slept
    finally:
        hook.throttle.reset()  # the block is process-wide: do not leave it to the next test
        hook.close()


async def test_async_hook_caps_a_huge_regain_too(
    graph_conn: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same announcement through the async hook (same core, its own sleep loop)."""
    monkeypatch.setenv(CONN_ENV, conn_json(graph_conn.url, max_throttle_wait=0.5, max_retries=3))
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    graph_conn.fault("throttle", count=1, method="GET", regain_minutes=10**12)
    async with GraphAsyncHook(sleep=fake_sleep) as hook:
        try:
            with pytest.raises(exceptions.GraphThrottledError):
                await hook.get("act_4242/campaigns")
        finally:
            hook.throttle.reset()
    assert graph_conn.http_calls() == 4
    assert len(slept) >= 3, slept
    assert all(0 < s <= 0.5 for s in slept), slept
