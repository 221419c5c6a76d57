"""AsyncRequestResultsOperator against the emulator over HTTP (no mocked transport)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_fb_async.exceptions import GraphAPIError, GraphInputError, TooManyResultsError
from airflow_fb_async.operators.result_items import created_object_id, normalize_errors, normalize_request
from airflow_fb_async.operators.results import AsyncRequestResultsOperator
from tests.conftest import TEST_TOKEN, run_dag
from tests.emu_admin import EmulatorAdmin
from tests.waits import wait_done

API = "v25.0"
AUTH = {"Authorization": f"OAuth {TEST_TOKEN}"}  # a header: never in logged URLs
CTX: Any = {}  # the operator reads nothing from the context


# ---------------------------------------------------------------------- test data helpers


def create_set(emu: EmulatorAdmin, n_ok: int, n_err: int = 0, account: str = "act_1", name: str = "s") -> str:
    """POST one async set: ``n_ok`` campaign creates, ``n_err`` failing ones (no objective) spread in."""
    adbatch = [
        {
            "name": f"ok{i}",
            "relative_url": f"{account}/campaigns",
            "body": f"name=c{i}&objective=OUTCOME_TRAFFIC",
        }
        for i in range(n_ok)
    ]
    for j in range(n_err):
        bad = {"name": f"bad{j}", "relative_url": f"{account}/campaigns", "body": f"name=bad{j}"}
        adbatch.insert(min(len(adbatch), (j + 1) * 10), bad)
    resp = requests.post(
        f"{emu.url}/{API}/{account}/async_batch_requests",
        data={"name": name, "adbatch": json.dumps(adbatch)},
        headers=AUTH,
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def edge_reads(emu: EmulatorAdmin) -> int:
    return sum(1 for c in emu.calls() if c["method"] == "GET" and c["path"].endswith("/requests"))


@pytest.fixture
def set30(graph_conn: EmulatorAdmin) -> str:
    """A completed set of 30 requests: 28 campaign creates that succeed, 2 that fail."""
    graph_conn.config(async_pace=1000)
    set_id = create_set(graph_conn, 28, 2)
    wait_done(graph_conn, set_id)
    return set_id


def run(**kwargs: Any) -> Any:
    return AsyncRequestResultsOperator(task_id="results", **kwargs).execute(CTX)


# ---------------------------------------------------------------------- list mode


def test_list_mode_returns_30_normalised_items(set30: str, graph_conn: EmulatorAdmin) -> None:
    items = run(request_set_ids=set30)

    assert len(items) == 30
    assert Counter(i["status"] for i in items) == {"SUCCESS": 28, "ERROR": 2}
    assert len({i["id"] for i in items}) == 30
    for item in items:
        assert set(item) == {"id", "request_set_id", "status", "result", "errors"}
        assert item["request_set_id"] == set30
        assert isinstance(item["id"], str)
        assert item["id"].isdigit()
        if item["status"] == "SUCCESS":
            assert isinstance(item["result"], dict)
            assert item["result"]["id"]
            assert item["errors"] == []
        else:
            assert len(item["errors"]) == 1
            error = item["errors"][0]
            assert isinstance(error["error_code"], int)
            assert isinstance(error["error_message"], str)
            assert error["error_message"]
    assert json.loads(json.dumps(items)) == items
    assert TEST_TOKEN not in json.dumps(items)
    # Every campaign the emulator holds appears once among the results.
    campaigns = {o["id"] for o in graph_conn.objects("campaign")}
    assert {i["result"]["id"] for i in items if i["status"] == "SUCCESS"} == campaigns


@pytest.mark.parametrize("statuses", [["error"], "Error", "ERROR", "['error']"])
def test_statuses_filter_returns_the_2_errors(set30: str, statuses: Any) -> None:
    items = run(request_set_ids=[set30], statuses=statuses)
    assert [i["status"] for i in items] == ["ERROR", "ERROR"]
    assert all(i["errors"][0]["error_code"] for i in items)


def test_extra_fields_are_added(set30: str) -> None:
    items = run(request_set_ids=set30, fields="input,id", statuses="success")
    assert len(items) == 28
    assert all("input" in i for i in items)
    assert all(i["input"] is not None for i in items)


def test_several_sets_read_counts_in_one_multi_id_call(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(async_pace=1000)
    a = create_set(graph_conn, 5, 1, name="a")
    b = create_set(graph_conn, 3, 0, account="act_2", name="b")
    wait_done(graph_conn, a, b)
    before = graph_conn.counters()["calls_by_kind"]

    items = run(request_set_ids=[a, b, a], page_size=2)

    after = graph_conn.counters()["calls_by_kind"]
    assert Counter(i["request_set_id"] for i in items) == {a: 6, b: 3}
    assert after.get("get_multi", 0) - before.get("get_multi", 0) == 1
    # ceil(6/2) + ceil(3/2) pages, plus at most one trailing empty page per set.
    assert 5 <= after["get_edge"] - before.get("get_edge", 0) <= 7


def test_progress_is_logged_per_page(
    set30: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO):
        run(request_set_ids=set30, page_size=10)
    text = caplog.text + capsys.readouterr().out  # the task SDK logs through structlog to stdout
    assert f"results: set {set30}: 10/30 fetched (33%)" in text
    assert f"results: set {set30}: 30/30 fetched (100%)" in text
    assert TEST_TOKEN not in text


# ---------------------------------------------------------------------- ids mode


def test_ids_only_returns_the_28_created_campaign_ids(set30: str, graph_conn: EmulatorAdmin) -> None:
    ids = run(request_set_ids=set30, ids_only=True)
    campaigns = [o["id"] for o in graph_conn.objects("campaign")]
    assert len(ids) == 28
    assert sorted(ids) == sorted(str(c) for c in campaigns)
    assert all(isinstance(i, str) for i in ids)


def test_ids_only_rejects_statuses_without_success(set30: str) -> None:
    with pytest.raises(GraphInputError, match="excludes SUCCESS"):
        run(request_set_ids=set30, ids_only=True, statuses=["error"])


# ---------------------------------------------------------------------- output_path


def _assert_no_temp_files(directory: Path) -> None:
    assert [p.name for p in directory.iterdir() if ".tmp-" in p.name] == []


def test_output_path_local_writes_30_lines(set30: str, tmp_path: Path) -> None:
    target = tmp_path / "sub" / "results.jsonl"
    summary = run(request_set_ids=set30, output_path=str(target))

    assert summary == {"path": str(target), "count": 30, "counts_by_status": {"SUCCESS": 28, "ERROR": 2}}
    lines = target.read_text().splitlines()
    assert len(lines) == 30
    items = [json.loads(line) for line in lines]
    assert Counter(i["status"] for i in items) == {"SUCCESS": 28, "ERROR": 2}
    assert all(i["request_set_id"] == set30 for i in items)
    assert TEST_TOKEN not in target.read_text()
    _assert_no_temp_files(target.parent)


def test_output_path_file_url_and_object_storage_path(set30: str, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    url = f"file://{tmp_path}/url.jsonl"
    summary = run(request_set_ids=set30, output_path=url)
    assert summary["count"] == 30
    assert summary["counts_by_status"] == {"SUCCESS": 28, "ERROR": 2}
    assert summary["path"] == url
    assert len((tmp_path / "url.jsonl").read_text().splitlines()) == 30

    summary = run(request_set_ids=set30, output_path=ObjectStoragePath(f"file://{tmp_path}/osp.jsonl"))
    assert summary["count"] == 30
    assert len((tmp_path / "osp.jsonl").read_text().splitlines()) == 30
    _assert_no_temp_files(tmp_path)


def test_ids_only_with_output_path_writes_ids(set30: str, tmp_path: Path, graph_conn: EmulatorAdmin) -> None:
    target = tmp_path / "ids.jsonl"
    summary = run(request_set_ids=set30, ids_only=True, output_path=target)
    ids = [json.loads(line) for line in target.read_text().splitlines()]
    assert summary["count"] == 28
    assert summary["counts_by_status"] == {"SUCCESS": 28}
    assert sorted(ids) == sorted(str(o["id"]) for o in graph_conn.objects("campaign"))


def test_failed_fetch_leaves_no_half_file(set30: str, tmp_path: Path, graph_conn: EmulatorAdmin) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("previous run\n")
    graph_conn.fault("500", count=100, path_regex="/requests")

    with pytest.raises(GraphAPIError) as info:
        run(request_set_ids=set30, output_path=str(target))

    assert TEST_TOKEN not in str(info.value)
    assert target.read_text() == "previous run\n"  # untouched
    _assert_no_temp_files(tmp_path)


# ---------------------------------------------------------------------- the XCom limit


def test_1001_results_without_output_path_fail_clearly(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    graph_conn.config(async_pace=100000)
    big = create_set(graph_conn, 1000, name="big")
    one = create_set(graph_conn, 1, name="one")
    wait_done(graph_conn, big, one)
    reads_before = edge_reads(graph_conn)

    with pytest.raises(TooManyResultsError, match="output_path") as info:
        run(request_set_ids=[big, one])
    assert "1001 results" in str(info.value)
    assert "max_xcom_items=1000" in str(info.value)
    assert edge_reads(graph_conn) == reads_before  # the sets' counts proved it: nothing fetched

    # Same data through output_path works.
    summary = run(request_set_ids=[big, one], output_path=str(tmp_path / "all.jsonl"))
    assert summary["count"] == 1001


def test_ids_only_over_the_limit_fails_before_reading_any_page(set30: str, graph_conn: EmulatorAdmin) -> None:
    """Issue 13 f: the sets' success counts (28) already exceed max_xcom_items: no result page is read."""
    reads_before = edge_reads(graph_conn)
    with pytest.raises(TooManyResultsError, match="set output_path") as info:
        run(request_set_ids=set30, ids_only=True, max_xcom_items=10, page_size=5)
    assert "up to 28 object ids" in str(info.value)
    assert edge_reads(graph_conn) == reads_before
    assert not [c for c in graph_conn.calls() if c["path"].endswith("/requests")]


