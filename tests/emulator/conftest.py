"""Helpers for the emulator's own tests: plain HTTP (requests) against the session emulator."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
import requests

from airflow_fb_async.emulator import GraphEmulator
from tests.conftest import TEST_TOKEN
from tests.emu_admin import EmulatorAdmin
from tests.waits import DEADLINE, wait_for

# A second valid token for tests that must put a token in a URL (query auth, paging links): the
# secrecy sweep rightly fails any test whose logs (urllib3 prints URLs) show TEST_TOKEN.
URL_TOKEN = "emulator-tests-url-token"


class Graph:
    """A tiny Graph client for tests: token in ``Authorization: OAuth``, answers not interpreted."""

    def __init__(self, url: str, token: str = TEST_TOKEN, version: str = "v25.0") -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.version = version
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"OAuth {token}"

    def u(self, path: str) -> str:
        return (
            f"{self.url}/{self.version}/{path.lstrip('/')}"
            if self.version
            else f"{self.url}/{path.lstrip('/')}"
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        headers = params.pop("headers", None)
        return self.session.get(self.u(path), params=params, headers=headers, timeout=30)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> requests.Response:
        return self.session.post(self.u(path), data=data, timeout=30, **kw)

    def delete(self, path: str, **params: Any) -> requests.Response:
        return self.session.delete(self.u(path), params=params, timeout=30)

    def ok(self, resp: requests.Response) -> Any:
        assert resp.status_code == 200, resp.text
        return resp.json()

    def create(self, account: str, edge: str, **fields: Any) -> str:
        data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return self.ok(self.post(f"{account}/{edge}", data))["id"]

    def tree(self, account: str = "act_1") -> dict[str, str]:
        """campaign -> ad set -> creative -> ad."""
        camp = self.create(account, "campaigns", name="C", objective="OUTCOME_TRAFFIC")
        adset = self.create(account, "adsets", name="S", campaign_id=camp)
        creative = self.create(account, "adcreatives", name="K")
        ad = self.create(account, "ads", name="A", adset_id=adset, creative={"creative_id": creative})
        return {"campaign": camp, "adset": adset, "creative": creative, "ad": ad}

    def batch(self, entries: list[dict[str, Any]], **form: Any) -> requests.Response:
        data = {"access_token": self.token, "batch": json.dumps(entries), **form}
        return requests.post(f"{self.url}/", data=data, timeout=30)

    def create_set(self, account: str, adbatch: list[dict[str, Any]], name: str = "set", **extra: Any) -> str:
        return self.ok(
            self.post(
                f"{account}/async_batch_requests", {"name": name, "adbatch": json.dumps(adbatch), **extra}
            )
        )["id"]

    def wait_set(self, set_id: str, timeout: float = DEADLINE) -> dict[str, Any]:
        fields = (
            "id,name,is_completed,total_count,success_count,error_count,canceled_count,notification_status"
        )
        return wait_for(
            lambda: self.ok(self.get(set_id, fields=fields)),
            lambda view: bool(view["is_completed"]),
            f"request set {set_id} to complete",
            timeout,
        )


def camp_requests(n: int, account: str = "act_5") -> list[dict[str, str]]:
    """``n`` campaign-creating requests (``r0``, ``r1``...) for an async request set's ``adbatch``."""
    return [
        {
            "name": f"r{i}",
            "relative_url": f"{account}/campaigns",
            "body": f"name=c{i}&objective=OUTCOME_SALES",
        }
        for i in range(n)
    ]


def error_of(resp: requests.Response, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "code", "fbtrace_id", "is_transient"} <= set(err), err
    return err


def campaign_fields(i: int = 0) -> dict[str, str]:
    return {"name": f"c{i}", "objective": "OUTCOME_TRAFFIC"}


@pytest.fixture
def graph(emu: EmulatorAdmin) -> Graph:
    return Graph(emu.url)


@pytest.fixture
def url_token(emulator: GraphEmulator, emu: EmulatorAdmin) -> str:
    emulator.engine.tokens.add(URL_TOKEN)
    return URL_TOKEN


@pytest.fixture
def sdk_api(emu: EmulatorAdmin, url_token: str) -> Any:
    """The official SDK (``facebook_business``, unmodified) pointed at the emulator; the test module
    skips itself first (``pytest.importorskip``) where the SDK is not installed."""
    from facebook_business.api import FacebookAdsApi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The SDK sends the token in every URL's query string, which urllib3 logs: use the URL token.
        api = FacebookAdsApi.init(access_token=url_token, api_version="v25.0")
    # The SDK builds every URL from its session's GRAPH attribute: point that instance at the emulator.
    api._session.GRAPH = emu.url
    return api
