"""The two hooks' public surface: the same calls on both (minus documented exceptions), each with a
docstring; the account-wide request listing; the one strict ad account normaliser."""

from __future__ import annotations

import asyncio
import inspect
import json

import pytest

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.graph import GraphAsyncHook, GraphHook
from airflow_fb_async.hooks.ids import account_digits, normalize_ad_account_id
from tests.emu_admin import EmulatorAdmin
from tests.waits import wait_for

#: Sync-only, by design (graph_async.py's docstring, docs/DESIGN.md): the batch engines run threads,
#: journals and exactly-once reconciliation written for tasks; the UI form hooks are the UI's.
SYNC_ONLY = {"batch", "create_async_batch", "get_connection_form_widgets", "get_ui_field_behaviour"}
#: The same job under each hook's own name: (sync, async).
RENAMED = {("close", "aclose"), ("core", "aget_core")}


def public_names(cls: type) -> set[str]:
    """Public attributes the package defines on ``cls`` or its bases (not Airflow's BaseHook)."""
    names = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("airflow_fb_async."):
            names.update(n for n in vars(klass) if not n.startswith("_"))
    return names - {"conn_name_attr", "default_conn_name", "conn_type", "hook_name", "multi_id_chunk"}


def test_the_two_hooks_offer_the_same_public_calls() -> None:
    sync_names = public_names(GraphHook) - SYNC_ONLY - {s for s, _ in RENAMED}
    async_names = public_names(GraphAsyncHook) - {a for _, a in RENAMED}
    assert sync_names == async_names, (
        f"only on GraphHook: {sorted(sync_names - async_names)}; "
        f"only on GraphAsyncHook: {sorted(async_names - sync_names)}"
    )
    for sync_name, async_name in RENAMED:
        assert sync_name in public_names(GraphHook)
        assert async_name in public_names(GraphAsyncHook)


@pytest.mark.parametrize("cls", [GraphHook, GraphAsyncHook])
def test_every_public_hook_method_has_a_docstring(cls: type) -> None:
    missing = []
    for name in sorted(public_names(cls)):
        attr = inspect.getattr_static(cls, name)
        func = attr.fget if isinstance(attr, property) else getattr(attr, "__func__", attr)
        if callable(func) and not (inspect.getdoc(func) or "").strip():
            missing.append(name)
    assert missing == [], f"{cls.__name__} methods without a docstring: {missing}"


def _finished_sets(hook: GraphHook, account: str, names: list[str]) -> list[str]:
    """One set per name on ``account``: an ad create that succeeds and one that fails (no name)."""
    set_ids = []
    for name in names:
        requests = [
            {
                "name": "ok",
                "relative_url": f"{account}/campaigns",
                "body": {"name": name, "objective": "OUTCOME_SALES"},
            },
            {"name": "bad", "relative_url": f"{account}/campaigns", "body": {"objective": "OUTCOME_SALES"}},
        ]
        set_ids += hook.create_async_batch(account, requests, name=name)
    for set_id in set_ids:
        wait_for(lambda s=set_id: hook.get_request_set(s), lambda v: bool(v["is_completed"]), f"set {set_id}")
    return set_ids


def _held(emu: EmulatorAdmin, digits: str, status: str | None = None) -> set[str]:
    """Ids of the async requests the emulator holds for an account (optionally of one status)."""
    return {
        str(o["id"])
        for o in emu.objects("async_request")
        if str(o["account_id"]).removeprefix("act_") == digits and (status is None or o["status"] == status)
    }


