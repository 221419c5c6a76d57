"""Pure parts of the standard batch engine: validation, body encoding, chunk planning."""

from __future__ import annotations

import math
import re
from pathlib import Path
from urllib.parse import parse_qsl, quote

import pytest

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.batch_plan import plan_chunks
from airflow_fb_async.hooks.batch_validate import validate_requests
from airflow_fb_async.hooks.encoding import encode_body, quote_all, quote_keeping_references
from airflow_fb_async.hooks.references import find_references, has_reference_marker


def get(url: str, **kw: object) -> dict[str, object]:
    return {"method": "GET", "relative_url": url, **kw}


def post(url: str, **kw: object) -> dict[str, object]:
    return {"method": "POST", "relative_url": url, **kw}


# ---- validation ----------------------------------------------------------------------------------


def test_normalises_entries() -> None:
    entries = validate_requests(
        [
            {
                "method": "get",
                "relative_url": "/me?fields=id",
                "name": "me",
                "headers": {"If-None-Match": '"e1"'},
            },
            post(
                "act_1/ads",
                body={"name": "x", "targeting": {"geo_locations": {"countries": ["US"]}}, "creative": None},
                depends_on="me",
                headers=[{"name": "X-A", "value": "1"}, "X-B: 2"],
            ),
            post("act_1/adimages", attached_files="f1, f2", name="img"),
        ],
        files={"f1": b"x", "f2": b"y"},
    )
    assert entries[0].method == "GET"
    assert entries[0].relative_url == "me?fields=id"
    assert entries[0].headers == ('If-None-Match: "e1"',)
    assert entries[1].deps == (0,)
    assert entries[1].is_ad_create
    assert entries[1].headers == ("X-A: 1", "X-B: 2")
    assert dict(parse_qsl(entries[1].body or "")) == {
        "name": "x",
        "targeting": '{"geo_locations":{"countries":["US"]}}',
    }
    assert entries[2].attached_files == ("f1", "f2")
    assert not entries[2].is_ad_create


def test_body_encoding_keeps_references_readable() -> None:
    body = encode_body({"creative": {"creative_id": "{result=cr:$.id}"}, "name": "a b&c", "on": True})
    assert "{result=cr:$.id}" in body  # type: ignore[operator]
    parsed = dict(parse_qsl(body or ""))
    assert parsed == {"creative": '{"creative_id":"{result=cr:$.id}"}', "name": "a b&c", "on": "true"}
    assert encode_body("a=1&b=2") == "a=1&b=2"
    assert encode_body(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "".join(map(chr, range(128))),  # every ASCII character
        "name",
        "",
        "a b&c=d+e/f?g#h%i",
        "héllo wörld ✓ 日本",
        "\U0001f600 emoji",
    ],
)
def test_fast_quote_is_urllib_quote(text: str) -> None:
    """The fast path of body encoding writes exactly what ``quote(text, safe="")`` writes."""
    assert quote_all(text) == quote(text, safe="")
    assert quote_keeping_references(text) == quote(text, safe="")


def test_fast_quote_refuses_what_urllib_refuses() -> None:
    with pytest.raises(UnicodeEncodeError):
        quote("\udc80", safe="")
    with pytest.raises(UnicodeEncodeError):
        quote_all("\udc80")


@pytest.mark.parametrize(
    ("text", "marked"),
    [
        ("{result=a:$.id}", True),
        ("x={result=", True),  # malformed, still a marker: validation names it
        ("%7Bresult%3Da%3A%24.id%7D", True),
        ("%7bRESULT%3da", True),
        ("name=a%20b", False),
        ("{results=a}", False),
        ("", False),
        (None, False),
    ],
)
def test_reference_marker(text: str | None, marked: bool) -> None:
    assert has_reference_marker(text) is marked


def test_references_raw_and_encoded() -> None:
    refs = find_references("x={result=a:$.id}&y=%7Bresult%3Db%3A%24.data.0.id%7D")
    assert [(r.name, r.path, r.encoded) for r in refs] == [("a", "$.id", False), ("b", "$.data.0.id", True)]


def test_references_and_depends_on_build_deps() -> None:
    entries = validate_requests(
        [
            post("act_1/adimages", name="img", attached_files="f"),
            post("act_1/adcreatives", name="cr", body="image_hash={result=img:$.images.*.hash}"),
            post("act_1/ads", body='creative={"creative_id":"{result=cr:$.id}"}', depends_on=["img"]),
            get("{result=cr:$.id}?fields=name"),
        ],
        files={"f": b"data"},
    )
    assert [e.deps for e in entries] == [(), (0,), (0, 1), (1,)]


