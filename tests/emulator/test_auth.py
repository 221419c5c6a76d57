from __future__ import annotations

import hashlib
import hmac
import time

import requests

from tests.conftest import TEST_TOKEN
from tests.emu_admin import EmulatorAdmin

from .conftest import error_of


def test_token_in_query_form_and_both_header_forms(emu: EmulatorAdmin, url_token: str) -> None:
    base = f"{emu.url}/v25.0"
    assert (
        requests.get(f"{base}/act_1", params={"access_token": url_token}, timeout=5).json()["id"] == "act_1"
    )
    resp = requests.post(
        f"{base}/act_1/campaigns",
        timeout=5,
        data={"access_token": TEST_TOKEN, "name": "x", "objective": "OUTCOME_SALES"},
    )
    assert resp.status_code == 200, resp.text
    for scheme in ("OAuth", "Bearer"):
        resp = requests.get(f"{base}/act_1", headers={"Authorization": f"{scheme} {TEST_TOKEN}"}, timeout=5)
        assert resp.status_code == 200, (scheme, resp.text)
        assert resp.json()["account_id"] == "1"


def test_wrong_or_missing_token_is_190(emu: EmulatorAdmin) -> None:
    base = f"{emu.url}/v25.0"
    for kwargs in (
        {},
        {"params": {"access_token": "wrong"}},
        {"headers": {"Authorization": "OAuth wrong"}},
        {"headers": {"Authorization": "Bearer "}},
        {"headers": {"Authorization": f"Basic {TEST_TOKEN}"}},
    ):
        err = error_of(requests.get(f"{base}/act_1/campaigns", timeout=5, **kwargs))  # type: ignore[arg-type]
        assert err["code"] == 190, kwargs
        assert err["type"] == "OAuthException"
    assert emu.counters()["objects_created"] == 0


def _proof(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def test_appsecret_proof_classic_and_timed(emu: EmulatorAdmin) -> None:
    secret = "s3cr3t-app"
    emu.config(app_secret=secret)
    url = f"{emu.url}/v25.0/me"
    headers = {"Authorization": f"OAuth {TEST_TOKEN}"}
    ok = requests.get(url, headers=headers, params={"appsecret_proof": _proof(secret, TEST_TOKEN)}, timeout=5)
    assert ok.status_code == 200, ok.text
    now = int(time.time())
    timed = {"appsecret_proof": _proof(secret, f"{TEST_TOKEN}|{now}"), "appsecret_time": str(now)}
    assert requests.get(url, headers=headers, params=timed, timeout=5).status_code == 200
    # POST form body carries the proof too
    resp = requests.post(
        f"{emu.url}/v25.0/act_1/campaigns",
        headers=headers,
        timeout=5,
        data={"name": "x", "objective": "OUTCOME_SALES", **timed},
    )
    assert resp.status_code == 200, resp.text

    old = now - 400
    stale = {"appsecret_proof": _proof(secret, f"{TEST_TOKEN}|{old}"), "appsecret_time": str(old)}
    for params in (
        {},
        {"appsecret_proof": "0" * 64},
        {"appsecret_proof": _proof("other-secret", TEST_TOKEN)},
        {
            "appsecret_proof": _proof(secret, TEST_TOKEN),
            "appsecret_time": str(now),
        },  # classic proof sent as timed
        stale,
    ):
        err = error_of(requests.get(url, headers=headers, params=params, timeout=5))
        assert err["code"] == 100, params
        assert err["type"] == "GraphMethodException"
        assert "appsecret_proof" in err["message"]

    emu.config(app_secret=None)
    assert requests.get(url, headers=headers, timeout=5).status_code == 200


def test_app_secret_from_constructor_and_reset_restores_it() -> None:
    from airflow_fb_async.emulator import GraphEmulator

    with GraphEmulator(port=0, tokens=["tk"], app_secret="abc") as emu:
        url = f"{emu.url}/me"
        assert requests.get(url, params={"access_token": "tk"}, timeout=5).status_code == 400
        good = {"access_token": "tk", "appsecret_proof": _proof("abc", "tk")}
        assert requests.get(url, params=good, timeout=5).status_code == 200
        emu.configure(app_secret=None)
        assert requests.get(url, params={"access_token": "tk"}, timeout=5).status_code == 200
        emu.reset()
        assert requests.get(url, params={"access_token": "tk"}, timeout=5).status_code == 400
