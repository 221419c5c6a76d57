"""The emulator's clock-free controls: ``/__admin/unthrottle`` and ``/__admin/async_step``."""

from __future__ import annotations

import pytest
import requests

from tests.emu_admin import EmulatorAdmin

from .conftest import Graph, camp_requests, error_of


def test_async_step_starts_exactly_n_requests_per_set(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(async_pace=0)
    a = graph.create_set("act_5", camp_requests(5), name="a")
    b = graph.create_set("act_5", camp_requests(2), name="b")
    stepped = emu.async_step(3)
    assert {k: (v["success_count"], v["initial_count"]) for k, v in stepped.items()} == {a: (3, 2), b: (2, 0)}
    assert stepped[b]["is_completed"] is True
    assert emu.async_step(1) == {a: {**stepped[a], "success_count": 4, "initial_count": 1}}  # b is done
    # paused: no background tick moved anything between the steps
    assert graph.ok(graph.get(a, fields="success_count"))["success_count"] == 4
    assert emu.counters()["objects_created"] == 6
    assert emu.async_step(1, set_id=a)[a]["is_completed"] is True


def test_async_step_dependencies_and_hold(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(async_pace=0, async_hold_in_progress=True)
    adbatch = [
        *camp_requests(1),
        {"name": "adset", "relative_url": "act_5/adsets", "body": "name=s&campaign_id={result=r0:$.id}"},
    ]
    set_id = graph.create_set("act_5", adbatch)
    held = emu.async_step(2)[set_id]
    assert (held["in_progress_count"], held["initial_count"]) == (1, 1)  # the dependent waits
    emu.config(async_hold_in_progress=False)
    assert emu.async_step(0)[set_id]["success_count"] == 1  # runs what is in progress, starts nothing
    done = emu.async_step(1)[set_id]
    assert (done["success_count"], done["is_completed"]) == (2, True)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("async_step", {"requests": -1}, "requests must be an integer >= 0, got -1"),
        ("async_step", {"requests": "2"}, "requests must be an integer >= 0, got '2'"),
        ("async_step", {"set_id": "123"}, "set_id '123' is not an incomplete async request set"),
        ("async_step", {"sets": 1}, "unknown key(s): sets"),
        ("unthrottle", {"account": "bob"}, "account must be an ad account id"),
        ("unthrottle", {"acount": "act_1"}, "unknown key(s): acount"),
    ],
)
def test_controls_reject_bad_input(
    emu: EmulatorAdmin, path: str, body: dict[str, object], message: str
) -> None:
    resp = requests.post(f"{emu.url}/__admin/{path}", json=body, timeout=30)
    assert resp.status_code == 400
    assert message in resp.json()["error"]["message"]


def test_unthrottle_all_accounts_ends_budget_blocks(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(usage_budget=1, usage_window=600)
    for account in ("act_61", "act_62"):
        assert graph.get(account).status_code == 200
        assert error_of(graph.get(account))["code"] == 80004
    assert emu.unthrottle() == ["61", "62"]
    assert [graph.get(a).status_code for a in ("act_61", "act_62")] == [200, 200]


def test_unthrottle_answers_only_ad_accounts(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.fault("throttle", path_regex="^/v25.0/me$")  # a call naming no ad account: an app-wide block
    assert error_of(graph.get("me"))["code"] == 80004
    assert error_of(graph.get("me"))["code"] == 80004  # still blocked
    emu.fault("throttle", path_regex="act_63")
    assert error_of(graph.get("act_63"))["code"] == 80004
    assert emu.unthrottle() == ["63"]  # the app-wide block ends too, but it is no account
    assert [graph.get(p).status_code for p in ("me", "act_63")] == [200, 200]