BAD_INPUTS: list[tuple[object, dict[str, object] | None, str]] = [
    ("not a list", None, "must be a list"),
    ({"method": "GET"}, None, "must be a list"),
    ([get("me"), "oops"], None, "request #1: must be a dict"),
    ([{"relative_url": "me"}], None, "missing 'method'"),
    ([{"method": "GET"}], None, "missing 'relative_url'"),
    ([{"method": "PATCH", "relative_url": "me"}], None, "unknown method"),
    ([{"method": "GET", "relative_url": 5}], None, "relative_url must be a string"),
    ([get("  ")], None, "relative_url is empty"),
    ([get("me", body="a=1")], None, "cannot have a body"),
    ([{"method": "DELETE", "relative_url": "1", "body": {"a": 1}}], None, "cannot have a body"),
    ([get("me", name="a"), get("you", name="a")], None, "duplicate name 'a'"),
    ([get("me"), get("{result=nope:$.id}")], None, "unknown name 'nope'"),
    ([get("me", depends_on="nope")], None, "unknown name 'nope'"),
    ([get("{result=later:$.id}"), get("me", name="later")], None, "comes later"),
    ([get("me", name="self", depends_on="self")], None, "itself"),
    ([post("act_1/adimages", attached_files="img")], None, "not in files"),
    ([get("{result=a:id}", name="b"), get("x", name="a")], None, "comes later"),
    ([get("me", name="a"), get("{result=a:id}")], None, "must start with '$'"),
    ([get("me", name="a"), get("{result=a:$..id}")], None, "expected a name"),
    ([get("me", name="a"), get("x?{result=a:$.id")], None, "malformed reference"),
    ([get("me", relative_uri="x")], None, "unknown key"),
    ([get("me", name="has space")], None, "name must be"),
    ([get("me", headers="X: y")], None, "headers must be"),
    ([get("me", headers=["no colon"])], None, "Name: value"),
    ([get("me", headers={"X-A": "a\r\nInjected: 1"})], None, "line break"),
    ([get("me", omit_response_on_success="yes")], None, "omit_response_on_success"),
    ([post("me", body=b"raw")], None, "body must be"),
    ([post("me", body={"a": object()})], None, "JSON-serialisable"),
    ([post("x", attached_files="f")], {"f": 3}, "must be a path or bytes"),
    ([post("x", attached_files="f")], {"f": "/nonexistent/file.jpg"}, "not a readable file"),
]


@pytest.mark.parametrize(("requests", "files", "message"), BAD_INPUTS)
def test_bad_inputs(requests: object, files: dict[str, object] | None, message: str) -> None:
    with pytest.raises(GraphInputError, match=re.escape(message)):
        validate_requests(requests, files)


def test_error_names_index_and_name() -> None:
    with pytest.raises(GraphInputError) as info:
        validate_requests([get("me"), get("me", name="second", body="x=1")])
    assert info.value.index == 1
    assert info.value.name == "second"
    assert "request #1 'second'" in str(info.value)


