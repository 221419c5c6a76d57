"""Exactly-once writes (issue 12) against the emulator over HTTP: plain calls and standard batches.

Every write is repeatable (update of one object, delete) or not (create on an edge): an uncertain
outcome (no answer, 5xx, codes 1/2, is_transient) of a non-repeatable write is never resent.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_fb_async.exceptions import GraphAmbiguousError, GraphInputError
from airflow_fb_async.hooks.graph import GraphAsyncHook, GraphHook

if TYPE_CHECKING:
    from tests.emu_admin import EmulatorAdmin

FAST: dict[str, Any] = {"round_backoff": 0.01}
ROOT = r"^/?(v[0-9.]+/?)?$"  # the standard batch POST


def get(url: str, **kw: Any) -> dict[str, Any]:
    return {"method": "GET", "relative_url": url, **kw}


def post(url: str, body: Any = None, **kw: Any) -> dict[str, Any]:
    return {"method": "POST", "relative_url": url, **({"body": body} if body is not None else {}), **kw}


def camp(name: str) -> dict[str, str]:
    return {"name": name, "objective": "OUTCOME_TRAFFIC"}


def kinds(emu: EmulatorAdmin) -> dict[str, int]:
    return {k: v for k, v in emu.counters()["calls_by_kind"].items() if v}


def names(emu: EmulatorAdmin, type_: str = "campaign") -> list[str]:
    return sorted(o["name"] for o in emu.objects(type_))


def ambiguous(result: dict[str, Any]) -> bool:
    return result["code"] == 504 and result["body"]["error"]["type"] == "BatchEntryAmbiguous"


# ---- classification -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "repeatable"),
    [
        ("GET", "act_1/campaigns", True),
        ("DELETE", "6004251715639", True),
        ("POST", "6004251715639", True),
        ("POST", "act_123", True),
        ("POST", "/v25.0/6004251715639?fields=id", True),
        ("POST", "act_123/ads", False),
        ("POST", "act_123/async_batch_requests", False),
        ("POST", "v25.0/act_123/campaigns", False),
        ("POST", "", False),  # the standard batch itself
        ("PUT", "123", False),
    ],
)
def test_every_write_is_classified(method: str, path: str, repeatable: bool) -> None:
    from airflow_fb_async.hooks.retry import is_repeatable

    assert is_repeatable(method, path) is repeatable


def test_bad_idempotent_key_fails_before_any_call(graph_conn: EmulatorAdmin) -> None:
    with pytest.raises(GraphInputError, match=r"#1 'x': idempotent must be true or false, got str 'yes'"):
        GraphHook().batch([get("me"), post("act_1/campaigns", camp("x"), name="x", idempotent="yes")])
    assert graph_conn.http_calls() == 0


# ---- plain calls ----------------------------------------------------------------------------------


def test_create_answered_500_after_commit_is_ambiguous_and_not_resent(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("error_after_commit", method="POST", path_regex="campaigns")
    with pytest.raises(GraphAmbiguousError) as info:
        GraphHook().post("act_1/campaigns", data=camp("once"))
    assert info.value.code == 2
    assert info.value.http_status == 500
    assert names(graph_conn) == ["once"]
    assert kinds(graph_conn) == {"create": 1}


async def test_async_hook_create_answered_500_after_commit_is_not_resent(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("error_after_commit", method="POST", path_regex="campaigns")
    async with GraphAsyncHook() as hook:
        with pytest.raises(GraphAmbiguousError):
            await hook.post("act_1/campaigns", data=camp("once"))
        campaign = (await hook.post("act_1/campaigns", data=camp("two")))["id"]
        graph_conn.fault("error_after_commit", method="POST")
        await hook.post(campaign, data={"name": "renamed"})  # an update: retried
    assert names(graph_conn) == ["once", "renamed"]
    assert kinds(graph_conn) == {"create": 2, "update": 2}


def test_create_override_idempotent_true_is_resent(graph_conn: EmulatorAdmin) -> None:
    # The caller says resending is harmless: the hook retries (and Graph makes two).
    graph_conn.fault("error_after_commit", method="POST", path_regex="campaigns")
    GraphHook().post("act_1/campaigns", data=camp("twice"), idempotent=True)
    assert names(graph_conn) == ["twice", "twice"]


def test_update_override_idempotent_false_is_not_resent(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    campaign = hook.post("act_1/campaigns", data=camp("c"))["id"]
    graph_conn.fault("500", method="POST")
    with pytest.raises(GraphAmbiguousError):
        hook.post(campaign, data={"name": "x"}, idempotent=False)
    assert kinds(graph_conn) == {"create": 1, "update": 1}


def test_update_whose_connection_dropped_is_resent(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    campaign = hook.post("act_1/campaigns", data=camp("c"))["id"]
    graph_conn.fault("drop_after_commit", method="POST")
    assert hook.post(campaign, data={"status": "PAUSED"}) in (True, {"success": True})
    assert kinds(graph_conn) == {"create": 1, "update": 2}
    assert [o["status"] for o in graph_conn.objects("campaign")] == ["PAUSED"]


def test_update_answered_500_is_retried(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    campaign = hook.post("act_1/campaigns", data=camp("c"))["id"]
    graph_conn.fault("error_after_commit", method="POST")
    hook.post(campaign, data={"name": "renamed"})
    assert names(graph_conn) == ["renamed"]
    assert kinds(graph_conn) == {"create": 1, "update": 2}


def test_throttled_create_is_retried(graph_conn: EmulatorAdmin) -> None:
    # Throttling means "not done": retried for every method, creates included.
    graph_conn.fault("throttle", method="POST", path_regex="campaigns")
    GraphHook().post("act_1/campaigns", data=camp("t"))
    assert names(graph_conn) == ["t"]


# ---- standard batches -----------------------------------------------------------------------------


def test_batch_of_creates_answered_500_after_commit(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("error_after_commit", method="POST", path_regex=ROOT)
    reqs = [post("act_1/campaigns", camp(f"c{i}"), name=f"c{i}") for i in range(3)]
    results = GraphHook().batch(reqs, **FAST)
    assert all(ambiguous(r) for r in results)
    assert names(graph_conn) == ["c0", "c1", "c2"]  # 3 objects, not 6
    assert kinds(graph_conn) == {"batch": 1}


def test_mixed_batch_answered_500_after_commit(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    campaign = hook.post("act_1/campaigns", data=camp("old"))["id"]
    graph_conn.fault("error_after_commit", method="POST", path_regex=ROOT)
    reqs = [
        get("act_1?fields=id"),
        post(campaign, {"name": "new"}),
        post("act_1/campaigns", camp("n0")),
        {"method": "DELETE", "relative_url": "act_1/adlabels_missing"},
        post("act_1/campaigns", camp("n1")),
    ]
    results = hook.batch(reqs, **FAST)
    assert results[0] == {"code": 200, "headers": results[0]["headers"], "body": {"id": "act_1"}}
    assert results[1]["code"] == 200
    assert ambiguous(results[2])
    assert ambiguous(results[4])
    assert results[3]["code"] >= 400
    assert not ambiguous(results[3])
    assert names(graph_conn) == ["n0", "n1", "new"]
    sizes = [c["batch_size"] for c in graph_conn.calls() if c["kind"] == "batch"]
    assert sizes == [5, 3]  # the resend carried the read, the update and the delete only


def test_entry_answered_500_after_commit(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    campaign = hook.post("act_1/campaigns", data=camp("old"))["id"]
    graph_conn.fault("entry_error_after_commit", entries=[0, 1])
    results = hook.batch([post("act_1/campaigns", camp("n")), post(campaign, {"name": "renamed"})], **FAST)
    assert ambiguous(results[0])
    assert results[1]["code"] == 200
    assert names(graph_conn) == ["n", "renamed"]
    sizes = [c["batch_size"] for c in graph_conn.calls() if c["kind"] == "batch"]
    assert sizes == [2, 1]  # the update was sent again, the create never


class WireSpy(GraphHook):
    """The real hook over HTTP, keeping the ``batch`` field of every call it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.wire: list[list[dict[str, Any]]] = []

    def request(self, method: str, path: str, **kw: Any) -> Any:
        data = kw.get("data")
        if path == "" and isinstance(data, dict) and "batch" in data:
            self.wire.append(json.loads(data["batch"]))
        return super().request(method, path, **kw)


