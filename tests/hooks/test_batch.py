"""Standard batch engine against the emulator over HTTP (no mocked transport)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.batch_validate import validate_requests
from airflow_fb_async.hooks.graph import GraphHook
from tests.conftest import TEST_TOKEN
from tests.hooks.test_batch_plan import BAD_INPUTS
from tests.waits import wait_for

if TYPE_CHECKING:
    from tests.emu_admin import EmulatorAdmin

FAST: dict[str, Any] = {"round_backoff": 0.01}


def get(url: str, **kw: Any) -> dict[str, Any]:
    return {"method": "GET", "relative_url": url, **kw}


def post(url: str, body: Any = None, **kw: Any) -> dict[str, Any]:
    return {"method": "POST", "relative_url": url, **({"body": body} if body is not None else {}), **kw}


def camp(name: str) -> dict[str, str]:
    return {"name": name, "objective": "OUTCOME_TRAFFIC"}


def ids_of(results: list[dict[str, Any]]) -> list[str]:
    return [r["body"]["id"] for r in results]


def batch_calls(emu: EmulatorAdmin) -> int:
    return int(emu.counters()["calls_by_kind"].get("batch", 0))


def test_10000_independent_gets_take_200_calls(graph_conn: EmulatorAdmin) -> None:
    n = 10_000
    baseline = graph_conn.counters()["max_concurrent_connections"]
    seen: list[tuple[int, int, int]] = []
    with GraphHook() as hook:
        results = hook.batch(
            [get(f"act_{i}?fields=id") for i in range(n)],
            progress=lambda d, t, e: seen.append((d, t, e)),
            **FAST,
        )
    counters = graph_conn.counters()
    assert counters["http_calls"] == 200
    assert counters["calls_by_kind"]["batch"] == 200
    assert len(results) == n
    assert all(r["code"] == 200 for r in results)
    assert [r["body"]["id"] for r in results] == [f"act_{i}" for i in range(n)]
    assert len(seen) == 200
    assert seen[-1] == (n, n, 0)
    # Open connections (keep-alive) beyond those already open at reset: the hook's pool of <= 4.
    assert counters["max_concurrent_connections"] - baseline <= 4


def test_reference_across_the_50_boundary(graph_conn: EmulatorAdmin) -> None:
    reqs: list[dict[str, Any]] = [post("act_1/campaigns", camp(f"c{i}"), name=f"c{i}") for i in range(60)]
    reqs[51] = get("{result=c49:$.id}?fields=id,name", name="c51")
    results = GraphHook().batch(reqs, **FAST)
    assert batch_calls(graph_conn) == 2
    assert [r["code"] for r in results] == [200] * 60
    assert results[51]["body"]["id"] == results[49]["body"]["id"]
    assert results[51]["body"]["name"] == "c49"
    assert graph_conn.counters()["objects_created"] == 59


def test_chain_of_120_creates(graph_conn: EmulatorAdmin) -> None:
    reqs = [post("act_1/campaigns", camp("chain-0"), name="c0")]
    reqs += [
        post("act_1/campaigns", camp(f"chain-{i}-after-{{result=c{i - 1}:$.id}}"), name=f"c{i}")
        for i in range(1, 120)
    ]
    results = GraphHook().batch(reqs, **FAST)
    assert all(r["code"] == 200 for r in results), [r for r in results if r["code"] != 200][:3]
    ids = ids_of(results)
    assert len(set(ids)) == 120
    by_id = {o["id"]: o for o in graph_conn.objects("campaign")}
    assert len(by_id) == 120
    for i in range(1, 120):
        assert by_id[ids[i]]["name"] == f"chain-{i}-after-{ids[i - 1]}"
    # 3 calls (50 + 50 + 20), one after the other.
    assert batch_calls(graph_conn) == 3


def test_nulls_are_retried_without_duplicates(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(null_fraction=0.2)
    n = 1000
    results = GraphHook().batch(
        [post("act_1/campaigns", camp(f"n{i}"), name=f"n{i}") for i in range(n)], **FAST
    )
    counters = graph_conn.counters()
    assert [r["code"] for r in results] == [200] * n
    assert len(set(ids_of(results))) == n
    assert counters["objects_created"] == n
    assert counters["faults_injected"]["null"] > 0
    names = {o["id"]: o["name"] for o in graph_conn.objects("campaign")}
    assert [names[i] for i in ids_of(results)] == [f"n{i}" for i in range(n)]


def test_nulls_with_references_retry_dependents(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(null_fraction=0.3)
    reqs = []
    for k in range(40):
        reqs.append(post("act_1/campaigns", camp(f"p{k}"), name=f"p{k}"))
        reqs.append(
            post("act_1/adsets", {"name": f"s{k}", "campaign_id": f"{{result=p{k}:$.id}}"}, name=f"s{k}")
        )
    results = GraphHook().batch(reqs, **FAST)
    assert all(r["code"] == 200 for r in results), [r for r in results if r["code"] != 200][:3]
    assert graph_conn.counters()["objects_created"] == 80
    adsets = {o["id"]: o for o in graph_conn.objects("adset")}
    for k in range(40):
        assert adsets[results[2 * k + 1]["body"]["id"]]["campaign_id"] == results[2 * k]["body"]["id"]


def test_entry_never_completing_becomes_an_error(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(null_fraction=1.0)
    results = GraphHook().batch([get("act_1"), get("act_2")], max_rounds=3, **FAST)
    assert batch_calls(graph_conn) == 3
    for r in results:
        assert r["code"] == 503
        assert r["body"]["error"]["type"] == "BatchEntryIncomplete"
        assert "after 3 attempts" in r["body"]["error"]["message"]


def test_code1_halves_the_call(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(code1_above=20)
    results = GraphHook().batch([get(f"act_{i}?fields=id") for i in range(100)], **FAST)
    assert [r["body"]["id"] for r in results] == [f"act_{i}" for i in range(100)]
    sizes = [c["batch_size"] for c in graph_conn.calls() if c["kind"] == "batch" and c["status"] == 200]
    assert max(sizes) <= 20
    assert sum(sizes) == 100


def test_code1_even_for_one_entry_gives_error_entries(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(code1_above=0)
    results = GraphHook().batch([get("act_1"), get("act_2"), get("act_3")], **FAST)
    assert all(r["code"] >= 400 for r in results)
    assert all(r["body"]["error"]["code"] == 1 for r in results)


def test_ambiguous_write_is_not_resent(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("drop_after_commit", count=1, method="POST", path_regex="^/?(v[0-9.]+/?)?$")
    reqs = [post("act_1/campaigns", camp("w0")), get("act_1?fields=id"), post("act_1/campaigns", camp("w1"))]
    results = GraphHook().batch(reqs, **FAST)
    assert results[0]["code"] == 504
    assert results[0]["body"]["error"]["type"] == "BatchEntryAmbiguous"
    assert results[2]["body"]["error"]["type"] == "BatchEntryAmbiguous"
    assert results[1]["code"] == 200
    assert results[1]["body"]["id"] == "act_1"
    # The dropped call did commit its two writes; nothing was created twice.
    assert graph_conn.counters()["objects_created"] == 2
    assert batch_calls(graph_conn) == 2


def test_gets_only_call_is_retried_after_a_drop(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("drop_after_commit", count=1, method="POST")
    results = GraphHook().batch([get("act_1?fields=id"), get("act_2?fields=id")], **FAST)
    assert [r["body"]["id"] for r in results] == ["act_1", "act_2"]


def test_transient_500_on_a_repeatable_call_is_retried_by_the_hook(graph_conn: EmulatorAdmin) -> None:
    # Only updates in the call: resending it is harmless, so the hook retries the 500s.
    hook = GraphHook()
    campaign = hook.post("act_1/campaigns", data=camp("x"))["id"]
    graph_conn.fault("500", count=2, method="POST")
    results = hook.batch([post(campaign, {"name": "renamed"}, name="x")], **FAST)
    assert results[0]["code"] == 200
    assert batch_calls(graph_conn) == 3
    assert [o["name"] for o in graph_conn.objects("campaign")] == ["renamed"]


def test_headers_dict_and_include_headers_false(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    with_headers = hook.batch([get("act_7?fields=id")], **FAST)
    assert isinstance(with_headers[0]["headers"], dict)
    assert any(k.lower() == "x-app-usage" for k in with_headers[0]["headers"])
    without = hook.batch([get("act_7?fields=id")], include_headers=False, **FAST)
    assert without[0]["headers"] == {}
    assert without[0]["body"]["id"] == "act_7"
    # The wire still asked for headers (the throttle needs them).
    assert hook.throttle.usage("act_7") is not None or hook.throttle.usage() is not None


def test_etag_304_returns_the_cached_body(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    first = hook.batch([get("act_9?fields=id,name")], **FAST)
    etag = next(v for k, v in first[0]["headers"].items() if k.lower() == "etag")
    second = hook.batch([get("act_9?fields=id,name", headers={"If-None-Match": etag})], **FAST)
    assert second[0]["code"] == 304
    assert second[0]["body"] == first[0]["body"]
    # A user-supplied list-of-strings header passes through as well.
    third = hook.batch([get("act_9?fields=id,name", headers=[f"If-None-Match: {etag}"])], **FAST)
    assert third[0]["code"] == 304


def test_omit_response_on_success_true_is_applied_client_side(graph_conn: EmulatorAdmin) -> None:
    results = GraphHook().batch(
        [
            post("act_1/campaigns", camp("a"), name="a", omit_response_on_success=True),
            get("{result=a:$.id}?fields=name"),
        ],
        **FAST,
    )
    assert results[0] == {"code": 200, "headers": results[0]["headers"], "body": None}
    assert results[1]["body"]["name"] == "a"


def test_error_entries_do_not_stop_the_batch(graph_conn: EmulatorAdmin) -> None:
    results = GraphHook().batch(
        [get("act_1?fields=id"), get("123456789123?fields=id", name="missing"), get("{result=missing:$.id}")],
        **FAST,
    )
    assert results[0]["code"] == 200
    assert results[1]["code"] >= 400
    assert "error" in results[1]["body"]
    assert results[2]["code"] >= 400


def test_attached_files_travel_with_their_call(graph_conn: EmulatorAdmin, tmp_path: Any) -> None:
    image = tmp_path / "img.jpg"
    image.write_bytes(b"\xff\xd8\xff fake jpeg")
    reqs = [post("act_1/adimages", name="img", attached_files="f1")]
    reqs += [get(f"act_{i}?fields=id") for i in range(60)]
    results = GraphHook().batch(reqs, files={"f1": image, "unused": b"zz"}, **FAST)
    assert results[0]["code"] == 200
    hashes = [v["hash"] for v in results[0]["body"]["images"].values()]
    assert len(hashes) == 1
    assert hashes[0]
    assert all(r["code"] == 200 for r in results[1:])


def test_concurrency_is_bounded(graph_conn: EmulatorAdmin) -> None:
    """Three batch calls go out at once, never more: held in flight by a 600 s latency, the first
    three are all counted by the emulator (no thread-timing luck needed); a reset drops them, and the
    hook resends those reads and finishes, still at most three at a time."""
    graph_conn.config(latency=600)
    results: list[list[dict[str, Any]]] = []

    def run() -> None:
        with GraphHook() as hook:
            results.append(
                hook.batch([get(f"act_{i}?fields=id") for i in range(500)], max_concurrency=3, **FAST)
            )

    worker = threading.Thread(target=run)
    worker.start()
    wait_for(graph_conn.http_calls, lambda n: n >= 3, "three batch calls in flight")
    assert graph_conn.counters()["max_concurrent_requests"] == 3  # each held: none has answered
    graph_conn.reset()  # latency back to 0; the three held calls drop with no answer
    worker.join()
    (out,) = results
    assert [e["code"] for e in out] == [200] * 500
    assert [e["body"]["id"] for e in out] == [f"act_{i}" for i in range(500)]
    assert graph_conn.counters()["calls_by_kind"]["batch"] == 10  # since the reset (3 of them resent)
    # Never more than three: a one-sided bound, checked over a whole run of 50 ms calls (requests
    # the emulator served at the same time; open idle sockets of other clients do not count).
    graph_conn.reset()
    graph_conn.config(latency=0.05)
    with GraphHook() as hook:
        hook.batch([get(f"act_{i}?fields=id") for i in range(500)], max_concurrency=3, **FAST)
    counters = graph_conn.counters()
    assert counters["calls_by_kind"]["batch"] == 10
    assert counters["max_concurrent_requests"] <= 3


@pytest.mark.parametrize(("requests", "files", "message"), BAD_INPUTS[:16])
def test_bad_input_makes_no_http_call(
    graph_conn: EmulatorAdmin, requests: Any, files: Any, message: str
) -> None:
    before = graph_conn.http_calls()
    with pytest.raises(GraphInputError):
        GraphHook().batch(requests, files=files)
    assert graph_conn.http_calls() == before


def test_token_never_in_results(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(code1_above=0)
    results = GraphHook().batch([post("act_1/campaigns", camp("x"))], **FAST)
    assert results[0]["code"] >= 400
    assert TEST_TOKEN not in json.dumps(results)


def test_paged_entry_links_carry_no_token(graph_conn: EmulatorAdmin) -> None:
    # Graph writes the batch's access_token into paging.next of a paged entry: results go to XCom.
    with GraphHook() as hook:
        for i in range(3):
            hook.post("act_1/campaigns", camp(f"c{i}"))
        results = hook.batch([get("act_1/campaigns?limit=1")], **FAST)
    body = results[0]["body"]
    assert results[0]["code"] == 200
    assert len(body["data"]) == 1
    assert "access_token" not in body["paging"]["next"]
    assert "after=" in body["paging"]["next"]
    assert TEST_TOKEN not in json.dumps(results)
    # The cleaned link still works with the hook (auth travels in the header).
    with GraphHook() as hook:
        assert len(hook.get(body["paging"]["next"])["data"]) == 1


def test_short_batch_answer_never_resends_writes(graph_conn: EmulatorAdmin) -> None:
    """Graph answers with fewer entries than were sent: the missing writes may have run, so they are
    reported ambiguous (504) and not resent; the missing GETs are simply read again."""
    graph_conn.fault("short_batch", count=1)
    requests = [get("me?fields=id"), get("act_9?fields=id")] + [
        post("act_9/campaigns", camp(f"short-{i}")) for i in range(4)
    ]
    with GraphHook() as hook:
        results = hook.batch(requests, **FAST)
    codes = [r["code"] for r in results]
    # the emulator ran all six and answered the first three: 2 GETs + 1 write known, 3 writes unknown
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [504, 504, 504]
    assert all(r["body"]["error"]["type"] == "BatchEntryAmbiguous" for r in results[3:])
    names = sorted(o["name"] for o in graph_conn.objects("campaign"))
    assert names == [f"short-{i}" for i in range(4)]  # each write ran exactly once
    assert graph_conn.counters()["calls_by_kind"]["batch"] == 1  # nothing resent


def test_short_batch_answer_rereads_missing_gets(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("short_batch", count=1)
    with GraphHook() as hook:
        results = hook.batch([get(f"act_{i}?fields=id") for i in range(6)], **FAST)
    assert [r["body"]["id"] for r in results] == [f"act_{i}" for i in range(6)]
    assert graph_conn.counters()["calls_by_kind"]["batch"] == 2


def adset_names(graph_conn: EmulatorAdmin, results: list[dict[str, Any]]) -> list[tuple[str, str]]:
    by_id = {o["id"]: o for o in graph_conn.objects("adset")}
    return [(by_id[r["body"]["id"]]["name"], by_id[r["body"]["id"]]["campaign_id"]) for r in results]


def test_adsets_of_one_campaign_go_to_different_calls(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    campaign = hook.post("act_1/campaigns", data=camp("parent"))["id"]
    reqs = [post("act_1/adsets", {"name": f"s{i}", "campaign_id": campaign}, name=f"s{i}") for i in range(6)]
    results = hook.batch(reqs, **FAST)
    assert [r["code"] for r in results] == [200] * 6
    assert batch_calls(graph_conn) == 6  # one ad set of the campaign per call
    assert len(graph_conn.objects("adset")) == 6
    assert adset_names(graph_conn, results) == [(f"s{i}", campaign) for i in range(6)]


def test_adsets_of_a_campaign_created_in_the_batch(graph_conn: EmulatorAdmin) -> None:
    reqs = [post("act_1/campaigns", camp("parent"), name="p")]
    reqs += [post("act_1/adsets", f"name=s{i}&campaign_id={{result=p:$.id}}", name=f"s{i}") for i in range(6)]
    results = GraphHook().batch(reqs, **FAST)
    assert [r["code"] for r in results] == [200] * 7
    # Call 1: the campaign and s0 (Graph resolves the reference); then s1..s5, one per call,
    # their reference resolved client-side.
    assert batch_calls(graph_conn) == 6
    campaign = results[0]["body"]["id"]
    assert len(graph_conn.objects("adset")) == 6
    assert adset_names(graph_conn, results[1:]) == [(f"s{i}", campaign) for i in range(6)]


def test_depends_on_list_in_one_call_needs_every_dependency(graph_conn: EmulatorAdmin) -> None:
    reqs = [
        post("act_1/campaigns", {"name": "no objective"}, name="a"),  # fails: objective missing
        get("act_1?fields=id", name="b"),
        post("act_1/campaigns", camp("after-a-and-b"), depends_on=["a", "b"]),
        post("act_1/campaigns", camp("after-b"), depends_on=["b"]),
    ]
    results = GraphHook().batch(reqs, **FAST)
    assert [r["code"] for r in results] == [400, 200, 424, 200]
    assert results[2]["body"]["error"]["type"] == "BatchDependencyFailed"
    assert "'a'" in results[2]["body"]["error"]["message"]
    assert [o["name"] for o in graph_conn.objects("campaign")] == ["after-b"]
    assert batch_calls(graph_conn) == 1


def test_depends_on_list_across_calls(graph_conn: EmulatorAdmin) -> None:
    reqs = [
        post("act_1/campaigns", {"name": "no objective"}, name="a"),
        get("act_1?fields=id", name="b"),
        post("act_1/campaigns", camp("c"), depends_on=["a", "b"]),
        post("act_1/campaigns", camp("d"), depends_on="b"),
    ]
    results = GraphHook().batch(reqs, chunk_size=2, **FAST)  # a and b in call 1, c and d later
    assert [r["code"] for r in results] == [400, 200, 424, 200]
    assert results[2]["body"]["error"]["type"] == "BatchDependencyFailed"
    assert [o["name"] for o in graph_conn.objects("campaign")] == ["d"]
    assert [c["batch_size"] for c in graph_conn.calls()] == [2, 1]  # c was never sent


def test_depends_on_list_all_succeeded_runs(graph_conn: EmulatorAdmin) -> None:
    reqs = [
        post("act_1/campaigns", camp("a"), name="a"),
        post("act_1/campaigns", camp("b"), name="b"),
        post("act_1/campaigns", camp("c"), depends_on=["a", "b"]),
    ]
    results = GraphHook().batch(reqs, **FAST)
    assert [r["code"] for r in results] == [200, 200, 200]
    assert sorted(o["name"] for o in graph_conn.objects("campaign")) == ["a", "b", "c"]


def test_access_token_values_in_results_survive_but_the_connection_token_does_not(
    graph_conn: EmulatorAdmin,
) -> None:
    # A page token asked for with fields=access_token is data: batch() returns it like get() does.
    hook = GraphHook()
    spec = {"page_id": "1", "access_token": "PAGE-TOKEN-123456789"}
    creative = hook.post("act_1/adcreatives", data={"name": TEST_TOKEN, "object_story_spec": spec})["id"]
    direct = hook.get(creative, params={"fields": "object_story_spec"})
    results = hook.batch([get(f"{creative}?fields=object_story_spec,name")], **FAST)
    assert results[0]["body"]["object_story_spec"] == direct["object_story_spec"] == spec
    assert results[0]["body"]["name"] == "***"  # the connection's own token is scrubbed
    assert TEST_TOKEN not in json.dumps(results)


def test_progress_is_logged_at_info_throttled(
    graph_conn: EmulatorAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="airflow_fb_async.hooks.batch"):
        GraphHook().batch([get(f"act_{i}?fields=id") for i in range(2000)], max_concurrency=4, **FAST)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch progress:")]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.getMessage() in lines)
    # Calls are counted when they are over, not when sent: the last line matches the emulator.
    assert graph_conn.http_calls() == 40
    assert lines[-1] == "batch progress: 2000/2000 entries done, 0 errors, 40 calls finished"
    finished = [int(line.split(", ")[-1].split()[0]) for line in lines]
    assert finished == sorted(finished)
    assert 2 <= len(lines) <= 21  # about every 5%, not once per call


def test_batch_engine_does_not_import_the_hook() -> None:
    code = (
        "import sys, airflow_fb_async.hooks.batch; "
        "assert 'airflow_fb_async.hooks.graph' not in sys.modules, 'batch imports graph'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize(
    "text",
    [
        '{"success":true}',
        '[1, {"a": [2, 3]}]',
        "{}",
        "[]",
        ' {"a": 1}',
        '{"a": 1} ',
        '{"a": 1}\n',
        '{"a": 1}{"b": 2}',
        '{"a": 1}x',
        '{"a": }',
        '{"a": NaN}',
        "[1, 2",
        "{",
        "}",
        "{}]",
        '"a string"',
        "42",
        "null",
        "",
        "   ",
        "not json at all",
        "\ufeff{}",
        '{"k": "\\u00e9\\ud83d\\ude00"}',
    ],
)
def test_entry_bodies_parse_as_json_loads_does(text: str) -> None:
    """The fast path of ``parse_body`` (the C scanner called directly) answers what json.loads
    answers; a text that is not JSON stays text, a blank one is None."""
    from airflow_fb_async.hooks.batch_outcomes import parse_body

    try:
        expected: Any = json.loads(text) if text.strip() else None
    except ValueError:
        expected = text
    got = parse_body(text)
    assert got == expected or (got != got and expected != expected)  # NaN stays NaN
    assert type(got) is type(expected)


def test_each_distinct_usage_reading_of_a_call_reaches_the_throttle() -> None:
    """Entry headers repeat from entry to entry (Graph sends the same usage on most): a reading is
    fed to the throttle once per call and account, never dropped for another account.

    Pure: the emulator's own call headers already name every account of the call, so over HTTP the
    entries' readings cannot be told apart from the call's.
    """
    from types import SimpleNamespace

    from airflow_fb_async.hooks.batch_call import CallMaker
    from airflow_fb_async.hooks.batch_outcomes import DONE, BatchLedger

    observed: list[tuple[str | None, dict[str, str]]] = []

    class Throttle:
        def observe(self, headers: dict[str, str], account_id: str | None = None) -> None:
            observed.append((account_id, dict(headers)))

    entries = validate_requests([post(f"act_{a}", {"name": "x"}) for a in (1, 2, 1, 1, 3)])
    core = SimpleNamespace(scrub=SimpleNamespace(secrets_only=str), throttle=Throttle())
    calls = CallMaker(SimpleNamespace(core=core), entries, {}, BatchLedger(entries, 3))  # type: ignore[arg-type]
    usage = [{"name": "X-Ad-Account-Usage", "value": '{"acc_id_util_pct":10}'}]
    other = [{"name": "x-ad-account-usage", "value": '{"acc_id_util_pct":20}'}]
    answer = [
        {"code": 200, "headers": h, "body": '{"success":true}'} for h in (usage, usage, usage, other, usage)
    ]
    outcomes: dict[int, Any] = {}
    calls._read_answer([0, 1, 2, 3, 4], answer, outcomes)
    assert [o.kind for o in outcomes.values()] == [DONE] * 5
    assert [a for a, _ in observed] == ["1", "2", "1", "3"]
    assert observed[2][1] == {"x-ad-account-usage": '{"acc_id_util_pct":20}'}


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_rounds": True}, "max_rounds"),
        ({"max_ads_per_chunk": 0}, "max_ads_per_chunk"),
        ({"max_adsets_per_campaign_per_chunk": "5"}, "max_adsets_per_campaign_per_chunk"),
        ({"chunk_size": 51}, "chunk_size"),
    ],
)
def test_bad_batch_settings_fail_before_any_call(
    graph_conn: EmulatorAdmin, settings: dict[str, Any], named: str
) -> None:
    with pytest.raises(GraphInputError, match=named):
        GraphHook().batch([get("me")], **settings)
    with pytest.raises(TypeError, match="max_concurency"):
        GraphHook().batch([get("me")], max_concurency=2)
    assert graph_conn.http_calls() == 0
