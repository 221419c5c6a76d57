"""Property-based tests (issue 9): request validation, body encoding, JSONPath references and batch
response parsing never fail with anything but the project's own typed errors."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_fb_async.exceptions import FacebookGraphError, GraphInputError
from airflow_fb_async.hooks import batch as batch_mod
from airflow_fb_async.hooks import batch_validate, jsonpath
from airflow_fb_async.hooks import request_set_plan as rsp
from airflow_fb_async.hooks.call import GraphCore
from airflow_fb_async.hooks.config import GraphConfig
from airflow_fb_async.hooks.encoding import encode_body
from airflow_fb_async.hooks.throttle import ThrottleState, _ThrottleStore

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.one_of(st.sampled_from(["a", "b", "c", "d"]), st.text(max_size=6))
ref_names = st.sampled_from(["a", "b", "c", "d", "zz"])
ref_paths = st.sampled_from(["$.id", "$.data.*.id", "$.data[0].id", "$", "$..x", "$.[", "id", "$.a b"])
refs = st.builds(lambda n, p: f"{{result={n}:{p}}}", ref_names, ref_paths)
urlish = st.one_of(
    st.text(max_size=20),
    refs,
    st.builds(lambda r: f"act_1/ads?x={r}", refs),
    st.sampled_from(["me", "act_1/campaigns", "/v25.0/me", "", "  ", "a\nb", "act_1/ads"]),
)
bodies = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.builds(lambda r: f"campaign_id={r}", refs),
    st.dictionaries(st.text(max_size=6), st.one_of(json_values, refs), max_size=4),
    st.integers(),
)
batch_entry = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "method": st.one_of(st.sampled_from(["GET", "post", "DELETE", "PATCH", ""]), json_values),
            "relative_url": st.one_of(urlish, json_values),
            "body": bodies,
            "name": st.one_of(names, json_values),
            "depends_on": st.one_of(names, st.lists(names, max_size=3), json_values),
            "omit_response_on_success": st.one_of(st.booleans(), json_values),
            "attached_files": st.one_of(st.sampled_from(["f1", "f1,f2", "nope"]), json_values),
            "headers": st.one_of(
                st.lists(st.sampled_from(["If-None-Match: x", "bad", "X-A: 1\r\n"]), max_size=2),
                st.dictionaries(st.text(max_size=5), json_values, max_size=2),
                json_values,
            ),
            "bogus": json_values,
        },
    ),
)
async_entry = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(names, json_values),
            "relative_url": st.one_of(urlish, json_values),
            "body": bodies,
            "method": st.just("POST"),
        },
    ),
)


# ---------------------------------------------------------------------------------------- validation


@SETTINGS
@given(
    st.one_of(json_values, st.lists(batch_entry, max_size=6)),
    st.one_of(st.none(), st.just({"f1": b"x", "f2": b"y"}), json_values),
)
def test_batch_validation_is_valid_or_typed(requests: Any, files: Any) -> None:
    try:
        entries = batch_validate.validate_requests(requests, files)
    except FacebookGraphError:  # ours, typed; anything else propagates and fails the property
        return
    assert len(entries) == len(requests)
    for i, e in enumerate(entries):
        assert e.index == i
        assert e.method in batch_validate.METHODS
        assert all(d < i for d in e.deps), "a reference or depends_on points forward"
        assert e.body is None or e.method == "POST"


@SETTINGS
@given(
    st.one_of(json_values, st.lists(async_entry, max_size=6)),
    st.one_of(st.sampled_from(["act_1", "123", "act_", "123abc", ""]), json_values),
    st.one_of(st.just("set"), json_values),
    st.one_of(st.none(), st.sampled_from(["https://x.example/h", "ftp://x/y", "nota url"]), json_values),
    st.one_of(st.none(), st.sampled_from(["OFF", "on_complete", "LOUD"]), json_values),
    st.one_of(st.integers(-2, 1002), json_values),
)
def test_async_set_planning_is_valid_or_typed(
    requests: Any, account: Any, name: Any, uri: Any, mode: Any, size: Any
) -> None:
    try:
        plan = rsp.plan_request_sets(
            account, requests, name, notification_uri=uri, notification_mode=mode, max_set_size=size
        )
    except FacebookGraphError:  # ours, typed; anything else propagates and fails the property
        return
    assert plan.ad_account_id.startswith("act_")
    assert sorted(i for p in plan.parts for i in p.indexes) == list(range(len(requests)))
    assert all(0 < p.size <= size for p in plan.parts)
    assert all(isinstance(e["body"], str) for p in plan.parts for e in p.entries)


# ---------------------------------------------------------------------------------------- body encoding

form_keys = st.text(min_size=1, max_size=8).filter(lambda k: "{result=" not in k)
form_values = st.one_of(
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.lists(json_values, max_size=3),
    st.dictionaries(st.text(max_size=5), json_values, max_size=3),
).filter(lambda v: "{result=" not in json.dumps(v))


def _decoded(value: Any, text: str) -> None:
    if isinstance(value, str):
        assert text == value
    else:
        got = json.loads(text)
        if isinstance(value, float):
            assert math.isclose(got, value, rel_tol=1e-15, abs_tol=0)
        else:
            assert got == json.loads(json.dumps(value))


@SETTINGS
@given(body=st.dictionaries(form_keys, st.one_of(form_values, st.none()), max_size=5))
def test_dict_bodies_round_trip(body: dict[str, Any]) -> None:
    # One encoder serves standard batches and request sets alike.
    text = encode_body(body)
    assert isinstance(text, str)
    parsed = parse_qs(text, keep_blank_values=True, strict_parsing=False)
    kept = {k: v for k, v in body.items() if v is not None}
    assert set(parsed) == set(kept)
    for key, value in kept.items():
        assert len(parsed[key]) == 1
        _decoded(value, parsed[key][0])


@SETTINGS
@given(
    key=st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
    name=st.from_regex(r"[A-Za-z0-9_\-]{1,8}", fullmatch=True),
    path=st.sampled_from(["$.id", "$.data.*.id", "$.images.*.hash", "$.data[0].id"]),
    before=st.text(max_size=8).filter(lambda t: "{" not in t),
    after=st.text(max_size=8).filter(lambda t: "}" not in t),
)
def test_references_survive_encoding(key: str, name: str, path: str, before: str, after: str) -> None:
    ref = f"{{result={name}:{path}}}"
    text = encode_body({key: f"{before}{ref}{after}"})
    assert ref in text
    assert parse_qs(text, keep_blank_values=True)[key] == [f"{before}{ref}{after}"]


# ---------------------------------------------------------------------------------------- JSONPath


def _quote_key(key: str) -> str | None:
    if "'" not in key:
        return f"['{key}']"
    if '"' not in key:
        return f'["{key}"]'
    return None


@SETTINGS
@given(doc=json_values, data=st.data())
def test_jsonpath_resolves_a_walked_path(doc: Any, data: st.DataObject) -> None:
    node, path = doc, "$"
    for _ in range(4):
        if isinstance(node, Mapping) and node:
            key = data.draw(st.sampled_from(sorted(node)))
            step = _quote_key(key)
            assume(step is not None)
            node, path = node[key], path + step
        elif isinstance(node, list) and node:
            index = data.draw(st.integers(0, len(node) - 1))
            node, path = node[index], path + f"[{index}]"
        else:
            break
    assert jsonpath.find(doc, path) == [node]
    assert jsonpath.resolve(doc, path) == jsonpath.to_text(node)


@SETTINGS
@given(
    doc=json_values,
    path=st.one_of(
        st.text(max_size=15),
        st.builds(lambda s: "$" + s, st.text(alphabet=".[]*'\"0123456789abc_-", max_size=15)),
    ),
)
def test_jsonpath_arbitrary_paths(doc: Any, path: str) -> None:
    try:
        value = jsonpath.resolve(doc, path)
    except jsonpath.JSONPathError:
        return  # a ValueError subclass naming the position; the batch validator wraps it as GraphInputError
    assert value is None or isinstance(value, str)


# ---------------------------------------------------------------------------------------- batch responses

odd_headers = st.one_of(
    json_values,
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(
                        ["X-App-Usage", "X-Business-Use-Case-Usage", "X-Ad-Account-Usage", "ETag", "Odd"]
                    ),
                    "value": st.one_of(
                        json_values,
                        st.sampled_from(
                            [
                                '{"call_count":95}',
                                '{"1":[{"estimated_time_to_regain_access":"x"}]}',
                                "{not json",
                                '{"acc_id_util_pct": 101}',
                            ]
                        ),
                    ),
                }
            ),
            json_values,
        ),
        max_size=3,
    ),
)
raw_entries = st.one_of(
    st.none(),
    json_values,
    st.fixed_dictionaries(
        {"code": st.one_of(st.sampled_from([200, 304, 400, 500, 0]), json_values)},
        optional={
            "headers": odd_headers,
            "body": st.one_of(
                st.text(max_size=12),
                json_values,
                st.builds(json.dumps, json_values),
                st.just('{"error":{"code":2,"is_transient":true}}'),
                st.just('{"error":{"code":190}}'),
            ),
        },
    ),
)


class FakeHook:
    """Just enough of GraphHook for the batch engine: scripted answers to its batch calls."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls = 0
        self.core = GraphCore(GraphConfig("fake", token="fake-token", backoff_base=0.0))
        self.core.throttle = ThrottleState(regain_unit_seconds=0.0, backoff_base=0.0, store=_ThrottleStore())

    def request(self, method: str, path: str, *, data: Any = None, **kw: Any) -> Any:
        sent = json.loads(data["batch"])
        self.calls += 1
        if self.answers:
            return self.answers.pop(0)
        return [{"code": 200, "headers": [], "body": '{"id":"1"}'} for _ in sent]


@SETTINGS
@given(
    n=st.integers(1, 6),
    answers=st.lists(st.one_of(st.lists(raw_entries, max_size=7), json_values), max_size=3),
)
def test_batch_response_parsing(n: int, answers: list[Any]) -> None:
    requests = [
        {
            "method": "GET" if i % 2 else "POST",
            "relative_url": f"act_1/campaigns?i={i}",
            **({"name": f"n{i}"} if i % 3 == 0 else {}),
        }
        for i in range(n)
    ]
    hook = FakeHook(list(answers))
    try:
        results = batch_mod.run_batch(hook, requests, max_concurrency=1, max_rounds=3, round_backoff=0.0)
    except FacebookGraphError:  # ours, typed; anything else propagates and fails the property
        return
    assert len(results) == n
    for r in results:
        assert isinstance(r["code"], int)
        assert isinstance(r["headers"], dict)
        assert "body" in r
        json.dumps(r)  # XCom-ready


def test_typed_errors_are_ours() -> None:
    assert issubclass(GraphInputError, FacebookGraphError)