def test_limit_stops_fetching_as_soon_as_exceeded(set30: str, graph_conn: EmulatorAdmin) -> None:
    reads_before = edge_reads(graph_conn)
    with pytest.raises(TooManyResultsError, match="max_xcom_items=4"):
        run(request_set_ids=set30, statuses=["SUCCESS", "ERROR"], max_xcom_items=4, page_size=5)
    assert edge_reads(graph_conn) - reads_before == 1


def test_exactly_max_items_is_fine(set30: str) -> None:
    assert len(run(request_set_ids=set30, max_xcom_items=30)) == 30
    assert len(run(request_set_ids=set30, ids_only=True, max_xcom_items=28)) == 28


# ---------------------------------------------------------------------- validation, before any HTTP call


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"request_set_ids": ""}, "empty"),
        ({"request_set_ids": ["123", "act_1"]}, r"request_set_ids\[1\]"),
        ({"request_set_ids": [None]}, "digits"),
        ({"request_set_ids": {"a": 1}}, "string or a list"),
        ({"request_set_ids": "['1', '2'"}, "as a list"),
        ({"request_set_ids": "1", "statuses": ["bogus"]}, "unknown async request status"),
        ({"request_set_ids": "1", "statuses": []}, "empty"),
        ({"request_set_ids": "1", "fields": ["bad field"]}, r"fields\[0\]"),
        ({"request_set_ids": "1", "fields": "input{name}"}, r"fields\[0\]"),
        ({"request_set_ids": "1", "fields": ["errors"]}, "fills itself"),
        ({"request_set_ids": "1", "output_path": ""}, "output_path"),
        ({"request_set_ids": "1", "output_path": 5}, "output_path"),
        ({"request_set_ids": "1", "output_path": "/tmp/dir/"}, "directory"),
    ],
)
def test_bad_input_fails_before_any_http_call(graph_conn: EmulatorAdmin, kwargs: dict, match: str) -> None:
    before = graph_conn.http_calls()
    with pytest.raises(GraphInputError, match=match):
        run(**kwargs)
    assert graph_conn.http_calls() == before


