"""Async request set submission (hooks/request_sets.py).

Pure parts (validation, encoding, splitting, naming) without HTTP; reconcile/create against the
emulator over HTTP through the real GraphHook.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from airflow_fb_async.exceptions import FacebookGraphError, GraphAmbiguousError, GraphInputError
from airflow_fb_async.hooks import request_set_plan as rsp
from airflow_fb_async.hooks import request_sets as rs
from airflow_fb_async.hooks.encoding import encode_body
from airflow_fb_async.hooks.ids import normalize_ad_account_id
from airflow_fb_async.hooks.references import reference_names
from tests.conftest import TEST_TOKEN


def req(name: str, relative_url: str = "act_1/campaigns", body: Any = "a=1") -> dict[str, Any]:
    return {"name": name, "relative_url": relative_url, "body": body}


def chain(prefix: str) -> list[dict[str, Any]]:
    """campaign -> adset -> ad, linked by references."""
    return [
        req(f"{prefix}-c", "act_1/campaigns", {"name": f"{prefix} campaign", "objective": "OUTCOME_SALES"}),
        req(
            f"{prefix}-s",
            "act_1/adsets",
            {"name": f"{prefix} adset", "campaign_id": f"{{result={prefix}-c:$.id}}"},
        ),
        req(f"{prefix}-a", "act_1/ads", {"name": f"{prefix} ad", "adset_id": f"{{result={prefix}-s:$.id}}"}),
    ]


# ------------------------------------------------------------------------------------------------
# Body encoding and references
# ------------------------------------------------------------------------------------------------


def test_string_body_is_kept_as_is() -> None:
    assert encode_body("name=x&status=PAUSED") == "name=x&status=PAUSED"


def test_dict_body_is_form_encoded_with_nested_values_as_compact_json() -> None:
    body = {
        "name": "Spring & summer",
        "targeting": {"geo_locations": {"countries": ["US", "FR"]}},
        "special_ad_categories": [],
        "is_dynamic": True,
        "skipped": None,
        "daily_budget": 1000,
    }
    encoded = encode_body(body)
    decoded = dict(urllib.parse.parse_qsl(encoded, keep_blank_values=True))
    assert decoded == {
        "name": "Spring & summer",
        "targeting": '{"geo_locations":{"countries":["US","FR"]}}',
        "special_ad_categories": "[]",
        "is_dynamic": "true",
        "daily_budget": "1000",
    }


def test_references_stay_verbatim_in_encoded_bodies() -> None:
    encoded = encode_body({"adset_id": "{result=s1:$.id}", "creative": {"creative_id": "{result=cr:$.id}"}})
    assert "adset_id={result=s1:$.id}" in encoded
    assert "{result=cr:$.id}" in encoded
    assert reference_names(encoded) == ["s1", "cr"]


def test_find_references_reads_percent_encoded_references() -> None:
    text = "adset_id=" + urllib.parse.quote("{result=my set:$.id}", safe="")
    assert reference_names(text) == ["my set"]


# ------------------------------------------------------------------------------------------------
# Validation: a table of bad inputs, each a clear GraphInputError
# ------------------------------------------------------------------------------------------------

BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("requests not a list", {"requests": {"name": "x"}}, "requests must be a list"),
    ("requests a string", {"requests": "[]"}, "requests must be a list"),
    ("idempotency_key empty", {"idempotency_key": " "}, "idempotency_key must be a non-empty string"),
    ("idempotency_key not a string", {"idempotency_key": 5}, "idempotency_key must be a non-empty string"),
    ("entry not a dict", {"requests": [req("a"), "b"]}, "request #1: must be a dict"),
    ("missing name", {"requests": [{"relative_url": "act_1/ads", "body": ""}]}, "'name' is required"),
    ("empty name", {"requests": [req("")]}, "'name' must be a non-empty string"),
    ("non-string name", {"requests": [req(3)]}, "'name' must be a non-empty string"),  # type: ignore[arg-type]
    ("missing relative_url", {"requests": [{"name": "a", "body": ""}]}, "'relative_url' is required"),
    ("empty relative_url", {"requests": [req("a", " ")]}, "'relative_url' must be a non-empty string"),
    ("missing body", {"requests": [{"name": "a", "relative_url": "act_1/ads"}]}, "'body' is required"),
    (
        "body wrong type",
        {"requests": [req("a", body=[1, 2])]},
        "'body' must be a URL-encoded string or a dict",
    ),
    ("duplicate names", {"requests": [req("a"), req("b"), req("a")]}, "request #2 'a': duplicate name"),
    (
        "reference to unknown name",
        {"requests": [req("a"), req("b", body="x={result=zzz:$.id}")]},
        "'zzz' is no request",
    ),
    (
        "reference to a later entry",
        {"requests": [req("a", body="x={result=b:$.id}"), req("b")]},
        "must point to an earlier one",
    ),
    ("self reference", {"requests": [req("a", "{result=a:$.id}/ads")]}, "references its own result"),
    ("method key", {"requests": [{**req("a"), "method": "GET"}]}, "POST-only"),
    ("unknown key", {"requests": [{**req("a"), "foo": 1}]}, "unsupported key 'foo'"),
    (
        "notification_uri not http",
        {"notification_uri": "ftp://x/y"},
        "notification_uri must be an absolute http(s)",
    ),
    (
        "notification_uri relative",
        {"notification_uri": "/hook"},
        "notification_uri must be an absolute http(s)",
    ),
    (
        "notification_mode",
        {"notification_mode": "ALWAYS"},
        "notification_mode must be one of OFF, ON_COMPLETE",
    ),
    ("name empty", {"name": "  "}, "name must be a non-empty string"),
    ("name too long", {"name": "n" * 256}, "at most 255"),
    (
        "name too long with part suffix",
        {"name": "n" * 250, "requests": [req(f"r{i}") for i in range(3)], "max_set_size": 2},
        "part suffix",
    ),
    ("ad account letters", {"ad_account_id": "act_abc"}, "ad_account_id must be"),
    ("ad account prefix only", {"ad_account_id": "act_"}, "ad_account_id must be"),
    ("ad account other prefix", {"ad_account_id": "acct_12"}, "ad_account_id must be"),
    ("ad account None", {"ad_account_id": None}, "ad_account_id must be"),
    ("max_set_size 0", {"max_set_size": 0}, "max_set_size must be in 1..1000"),
    ("max_set_size 1001", {"max_set_size": 1001}, "max_set_size must be in 1..1000"),
    (
        "chain bigger than a set",
        {"requests": chain("x"), "max_set_size": 2},
        "chain of 3 requests",
    ),
]


def plan_kwargs(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ad_account_id": "act_1", "requests": [req("a")], "name": "job"}
    base.update(overrides)
    return base


@pytest.mark.parametrize(("case", "overrides", "expected"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_raise_clear_errors(case: str, overrides: dict[str, Any], expected: str) -> None:
    kwargs = plan_kwargs(**overrides)
    with pytest.raises(GraphInputError, match=None) as info:
        rsp.plan_request_sets(
            kwargs.pop("ad_account_id"), kwargs.pop("requests"), kwargs.pop("name"), **kwargs
        )
    assert expected in str(info.value), str(info.value)


def test_account_id_and_notification_normalisation() -> None:
    plan = rsp.plan_request_sets(
        "123", [req("a")], "job", notification_uri="https://x.test/h", notification_mode="on_complete"
    )
    assert plan.ad_account_id == "act_123"
    assert plan.notification_mode == "ON_COMPLETE"
    assert normalize_ad_account_id("act_42") == "act_42"
    assert normalize_ad_account_id(42) == "act_42"


# ------------------------------------------------------------------------------------------------
# Splitting and naming
# ------------------------------------------------------------------------------------------------


def test_2500_requests_split_1000_1000_500_with_part_names() -> None:
    plan = rsp.plan_request_sets("act_1", [req(f"r{i}") for i in range(2500)], "big")
    assert [p.size for p in plan.parts] == [1000, 1000, 500]
    assert [p.name for p in plan.parts] == ["big [part 1/3]", "big [part 2/3]", "big [part 3/3]"]
    assert [e["name"] for e in plan.parts[2].entries][:2] == ["r2000", "r2001"]


def test_one_part_keeps_the_plain_name() -> None:
    plan = rsp.plan_request_sets("act_1", [req("a"), req("b")], "small")
    assert [p.name for p in plan.parts] == ["small"]


def test_chains_are_never_split_and_order_is_kept() -> None:
    # 4 chains of 3 interleaved with singles; parts of at most 5
    requests: list[dict[str, Any]] = []
    for k in range(4):
        requests.append(req(f"single{k}"))
        requests.extend(chain(f"c{k}"))
    plan = rsp.plan_request_sets("act_1", requests, "mix", max_set_size=5)
    assert all(p.size <= 5 for p in plan.parts)
    assert sum(p.size for p in plan.parts) == len(requests)
    for part in plan.parts:
        names = [e["name"] for e in part.entries]
        assert part.indexes == sorted(part.indexes)  # input order within parts
        for k in range(4):
            members = [n for n in names if n.startswith(f"c{k}-")]
            assert members in ([], [f"c{k}-c", f"c{k}-s", f"c{k}-a"])  # whole chain or nothing
    # greedy in order: [single0, c0 x3] (4; next is single1) -> [single0,c0,single1] = 5
    assert [e["name"] for e in plan.parts[0].entries] == ["single0", "c0-c", "c0-s", "c0-a", "single1"]


def test_components_join_diamonds() -> None:
    # d references b and c, which both reference a -> one component; e separate
    deps = [[], [0], [0], [1, 2], []]
    assert rsp.components(deps) == [[0, 1, 2, 3], [4]]
    assert rsp.split_into_parts(deps, 4, list("abcde")) == [[0, 1, 2, 3], [4]]


def test_split_is_deterministic() -> None:
    requests = [req(f"r{i}") for i in range(30)] + chain("z")
    a = rsp.plan_request_sets("act_1", requests, "n", max_set_size=7)
    b = rsp.plan_request_sets("act_1", requests, "n", max_set_size=7)
    assert a == b


# ------------------------------------------------------------------------------------------------
# Against the emulator, through the real GraphHook
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def hook(graph_conn: Any) -> Any:
    from airflow_fb_async.hooks.graph import GraphHook

    return GraphHook()


def test_2500_requests_create_three_sets_with_documented_fields(hook: Any, graph_conn: Any) -> None:
    requests = [req(f"r{i}", "act_77/campaigns", {"name": f"c{i}", "status": "PAUSED"}) for i in range(2500)]
    ids = rs.create_request_sets(
        hook, "77", requests, "bulk", notification_uri="http://127.0.0.1:9/n", notification_mode="off"
    )
    assert len(ids) == 3
    counters = graph_conn.counters()
    assert counters["request_sets_created"] == 3
    for k, (set_id, size) in enumerate(zip(ids, [1000, 1000, 500], strict=True), start=1):
        got = hook.get(set_id, params={"fields": "id,name,total_count,notification_uri,notification_mode"})
        assert got["id"] == set_id
        assert got["name"] == f"bulk [part {k}/3]"
        assert int(got["total_count"]) == size
        assert got["notification_mode"] == "OFF"
        assert got["notification_uri"] == "http://127.0.0.1:9/n"


def test_same_name_without_key_creates_new_sets_every_call(hook: Any, graph_conn: Any) -> None:
    """Issue 12: a daily job with a fixed name got yesterday's set back; its requests were never sent."""
    requests = [req(f"r{i}", "act_5/campaigns", "name=x&objective=OUTCOME_TRAFFIC") for i in range(5)]
    first = rs.create_request_sets(hook, "act_5", requests, "daily", max_set_size=2)
    second = rs.create_request_sets(hook, "act_5", requests, "daily", max_set_size=2)
    assert set(first).isdisjoint(second)
    assert graph_conn.counters()["request_sets_created"] == 6
    assert len(graph_conn.objects("async_request")) == 10  # the second day's requests were sent
    got = hook.get_request_sets(second, fields="id,name,total_count")
    assert [got[i]["name"] for i in second] == [f"daily [part {k}/3]" for k in (1, 2, 3)]