def test_files_path_accepted(tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(b"jpg")
    entries = validate_requests([post("act_1/adimages", attached_files=["img"])], files={"img": image})
    assert entries[0].attached_files == ("img",)


# ---- planning ------------------------------------------------------------------------------------


def plan(requests: list[dict[str, object]], **kw: int | None) -> tuple[list[list[int]], list[int]]:
    entries = validate_requests(requests)
    return plan_chunks(entries, range(len(entries)), **kw)


@pytest.mark.parametrize("n", [1, 49, 50, 51, 10_000])
def test_independent_requests_are_packed_tight(n: int) -> None:
    chunks, deferred = plan([get(f"{i}") for i in range(n)])
    assert deferred == []
    assert len(chunks) == math.ceil(n / 50)
    assert sorted(i for c in chunks for i in c) == list(range(n))


def test_reference_across_the_50_boundary_stays_in_one_call() -> None:
    reqs = [get(f"{i}", name=f"n{i}") for i in range(60)]
    reqs[51] = get("{result=n49:$.id}", name="n51")
    chunks, deferred = plan(reqs)
    assert deferred == []
    assert len(chunks) == 2
    assert any(49 in c and 51 in c for c in chunks)
    assert all(len(c) <= 50 for c in chunks)


def test_long_chain_is_cut_in_order() -> None:
    reqs = [post("act_1/campaigns", name="c0", body="name=c0")]
    reqs += [
        post("act_1/campaigns", name=f"c{i}", body=f"name={{result=c{i - 1}:$.id}}") for i in range(1, 120)
    ]
    chunks, deferred = plan(reqs)
    assert chunks == [list(range(50))]
    assert deferred == list(range(50, 120))


def test_small_components_fill_around_a_long_chain() -> None:
    reqs = [post("x", name="c0")] + [post("x", name=f"c{i}", depends_on=f"c{i - 1}") for i in range(1, 70)]
    reqs += [get(f"g{i}") for i in range(30)]
    chunks, deferred = plan(reqs)
    assert deferred == list(range(50, 70))
    assert [len(c) for c in chunks] == [50, 30]


def test_ads_per_chunk() -> None:
    reqs = [post("act_1/ads", body=f"name=ad{i}") for i in range(25)] + [get(f"{i}") for i in range(20)]
    chunks, deferred = plan(reqs)
    assert deferred == []
    ads_per_chunk = [sum(1 for i in c if i < 25) for c in chunks]
    assert max(ads_per_chunk) <= 10
    assert sum(len(c) for c in chunks) == 45


def test_ads_limit_splits_a_component() -> None:
    reqs = [post("act_1/adcreatives", name="cr", body="name=c")]
    reqs += [post("act_1/ads", body=f"creative_id={{result=cr:$.id}}&name=a{i}") for i in range(25)]
    chunks, deferred = plan(reqs, max_ads_per_chunk=10)
    assert chunks == [list(range(11))]
    assert deferred == list(range(11, 26))


def test_chunk_size_option() -> None:
    chunks, _ = plan([get(f"{i}") for i in range(100)], chunk_size=20)
    assert [len(c) for c in chunks] == [20] * 5


def adset(campaign_id: str, name: str, as_string: bool = False, **kw: object) -> dict[str, object]:
    body: object = (
        f"name={name}&campaign_id={campaign_id}" if as_string else {"name": name, "campaign_id": campaign_id}
    )
    return post("act_1/adsets", body=body, **kw)


def campaign_counts(reqs: list[dict[str, object]], chunk: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in chunk:
        if str(reqs[i]["relative_url"]).endswith("/adsets"):
            body = reqs[i]["body"]
            camp = (
                body["campaign_id"] if isinstance(body, dict) else dict(parse_qsl(str(body)))["campaign_id"]
            )
            counts[camp] = counts.get(camp, 0) + 1
    return counts


def test_adsets_of_one_campaign_go_to_different_calls() -> None:
    reqs = [adset("111", "a0"), adset("111", "a1", as_string=True), adset("222", "b0")]
    reqs += [adset("111", "a2"), adset("222", "b1", as_string=True), get("me")]
    chunks, deferred = plan(reqs)
    assert deferred == []
    assert sorted(i for c in chunks for i in c) == list(range(6))
    assert all(n == 1 for c in chunks for n in campaign_counts(reqs, c).values())
    assert chunks == [[0, 2, 5], [1, 4], [3]]


def test_adsets_of_a_referenced_campaign_are_split_in_order() -> None:
    reqs = [post("act_1/campaigns", name="camp", body={"name": "c", "objective": "OUTCOME_TRAFFIC"})]
    reqs += [
        adset("{result=camp:$.id}", "a0"),
        adset("{result=camp:$.id}", "a1", as_string=True),
        adset("{result=camp:$.id}", "a2"),
        adset("333", "b0"),
    ]
    entries = validate_requests(reqs)
    chunks, deferred = plan_chunks(entries, range(len(entries)))
    # The campaign create and its first ad set travel together (Graph resolves the reference);
    # the other ad sets of that campaign wait for a later round (resolved client-side).
    assert chunks == [[0, 1, 4]]
    assert deferred == [2, 3]
    later, deferred = plan_chunks(entries, deferred)
    assert later == [[2], [3]]
    assert deferred == []


def test_adsets_per_campaign_option() -> None:
    reqs = [adset("111", f"a{i}") for i in range(3)] + [adset("222", f"b{i}") for i in range(2)]
    assert plan(reqs)[0] == [[0, 3], [1, 4], [2]]
    assert plan(reqs, max_adsets_per_campaign_per_chunk=2)[0] == [[0, 1, 3, 4], [2]]
    assert plan(reqs, max_adsets_per_campaign_per_chunk=None) == ([[0, 1, 2, 3, 4]], [])
    chained = [post("act_1/campaigns", name="camp", body="name=c")]
    chained += [adset("{result=camp:$.id}", f"a{i}") for i in range(3)]
    assert plan(chained) == ([[0, 1]], [2, 3])
    assert plan(chained, max_adsets_per_campaign_per_chunk=None) == ([[0, 1, 2, 3]], [])
