"""Body values (issue 13 d): one encoder for standard batches and async request sets.

datetime/date (pendulum too) go to Graph as ISO 8601 strings, tuples as lists; any other value
that is not JSON (set, bytes, objects) is a GraphInputError naming the request's index, the key
and the type, before any HTTP call. Both paths are checked over HTTP on what the emulator stored.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from typing import Any

import pendulum
import pytest

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.graph import GraphHook

START = datetime.datetime(2026, 3, 1, 9, 30, tzinfo=datetime.UTC)
STOP = pendulum.datetime(2026, 3, 31, 18, 0, tz="Europe/Paris")
DAY = datetime.date(2026, 3, 15)


def campaign_body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "objective": "OUTCOME_SALES",
        "start_time": START,
        "stop_time": STOP,
        "special_ad_categories": ("NONE",),
        "promoted_object": {"custom_event_type": "PURCHASE", "since": DAY, "tags": ("a", "b")},
    }


def assert_encoded(fields: dict[str, str]) -> None:
    """What Graph receives for campaign_body(): ISO 8601 strings and JSON lists, no Python reprs."""
    assert fields["start_time"] == "2026-03-01T09:30:00+00:00"
    assert fields["stop_time"] == "2026-03-31T18:00:00+02:00"
    assert json.loads(fields["special_ad_categories"]) == ["NONE"]
    assert json.loads(fields["promoted_object"]) == {
        "custom_event_type": "PURCHASE",
        "since": "2026-03-15",
        "tags": ["a", "b"],
    }


@pytest.fixture
def hook(graph_conn: Any) -> GraphHook:
    return GraphHook()


def test_batch_sends_datetimes_as_iso_and_tuples_as_lists(hook: GraphHook, graph_conn: Any) -> None:
    results = hook.batch([{"method": "POST", "relative_url": "act_1/campaigns", "body": campaign_body("b")}])
    assert results[0]["code"] == 200
    [stored] = graph_conn.objects("campaign")
    assert stored["start_time"] == "2026-03-01T09:30:00+00:00"
    assert stored["stop_time"] == "2026-03-31T18:00:00+02:00"
    assert stored["special_ad_categories"] == ["NONE"]
    assert stored["promoted_object"] == {
        "custom_event_type": "PURCHASE",
        "since": "2026-03-15",
        "tags": ["a", "b"],
    }


def test_async_sends_datetimes_as_iso_and_tuples_as_lists(hook: GraphHook, graph_conn: Any) -> None:
    hook.create_async_batch(
        "act_1", [{"name": "c", "relative_url": "act_1/campaigns", "body": campaign_body("a")}], "values"
    )
    [request] = graph_conn.objects("async_request")
    assert_encoded(dict(urllib.parse.parse_qsl(request["body"], keep_blank_values=True)))


BAD_VALUES = [
    ("set", {"NONE"}, "set"),
    ("bytes", b"NONE", "bytes"),
    ("object", object(), "object"),
    ("nested set", {"geo": {"countries": {"US"}}}, "set"),
    ("nan", float("nan"), "nan"),
]


@pytest.mark.parametrize(("case", "value", "type_name"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
@pytest.mark.parametrize("path", ["batch", "async"])
def test_non_json_values_are_refused_before_any_call(
    hook: GraphHook, graph_conn: Any, path: str, case: str, value: Any, type_name: str
) -> None:
    good = {
        "name": "ok",
        "relative_url": "act_1/campaigns",
        "body": {"name": "ok", "objective": "OUTCOME_SALES"},
    }
    bad = {"name": "bad", "relative_url": "act_1/campaigns", "body": {"name": "x", "targeting": value}}

    def call() -> Any:
        if path == "batch":
            return hook.batch([{"method": "POST", **good}, {"method": "POST", **bad}])
        return hook.create_async_batch("act_1", [good, bad], "values")

    with pytest.raises(GraphInputError) as info:
        call()
    message = str(info.value)
    assert info.value.index == 1
    assert "request #1 'bad'" in message
    assert "targeting" in message
    assert type_name in message
    assert graph_conn.counters()["http_calls"] == 0


def test_hook_form_fields_use_the_same_rule(hook: GraphHook, graph_conn: Any) -> None:
    answer = hook.post(
        "act_1/campaigns", data={"name": "p", "objective": "OUTCOME_SALES", "start_time": START}
    )
    [stored] = graph_conn.objects("campaign")
    assert stored["id"] == answer["id"]
    assert stored["start_time"] == "2026-03-01T09:30:00+00:00"
    with pytest.raises(GraphInputError, match=r"'labels'.*set"):
        hook.post("act_1/campaigns", data={"name": "q", "labels": {"x"}})
    assert graph_conn.counters()["http_calls"] == 1