def test_same_key_returns_the_same_sets_whatever_the_name(hook: Any, graph_conn: Any) -> None:
    requests = [req(f"r{i}", "act_5/campaigns", "name=x") for i in range(5)]
    first = rs.create_request_sets(hook, "act_5", requests, "try 1", max_set_size=2, idempotency_key="k")
    creates = graph_conn.counters()["calls_by_kind"]["async_batch_create"]
    again = rs.create_request_sets(hook, "5", requests, "try 2", max_set_size=2, idempotency_key="k")
    assert again == first
    assert graph_conn.counters()["calls_by_kind"]["async_batch_create"] == creates == 3
    digest = rsp.key_digest("act_5", "k")
    got = hook.get_request_sets(first, fields="id,name")
    assert [got[i]["name"] for i in first] == [f"try 1 [part {k}/3 #{digest}]" for k in (1, 2, 3)]
    # another key, or the same key on another account, is another submission
    other = rs.create_request_sets(hook, "act_5", requests, "try 1", max_set_size=2, idempotency_key="k2")
    assert set(other).isdisjoint(first)
    assert graph_conn.counters()["request_sets_created"] == 6


def test_same_key_with_other_requests_is_a_clear_error(hook: Any, graph_conn: Any) -> None:
    rs.create_request_sets(hook, "act_6", [req("a", "act_6/campaigns", "name=x")], "job", idempotency_key="k")
    two = [req("a", "act_6/campaigns", "name=x"), req("b", "act_6/campaigns", "name=y")]
    with pytest.raises(FacebookGraphError, match="different number of requests"):
        rs.create_request_sets(hook, "act_6", two, "job", idempotency_key="k")
    with pytest.raises(FacebookGraphError, match="split into 1 part"):
        rs.create_request_sets(hook, "act_6", two, "job", idempotency_key="k", max_set_size=1)
    assert graph_conn.counters()["request_sets_created"] == 1