@pytest.mark.parametrize(
    "kwargs",
    [{"max_xcom_items": 0}, {"max_xcom_items": True}, {"page_size": 0}, {"ids_only": "yes"}],
)
def test_bad_static_args_fail_at_parse_time(kwargs: dict) -> None:
    with pytest.raises(GraphInputError):
        AsyncRequestResultsOperator(task_id="r", request_set_ids="1", **kwargs)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123", ["123"]),
        (123, ["123"]),
        (" 1, 2 ,1", ["1", "2"]),
        ("['1', '2']", ["1", "2"]),
        ('["1", "2"]', ["1", "2"]),
        (("3", 4), ["3", "4"]),
    ],
)
def test_request_set_ids_shapes(value: Any, expected: list[str]) -> None:
    op = AsyncRequestResultsOperator(task_id="r", request_set_ids=value)
    assert op._validated_set_ids() == expected


def test_template_fields() -> None:
    assert AsyncRequestResultsOperator.template_fields == (
        "request_set_ids",
        "statuses",
        "fields",
        "output_path",
        "graph_conn_id",
        "api_version",
    )


def test_templates_render_ids_statuses_fields_and_output_path() -> None:
    from airflow.sdk import ObjectStoragePath

    op = AsyncRequestResultsOperator(
        task_id="r",
        request_set_ids="{{ params.ids }}",
        statuses="{{ params.status }}",
        fields="{{ params.field }},created_time",
        output_path=ObjectStoragePath("file:///tmp/results/{{ ds }}.jsonl"),
    )
    op.render_template_fields(
        {"params": {"ids": ["11", "22"], "status": "error", "field": "input"}, "ds": "2026-01-02"}  # type: ignore[arg-type]
    )
    # Without native rendering a list renders to its repr: still read as the list it was.
    assert op._validated_set_ids() == ["11", "22"]
    assert op._validated_statuses() == ["ERROR"]
    assert op._validated_fields() == ["input", "created_time"]
    assert str(op._validated_output()) == "file:///tmp/results/2026-01-02.jsonl"