def test_list_account_requests_reads_every_request_of_the_account(graph_conn: EmulatorAdmin) -> None:
    with GraphHook() as hook:
        _finished_sets(hook, "act_7001", ["a", "b"])
        _finished_sets(hook, "act_7002", ["other"])
        every = list(hook.list_account_requests("act_7001", fields="id,status", page_size=1))
        failed = list(hook.list_account_requests("7001", statuses=["error"], fields=["id", "status"]))
        ok = list(hook.list_account_requests(7001, statuses="Success"))
    assert len(every) == 4  # two sets of two requests, one page each: paging followed to the end
    assert {r["id"] for r in every} == _held(graph_conn, "7001")
    assert {r["id"] for r in failed} == _held(graph_conn, "7001", "ERROR")
    assert {r["status"].upper() for r in failed} == {"ERROR"}
    assert {r["id"] for r in ok} == _held(graph_conn, "7001", "SUCCESS")
    assert len(ok) == len(failed) == 2
    paged = [c for c in graph_conn.calls() if "act_7001/async_requests" in c.get("path", "")]
    assert len(paged) >= 4 + 1 + 1  # one request a page for the first listing


async def test_list_account_requests_async(graph_conn: EmulatorAdmin) -> None:
    with GraphHook() as hook:
        _finished_sets(hook, "act_7003", ["a"])
    async with GraphAsyncHook() as ahook:
        every = [r async for r in ahook.list_account_requests("act_7003", page_size=1)]
        failed = [
            r async for r in ahook.list_account_requests("act_7003", statuses="error", fields="id,status")
        ]
        sets = [s async for s in ahook.list_request_sets("act_7003", is_completed=True)]
        assert await ahook.update_request_set(sets[0]["id"], name="renamed") is True
        assert (await ahook.get_request_set(sets[0]["id"], fields="name"))["name"] == "renamed"
        ok, message = await ahook.test_connection()
    assert {r["id"] for r in every} == _held(graph_conn, "7003")
    assert {r["id"] for r in failed} == _held(graph_conn, "7003", "ERROR")
    assert ok, message
    assert [o["name"] for o in graph_conn.objects("async_request_set") if o["id"] == sets[0]["id"]] == [
        "renamed"
    ]


@pytest.mark.parametrize(
    "bad", ["act_abc", "act_", "acct_12", "12a", "0", "act_0", "", None, True, 1.5, ["act_1"]]
)
def test_one_strict_ad_account_normaliser(bad: object) -> None:
    with pytest.raises(
        GraphInputError, match=r"ad_account_id must be 'act_<digits>' or '<digits>', got"
    ) as err:
        normalize_ad_account_id(bad)
    assert repr(bad) in str(err.value)


def test_the_normaliser_accepts_digits_with_or_without_the_prefix() -> None:
    assert normalize_ad_account_id("act_42") == normalize_ad_account_id(42) == normalize_ad_account_id(" 42 ")
    assert normalize_ad_account_id(42) == "act_42"
    assert account_digits("act_42") == "42"


def test_listings_refuse_a_bad_account_before_any_call(graph_conn: EmulatorAdmin) -> None:
    before = graph_conn.http_calls()
    with GraphHook() as hook:
        for call in (hook.list_account_requests, hook.list_request_sets):
            with pytest.raises(GraphInputError, match="act_abc"):
                list(call("act_abc"))
        with pytest.raises(GraphInputError, match="act_x"):
            hook.start_insights_report("act_x", {"fields": ["impressions"]})
    assert graph_conn.http_calls() == before
    assert json.dumps(graph_conn.calls()).count("act_abc") == 0


def test_a_misspelt_call_option_is_refused_before_any_call(graph_conn: EmulatorAdmin) -> None:
    before = graph_conn.http_calls()
    refused = r"unexpected call option\(s\) \['parms'\]"
    with pytest.raises(TypeError, match=refused):
        GraphHook().request("GET", "me", parms={"fields": "id"})  # type: ignore[call-arg]

    async def call_async() -> None:
        async with GraphAsyncHook() as ahook:
            with pytest.raises(TypeError, match=refused):
                await ahook.request("GET", "me", parms={"fields": "id"})  # type: ignore[call-arg]

    asyncio.run(call_async())
    assert graph_conn.http_calls() == before