@pytest.mark.parametrize("fault", ["error_after_commit", "drop_after_commit"])
def test_uncertain_create_with_key_is_reconciled_not_resent(hook: Any, graph_conn: Any, fault: str) -> None:
    """Issue 12: a 500 answer to a committed create made 2 sets of the same name."""
    requests = [req(f"r{i}", "act_8/campaigns", "name=x") for i in range(4)]
    graph_conn.fault(fault, method="POST", path_regex="async_batch_requests")
    ids = rs.create_request_sets(hook, "act_8", requests, "lost", max_set_size=2, idempotency_key="k")
    assert len(ids) == 2
    assert graph_conn.counters()["request_sets_created"] == 2
    creates = [c for c in graph_conn.calls() if c["kind"] == "async_batch_create"]
    assert len(creates) == 2  # the one whose answer was lost was not sent again
    assert len(graph_conn.objects("async_request")) == 4
    # and the same call again finds both
    assert rs.create_request_sets(hook, "act_8", requests, "lost", max_set_size=2, idempotency_key="k") == ids
    assert graph_conn.counters()["request_sets_created"] == 2


@pytest.mark.parametrize("fault", ["error_after_commit", "drop_after_commit"])
def test_uncertain_create_without_key_raises_and_is_not_resent(
    hook: Any, graph_conn: Any, fault: str
) -> None:
    graph_conn.fault(fault, method="POST", path_regex="async_batch_requests")
    with pytest.raises(GraphAmbiguousError, match=r"part 1/1 'nokey'.*idempotency_key") as info:
        rs.create_request_sets(hook, "act_8", [req("a", "act_8/campaigns", "name=x")], "nokey")
    assert TEST_TOKEN not in str(info.value)
    assert graph_conn.counters()["request_sets_created"] == 1
    assert len([c for c in graph_conn.calls() if c["kind"] == "async_batch_create"]) == 1