def test_entry_override_idempotent_true_is_resent(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("entry_error_after_commit", entries=[0])
    hook = WireSpy()
    results = hook.batch([post("act_1/campaigns", camp("n"), idempotent=True)], **FAST)
    assert results[0]["code"] == 200
    assert names(graph_conn) == ["n", "n"]  # the caller's choice: it was resent
    assert len(hook.wire) == 2
    assert all("idempotent" not in entry for call in hook.wire for entry in call)  # never sent


def test_drop_after_commit_makes_creates_504_and_resends_the_rest(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("drop_after_commit", method="POST", path_regex=ROOT)
    results = GraphHook().batch([post("act_1/campaigns", camp("d")), get("act_1?fields=id")], **FAST)
    assert ambiguous(results[0])
    assert results[1]["body"] == {"id": "act_1"}
    assert names(graph_conn) == ["d"]


def test_code1_on_a_one_entry_read_is_retried(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("code1", count=2)
    results = GraphHook().batch([get("act_1?fields=id")], **FAST)
    assert results[0]["body"] == {"id": "act_1"}
    assert kinds(graph_conn) == {"batch": 3}


def test_code1_halved_down_to_one_entry_is_retried(graph_conn: EmulatorAdmin) -> None:
    # 2 entries -> code 1 -> halves; the first half (one entry) meets code 1 twice more: retried.
    graph_conn.fault("code1", count=3)
    results = GraphHook().batch([get("act_1?fields=id"), get("act_2?fields=id")], **FAST)
    assert [r["body"] for r in results] == [{"id": "act_1"}, {"id": "act_2"}]
    sizes = [c["batch_size"] for c in graph_conn.calls()]
    assert sizes == [2, 1, 1, 1, 1]


def test_code1_on_a_call_with_creates(graph_conn: EmulatorAdmin) -> None:
    # Code 1 is an uncertain outcome: the create is 504 (never resent), the reads are halved.
    graph_conn.fault("code1", count=1)
    reqs = [get("act_1?fields=id"), post("act_1/campaigns", camp("c")), get("act_2?fields=id")]
    results = GraphHook().batch(reqs, **FAST)
    assert ambiguous(results[1])
    assert [results[0]["body"], results[2]["body"]] == [{"id": "act_1"}, {"id": "act_2"}]
    assert [c["batch_size"] for c in graph_conn.calls()] == [3, 1, 1]
    assert kinds(graph_conn) == {"batch": 3}


def test_code1_on_a_one_entry_create_is_ambiguous(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("code1", count=1)
    results = GraphHook().batch([post("act_1/campaigns", camp("c"))], **FAST)
    assert ambiguous(results[0])
    assert kinds(graph_conn) == {"batch": 1}


def test_throttled_batch_of_creates_is_retried(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("throttle", method="POST", path_regex=ROOT)
    results = GraphHook().batch([post("act_1/campaigns", camp(f"t{i}")) for i in range(3)], **FAST)
    assert [r["code"] for r in results] == [200] * 3
    assert names(graph_conn) == ["t0", "t1", "t2"]
    assert kinds(graph_conn) == {"batch": 2}