# ---------------------------------------------------------------------- normalisation (pure)


@pytest.mark.parametrize(
    "result",
    [
        {"error_code": 100, "error_message": "Invalid parameter"},
        [{"error_code": 100, "error_message": "Invalid parameter"}],
        '{"error_code": "100", "error_message": "Invalid parameter"}',
        '[{"error_code": 100, "error_message": "Invalid parameter"}]',
        {"error": {"code": 100, "message": "Invalid parameter", "type": "OAuthException"}},
    ],
)
def test_error_shapes_are_normalised_to_a_list(result: Any) -> None:
    errors = normalize_errors(result)
    assert len(errors) == 1
    assert errors[0]["error_code"] == 100
    assert errors[0]["error_message"] == "Invalid parameter"


def test_normalize_request_parses_json_strings_and_status_spellings() -> None:
    item = normalize_request(
        {"id": 7, "status": "In_progress", "result": None, "scope_object_id": "9"}, "5", ["scope_object_id"]
    )
    assert item == {
        "id": "7",
        "request_set_id": "5",
        "status": "IN_PROGRESS",
        "result": None,
        "errors": [],
        "scope_object_id": "9",
    }
    ok = normalize_request({"id": "8", "status": "success", "result": '{"id": "42"}'}, "5")
    assert ok["result"] == {"id": "42"}
    assert created_object_id(ok) == "42"
    assert (
        created_object_id(
            normalize_request({"id": "9", "status": "SUCCESS", "result": {"success": True}}, "5")
        )
        is None
    )
    odd = normalize_request({"id": "10", "status": "brand_new_status", "result": "not json"}, "5")
    assert odd["status"] == "BRAND_NEW_STATUS"
    assert odd["result"] == "not json"


# ---------------------------------------------------------------------- dynamic task mapping DAG


@pytest.mark.usefixtures("airflow_db")
def test_mapping_dag_reads_every_created_campaign_back(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(async_pace=1000)

    dag_run: Any = run_dag("test_results_mapping")

    assert str(dag_run.state) in ("success", "DagRunState.SUCCESS"), dag_run.state
    campaigns = {str(o["id"]) for o in graph_conn.objects("campaign")}
    assert len(campaigns) == 28
    reads = {c["path"].rsplit("/", 1)[-1] for c in graph_conn.calls() if c["kind"] == "get_object"}
    assert campaigns <= reads  # one mapped read_back task per created campaign


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # the "summary" XCom of SubmitAsyncBatchOperator(wait_for_completion=True): {set_id: counts}
        ({"11": {"total_count": 1}, "22": {"total_count": 2}}, ["11", "22"]),
        ("{'11': {'total_count': 1}, '22': {'total_count': 2}}", ["11", "22"]),
        # a mapped submit task's XCom: one list of ids per map index
        ([["11", "22"], ["33"]], ["11", "22", "33"]),
    ],
)
def test_request_set_ids_from_every_submit_xcom_shape(value: Any, expected: list[str]) -> None:
    op = AsyncRequestResultsOperator(task_id="r", request_set_ids=value)
    assert op._validated_set_ids() == expected