def test_uncertain_create_that_did_not_commit_is_created_once(hook: Any, graph_conn: Any) -> None:
    """A 500 before the work is done: the lookup finds nothing, so the part is created (once)."""
    graph_conn.fault("500", method="POST", path_regex="async_batch_requests")
    ids = rs.create_request_sets(
        hook,
        "act_9",
        [req("a", "act_9/campaigns", "name=x")],
        "lost",
        idempotency_key="k",
        ambiguous_delay=0.01,
    )
    assert len(ids) == 1
    assert graph_conn.counters()["request_sets_created"] == 1
    assert len([c for c in graph_conn.calls() if c["kind"] == "async_batch_create"]) == 2


def test_known_ids_skip_the_listing_and_survive_a_rename(hook: Any, graph_conn: Any) -> None:
    requests = [req("a", "act_10/campaigns", "name=x")]
    ids = rs.create_request_sets(hook, "act_10", requests, "known", idempotency_key="k")
    hook.update_request_set(ids[0], name="renamed by a user")
    before = graph_conn.counters()["calls_by_kind"]
    again = rs.create_request_sets(hook, "act_10", requests, "known", idempotency_key="k", known_ids=ids)
    after = graph_conn.counters()["calls_by_kind"]
    assert again == ids
    assert after.get("get_edge", 0) == before.get("get_edge", 0)  # no listing of the account's sets
    assert after.get("async_batch_create", 0) == before.get("async_batch_create", 0)


