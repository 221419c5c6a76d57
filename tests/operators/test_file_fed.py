"""File-fed pipelines against the emulator over HTTP: ``requests_path`` on both operators,
``output_path`` on the batch operator, bad lines, references across windows, resume by content.

``op.execute(context)`` gets a small context: a dict-backed ``task_state_store`` (the surface of
Airflow's accessor) and, for the submit operator, a stub task instance. Real task retries inside
Airflow are covered by tests/dags/test_batch_retries.py.
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

import pytest

from airflow_fb_async.exceptions import GraphBatchError, GraphInputError
from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.operators.async_batch import SubmitAsyncBatchOperator
from airflow_fb_async.operators.batch import GraphBatchOperator
from airflow_fb_async.operators.file_batch import HEAD_KEY
from tests.conftest import TEST_TOKEN, run_dag
from tests.operators.test_async_batch import StubTI, simple
from tests.operators.test_batch_retries import task_instance, token_rejected_on_call, xcom
from tests.operators.test_task_state import DictStore

if TYPE_CHECKING:
    from pathlib import Path

    from tests.emu_admin import EmulatorAdmin

ACT = "act_5150"
OPTS: dict[str, Any] = {"round_backoff": 0.01}


def write_lines(path: Path, items: list[Any], *, blank_after: int | None = None) -> Path:
    lines = [json.dumps(item) for item in items]
    if blank_after is not None:
        lines.insert(blank_after, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def campaigns(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "method": "POST",
            "relative_url": f"{ACT}/campaigns",
            "body": {"name": f"c{i}", "objective": "OUTCOME_TRAFFIC"},
            "name": f"c{i}",
        }
        for i in range(start, start + n)
    ]


def adset_of(campaign: str, name: str) -> dict[str, Any]:
    return {
        "method": "POST",
        "relative_url": f"{ACT}/adsets",
        "body": {"name": name, "campaign_id": f"{{result={campaign}:$.id}}"},
        "name": name,
    }


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def batch_op(source: Path, output: Path | None = None, **kw: Any) -> GraphBatchOperator:
    kw.setdefault("batch_options", OPTS)
    return GraphBatchOperator(task_id="batch", requests_path=str(source), output_path=output, **kw)


def batch_calls(emu: EmulatorAdmin) -> list[int]:
    return [c["batch_size"] for c in emu.calls() if c["kind"] == "batch"]


# ---------------------------------------------------------------------------- GraphBatchOperator


def test_results_streamed_to_output_in_input_order(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", campaigns(23), blank_after=5)
    output = tmp_path / "out" / "results.jsonl"
    summary = batch_op(source, output, window_size=10).execute({"task_state_store": DictStore()})
    assert summary == {"path": str(output), "count": 23, "failed": 0}
    assert len(json.dumps(summary)) < 200  # the XCom stays small
    results = read_jsonl(output)
    assert [r["code"] for r in results] == [200] * 23
    by_id = {o["id"]: o["name"] for o in graph_conn.objects("campaign")}
    assert [by_id[r["body"]["id"]] for r in results] == [f"c{i}" for i in range(23)]
    assert graph_conn.counters()["objects_created"] == 23
    assert not list(tmp_path.glob("out/.*")), "no part or temporary file left next to the output"


def test_a_reference_across_the_window_boundary_moves_its_chain(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    # Window of 4: line 5 refers to line 4, so the first window is cut after line 3 and the
    # campaign of line 4 travels with its ad set; line 7 reaches 3 lines back, inside its window.
    items = [*campaigns(4), adset_of("c3", "s3"), *campaigns(1, start=4), adset_of("c3", "s3b")]
    source = write_lines(tmp_path / "in.jsonl", items)
    summary = batch_op(source, tmp_path / "out.jsonl", window_size=4).execute({})
    assert summary["count"] == 7
    assert summary["failed"] == 0
    results = read_jsonl(tmp_path / "out.jsonl")
    campaign_id = results[3]["body"]["id"]
    adsets = {o["name"]: o for o in graph_conn.objects("adset")}
    assert adsets["s3"]["campaign_id"] == campaign_id
    assert adsets["s3b"]["campaign_id"] == campaign_id
    assert [o["name"] for o in graph_conn.objects("campaign")] == [f"c{i}" for i in range(5)]


def test_a_reference_beyond_the_window_fails_naming_the_line(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    items = [*campaigns(6), adset_of("c0", "far")]
    source = write_lines(tmp_path / "in.jsonl", items)
    with pytest.raises(GraphInputError) as info:
        batch_op(source, tmp_path / "out.jsonl", window_size=4).execute({})
    text = str(info.value)
    assert "#6 'far' on line 7" in text
    assert "'c0', which is on line 1, in the window before" in text
    assert "at most 4" in text
    assert graph_conn.http_calls() == 0
    assert not (tmp_path / "out.jsonl").exists()


def test_a_chain_longer_than_the_window_fails_naming_the_line(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    items = [*campaigns(1), *(adset_of("c0", f"s{i}") for i in range(4))]
    source = write_lines(tmp_path / "in.jsonl", items)
    with pytest.raises(GraphInputError, match=r"#4 on line 5: .*chain starting on line 1 .*more than 4"):
        batch_op(source, tmp_path / "out.jsonl", window_size=4).execute({})
    assert graph_conn.http_calls() == 0


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("{not json", r"on line 4: requests_path .*: not a JSON value"),
        (
            json.dumps({"method": "FETCH", "relative_url": "me"}),
            r"request #2 on line 4: unknown method 'FETCH'",
        ),
        (json.dumps(["GET", "me"]), r"request #2 on line 4: must be a dict, got list"),
    ],
)
def test_a_bad_line_fails_before_any_call_naming_it(
    graph_conn: EmulatorAdmin, tmp_path: Path, line: str, pattern: str
) -> None:
    source = tmp_path / "in.jsonl"
    good = [json.dumps(r) for r in campaigns(3)]
    # Line 3 is blank (skipped, still counted): the bad request is the third one, on line 4.
    source.write_text("\n".join([*good[:2], "", line, good[2]]) + "\n")
    for output in (tmp_path / "out.jsonl", None):
        with pytest.raises(GraphInputError, match=pattern):
            batch_op(source, output, window_size=2).execute({})
    assert graph_conn.http_calls() == 0


def test_fail_on_error_names_the_failing_lines(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    items = campaigns(9)
    items[6]["body"] = {"name": "no objective"}
    source = write_lines(tmp_path / "in.jsonl", items, blank_after=0)
    ti = StubTI(task_id="batch")
    with pytest.raises(GraphBatchError) as info:
        batch_op(source, tmp_path / "out.jsonl", window_size=4).execute({"ti": ti})
    text = str(info.value)
    assert "1 of 9 batch entries failed" in text
    assert "line 8 #6 'c6' (POST): code 400, error 100" in text
    assert TEST_TOKEN not in text
    assert info.value.failures[0]["line"] == 8
    # The whole file ran and the output is complete; the XCom pushed before failing is the summary.
    assert [r["code"] for r in read_jsonl(tmp_path / "out.jsonl")].count(400) == 1
    assert ti.xcoms["return_value"] == {"path": str(tmp_path / "out.jsonl"), "count": 9, "failed": 1}
    assert graph_conn.counters()["objects_created"] == 8


def test_without_output_path_the_file_results_are_the_xcom_list(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    items = campaigns(3)
    items[1]["body"] = {"name": "no objective"}
    source = write_lines(tmp_path / "in.jsonl", items, blank_after=1)
    results = batch_op(source, fail_on_error=False).execute({})
    assert [r["code"] for r in results] == [200, 400, 200]
    with pytest.raises(GraphBatchError, match=r"line 3 #1 'c1'"):
        batch_op(source).execute({})


def test_a_stopped_run_resumes_by_content_and_sends_each_request_once(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", campaigns(30))
    output = tmp_path / "out.jsonl"
    store = DictStore()
    options = {**OPTS, "chunk_size": 5}
    # 3 windows of 10, 2 calls each: the token is rejected on the 4th call (window 2's second half).
    with token_rejected_on_call(graph_conn, 4), pytest.raises(GraphBatchError) as info:
        batch_op(source, output, window_size=10, max_concurrency=1, batch_options=options).execute(
            {"task_state_store": store}
        )
    assert "stopped in window 2 (lines 11-20): 5 of 10" in str(info.value)
    assert graph_conn.counters()["objects_created"] == 15
    assert not output.exists()
    head = store.values[HEAD_KEY]
    assert head["windows"] == 1
    assert not head["complete"]
    # The journal holds statuses for one window at most, never the file's results.
    assert len(json.dumps(store.values)) < 4_000

    # The next try reads the same content under another name: only what was not settled is sent.
    renamed = shutil.copy(source, tmp_path / "renamed.jsonl")
    before = len(batch_calls(graph_conn))
    summary = batch_op(renamed, output, window_size=10, max_concurrency=1, batch_options=options).execute(
        {"task_state_store": store}
    )
    assert summary == {"path": str(output), "count": 30, "failed": 0}
    assert batch_calls(graph_conn)[before:] == [5, 5, 5]
    assert graph_conn.counters()["objects_created"] == 30
    results = read_jsonl(output)
    names = {o["id"]: o["name"] for o in graph_conn.objects("campaign")}
    assert [names[r["body"]["id"]] for r in results] == [f"c{i}" for i in range(30)]
    assert set(store.values) == {HEAD_KEY}, "the window journal is cleared once its window is written"

    # Cleared after success: nothing is sent again while the output exists.
    calls = graph_conn.http_calls()
    assert batch_op(source, output, window_size=10).execute({"task_state_store": store}) == summary
    assert graph_conn.http_calls() == calls


def test_changed_content_starts_afresh(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", campaigns(3))
    output = tmp_path / "out.jsonl"
    store = DictStore()
    batch_op(source, output).execute({"task_state_store": store})
    write_lines(source, campaigns(4))
    summary = batch_op(source, output).execute({"task_state_store": store})
    assert summary["count"] == 4
    assert graph_conn.counters()["objects_created"] == 7


def test_an_empty_file_sends_nothing(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    source = tmp_path / "empty.jsonl"
    source.write_text("\n\n")
    output = tmp_path / "out.jsonl"
    assert batch_op(source, output).execute({}) == {"path": str(output), "count": 0, "failed": 0}
    assert output.read_text() == ""
    assert batch_op(source).execute({}) == []
    assert submit_op(source).execute({"ti": StubTI()}) == []
    assert graph_conn.http_calls() == 0


def test_exactly_one_of_requests_and_requests_path() -> None:
    with pytest.raises(GraphInputError, match="exactly one of requests and requests_path"):
        GraphBatchOperator(task_id="b")
    with pytest.raises(GraphInputError, match="exactly one of requests and requests_path"):
        GraphBatchOperator(task_id="b", requests=[], requests_path="x.jsonl")
    with pytest.raises(GraphInputError, match="exactly one of requests and requests_path"):
        SubmitAsyncBatchOperator(task_id="s", ad_account_id=ACT, name="n")


def test_a_request_list_with_output_path(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    output = tmp_path / "list.jsonl"
    op = GraphBatchOperator(task_id="b", requests=campaigns(2), output_path=str(output), batch_options=OPTS)
    assert op.execute({}) == {"path": str(output), "count": 2, "failed": 0}
    assert [r["code"] for r in read_jsonl(output)] == [200, 200]


# ---------------------------------------------------------------------- SubmitAsyncBatchOperator


def set_sizes(ids: list[str]) -> list[int]:
    sets = GraphHook().get_request_sets(ids, fields="id,total_count")
    return [int(sets[i]["total_count"]) for i in ids]


def submit_op(source: Path, **kw: Any) -> SubmitAsyncBatchOperator:
    return SubmitAsyncBatchOperator(
        task_id="submit", ad_account_id=ACT, requests_path=str(source), name="from file", **kw
    )


def test_submit_builds_sets_from_the_file_once(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", simple(25, ACT), blank_after=3)
    store = DictStore()
    context = {"ti": StubTI(), "task_state_store": store}
    ids = submit_op(source, max_set_size=10).execute(context)
    assert len(ids) == 3
    assert set_sizes(ids) == [10, 10, 5]
    assert graph_conn.counters()["request_sets_created"] == 3
    # A retry with the same content under another name finds the sets: nothing created again.
    renamed = shutil.copy(source, tmp_path / "renamed.jsonl")
    assert submit_op(renamed, max_set_size=10).execute(context) == ids
    assert graph_conn.counters()["request_sets_created"] == 3


def test_submit_keeps_a_reference_chain_in_one_set(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    requests = simple(5, ACT)
    requests.append(
        {"name": "child", "relative_url": f"{ACT}/adsets", "body": {"campaign_id": "{result=r4:$.id}"}}
    )
    source = write_lines(tmp_path / "in.jsonl", requests)
    ids = submit_op(source, max_set_size=5).execute({"ti": StubTI()})
    assert set_sizes(ids) == [4, 2]
    # The campaign of line 5 moved with the ad set that refers to it: both sit in the second set.
    inputs = [r.get("input") for r in GraphHook().list_requests(ids[1], fields="id,input")]
    assert sorted((json.loads(i) if isinstance(i, str) else i)["name"] for i in inputs) == ["child", "r4"]


@pytest.mark.parametrize(
    ("lines", "pattern"),
    [
        (["{}", "nope"], r"on line 2: requests_path .*: not a JSON value"),
        (
            [json.dumps({"name": "x", "relative_url": f"{ACT}/campaigns", "body": "", "method": "POST"})],
            r"#0 'x' on line 1: unsupported key 'method'",
        ),
    ],
)
def test_submit_bad_line_fails_before_any_call(
    graph_conn: EmulatorAdmin, tmp_path: Path, lines: list[str], pattern: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(GraphInputError, match=pattern):
        submit_op(source).execute({"ti": StubTI()})
    assert graph_conn.http_calls() == 0


def test_submit_names_unique_across_the_file(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    requests = simple(4, ACT)
    requests[3]["name"] = "r0"
    source = write_lines(tmp_path / "in.jsonl", requests)
    with pytest.raises(GraphInputError, match=r"'r0' on line 4: duplicate name"):
        submit_op(source, max_set_size=2).execute({"ti": StubTI()})
    assert graph_conn.http_calls() == 0


def test_submit_reference_beyond_the_set_fails_naming_the_line(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    requests = simple(4, ACT)
    requests.append(
        {"name": "late", "relative_url": f"{ACT}/adsets", "body": {"campaign_id": "{result=r0:$.id}"}}
    )
    source = write_lines(tmp_path / "in.jsonl", requests)
    with pytest.raises(GraphInputError, match=r"'late' on line 5: refers to 'r0', which is on line 1"):
        submit_op(source, max_set_size=2).execute({"ti": StubTI()})
    assert graph_conn.http_calls() == 0


@pytest.mark.usefixtures("airflow_db")
def test_a_real_retry_resumes_the_file_where_the_token_was_rejected(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", campaigns(150))
    output = tmp_path / "out.jsonl"
    # Windows 1-60, 61-120, 121-150; calls of 30. The 4th call (window 2's second half) is rejected.
    with token_rejected_on_call(graph_conn, 4):
        run = run_dag("test_file_batch_retry_token", requests_path=str(source), output_path=str(output))
    assert run.state == "success"
    assert task_instance(run).try_number == 2
    assert xcom(run) == {"path": str(output), "count": 150, "failed": 0}
    # Try 1: 3 calls done, the 4th rejected (190); try 2: the 30 never sent, then the last window.
    assert [(c["status"], c["batch_size"]) for c in graph_conn.calls() if c["kind"] == "batch"] == [
        (200, 30),
        (200, 30),
        (200, 30),
        (400, 30),
        (200, 30),
        (200, 30),
    ]
    names = {c["id"]: c["name"] for c in graph_conn.objects("campaign")}
    assert len(names) == 150
    assert [names[r["body"]["id"]] for r in read_jsonl(output)] == [f"c{i}" for i in range(150)]


# ---------------------------------------------------------------------------- the example DAG


@pytest.mark.usefixtures("airflow_db")
def test_example_file_pipeline_creates_and_pauses_every_ad(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    run = run_dag("example_fb_file_pipeline", work_dir=str(tmp_path), n_ads=2500)
    assert run.state == "success"
    ads = graph_conn.objects("ad")
    assert len(ads) == 2500
    assert {ad["status"] for ad in ads} == {"PAUSED"}
    counters = graph_conn.counters()
    assert counters["request_sets_created"] == 3  # ceil(2500 / 1000)
    [folder] = list(tmp_path.iterdir())
    ids = [json.loads(line) for line in (folder / "ad_ids.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(ad["id"] for ad in ads)
    paused = read_jsonl(folder / "paused.jsonl")
    assert [r["code"] for r in paused] == [200] * 2500
    # 2500 updates in standard batches of 50.
    assert batch_calls(graph_conn) == [3] + [50] * 50