def test_bad_input_makes_no_http_call(hook: Any, graph_conn: Any) -> None:
    before = graph_conn.http_calls()
    with pytest.raises(GraphInputError):
        rs.create_request_sets(hook, "act_1", [req("a"), req("a")], "dup")
    assert graph_conn.http_calls() == before


def test_dict_body_reaches_graph_url_encoded(hook: Any, graph_conn: Any) -> None:
    body = {"name": "x y&z", "targeting": {"countries": ["US"]}}
    (set_id,) = rs.create_request_sets(hook, "act_11", [req("a", "act_11/campaigns", body)], "form")
    (item,) = hook.list_requests(set_id, fields="id,input")
    sent = item["input"]["body"]
    assert dict(urllib.parse.parse_qsl(sent)) == {"name": "x y&z", "targeting": '{"countries":["US"]}'}


def test_hook_create_async_batch_delegates_with_options(hook: Any, graph_conn: Any) -> None:
    requests = [req(f"r{i}", "act_12/campaigns", "name=x&objective=OUTCOME_TRAFFIC") for i in range(3)]
    ids = hook.create_async_batch("act_12", requests, "via-hook", max_set_size=2, idempotency_key="day-1")
    assert len(ids) == 2
    assert hook.create_async_batch("12", requests, "via-hook", max_set_size=2, idempotency_key="day-1") == ids
    assert graph_conn.counters()["request_sets_created"] == 2
    graph_conn.fault("error_after_commit", method="POST", path_regex="async_batch_requests")
    other = hook.create_async_batch("12", requests, "via-hook", max_set_size=2, idempotency_key="day-2")
    assert set(other).isdisjoint(ids)
    assert graph_conn.counters()["request_sets_created"] == 4
