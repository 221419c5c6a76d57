"""GraphBatchOperator against the emulator: the seed's standard batch examples, errors, validation."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_fb_async._compat import AirflowFailException
from airflow_fb_async.exceptions import GraphBatchError, GraphInputError
from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.operators.batch import GraphBatchOperator
from tests.conftest import TEST_TOKEN

if TYPE_CHECKING:
    from pathlib import Path

    from tests.emu_admin import EmulatorAdmin

V = "v25.0"
ACT = "act_187687683"
OPTS: dict[str, Any] = {"round_backoff": 0.01}


def run(requests: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
    op = GraphBatchOperator(task_id="batch", requests=requests, batch_options=OPTS, **kw)
    result = op.execute({})
    json.dumps(result)  # XCom-ready
    return result


def prerequisites(account: str = ACT) -> dict[str, str]:
    hook = GraphHook()
    camp = hook.post(f"{account}/campaigns", data={"name": "seed campaign", "objective": "OUTCOME_TRAFFIC"})
    adset = hook.post(
        f"{account}/adsets",
        data={
            "name": "seed adset",
            "campaign_id": camp["id"],
            "targeting": {"geo_locations": {"countries": ["US"]}},
        },
    )
    adset2 = hook.post(f"{account}/adsets", data={"name": "seed adset 2", "campaign_id": camp["id"]})
    return {"campaign": camp["id"], "adset": adset["id"], "adset2": adset2["id"]}


def test_template_fields() -> None:
    assert GraphBatchOperator.template_fields == (
        "requests",
        "requests_path",
        "output_path",
        "files",
        "graph_conn_id",
        "api_version",
    )
    assert isinstance(GraphBatchOperator.template_fields, tuple)


def test_seed_image_creative_and_three_ads(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    pre = prerequisites()
    image = tmp_path / "test1.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 seed image")
    ad_body = (
        "adset_id={adset}&redownload=1&status=PAUSED&optimization_goal=REACH&billing_event=IMPRESSIONS&&"
        'creative={{"creative_id":"{{result=create_creative:$.id}}"}}&targeting={{"countries":["US"]}}&name={name}'
    )
    requests = [
        {
            "method": "POST",
            "name": "create_adimage",
            "relative_url": f"{V}/{ACT}/adimages",
            "attached_files": "test1",
        },
        {
            "method": "POST",
            "name": "create_creative",
            "relative_url": f"{V}/{ACT}/adcreatives",
            "attached_files": "test1",
            "body": 'name=sample creative&object_story_spec={"link_data": {"image_hash": '
            '"{result=create_adimage:$.images.*.hash}", "link": "https://www.test12345.com", "message": '
            '"this is a sample message"}, "page_id":"12345678"}&degrees_of_freedom_spec={"creative_features_spec": '
            '{"standard_enhancements": {"enroll_status": "OPT_OUT"}}}',
        },
    ] + [
        {
            "method": "POST",
            "relative_url": f"{V}/{ACT}/ads",
            "body": ad_body.format(adset=pre["adset"], name=f"test{k}"),
        }
        for k in (1, 2, 3)
    ]
    results = run(requests, files={"test1": str(image)})
    assert [r["code"] for r in results] == [200] * 5, results
    image_hash = next(iter(results[0]["body"]["images"].values()))["hash"]
    creative = {o["id"]: o for o in graph_conn.objects("adcreative")}[results[1]["body"]["id"]]
    assert creative["object_story_spec"]["link_data"]["image_hash"] == image_hash
    ads = graph_conn.objects("ad")
    assert sorted(a["name"] for a in ads) == ["test1", "test2", "test3"]
    assert all(a["creative"]["creative_id"] == results[1]["body"]["id"] for a in ads)
    assert all(a["adset_id"] == pre["adset"] for a in ads)
    # redownload=1: the ads come back in full.
    assert [r["body"]["name"] for r in results[2:]] == ["test1", "test2", "test3"]
    assert graph_conn.counters()["calls_by_kind"]["batch"] == 1


def make_ads(n: int, adset: str) -> list[str]:
    hook = GraphHook()
    creative = hook.post(f"{ACT}/adcreatives", data={"name": "c"})["id"]
    return [
        hook.post(
            f"{ACT}/ads", data={"name": f"ad{i}", "adset_id": adset, "creative": {"creative_id": creative}}
        )["id"]
        for i in range(n)
    ]


def test_seed_updates_with_redownload(graph_conn: EmulatorAdmin) -> None:
    pre = prerequisites()
    ads = make_ads(3, pre["adset"])
    results = run(
        [{"method": "POST", "relative_url": f"{V}/{ad}", "body": "redownload=1&name=new name"} for ad in ads]
    )
    assert [r["code"] for r in results] == [200] * 3
    assert [r["body"]["id"] for r in results] == ads
    assert all(r["body"]["name"] == "new name" for r in results)
    assert {o["name"] for o in graph_conn.objects("ad")} == {"new name"}


def test_seed_gets_of_ids_ads_and_insights(graph_conn: EmulatorAdmin) -> None:
    pre = prerequisites()
    ads_a = make_ads(2, pre["adset"])
    ads_b = make_ads(1, pre["adset2"])
    results = run(
        [
            {"method": "GET", "relative_url": f"{V}/?ids={ads_a[0]},{ads_b[0]}&fields=id,name"},
            {"method": "GET", "relative_url": f"{V}/{pre['adset']}/ads?fields=id,name"},
            {
                "method": "GET",
                "relative_url": f"{V}/{ACT}/ads?adset_ids=[{pre['adset']}, {pre['adset2']}]&fields=id",
            },
            {
                "method": "GET",
                "relative_url": f"{V}/{ACT}/insights?filtering=[{{field:'ad.id',operator:'IN',"
                f"value:[{ads_a[0]},{ads_b[0]}]}}]",
            },
            {"method": "GET", "relative_url": f"{V}/{ads_a[0]}/insights"},
            {
                "method": "GET",
                "relative_url": f"{V}/{ACT}/insights?filtering=[{{field:'adset.id',operator:'IN',"
                f"value:[{pre['adset']}, {pre['adset2']}]}}]",
            },
        ]
    )
    assert [r["code"] for r in results] == [200] * 6, results
    assert set(results[0]["body"]) == {ads_a[0], ads_b[0]}
    assert sorted(a["id"] for a in results[1]["body"]["data"]) == sorted(ads_a)
    assert sorted(a["id"] for a in results[2]["body"]["data"]) == sorted(ads_a + ads_b)
    for r in results[3:]:
        assert isinstance(r["body"]["data"], list)
    assert graph_conn.counters()["calls_by_kind"]["batch"] == 1


def test_seed_reachestimate(graph_conn: EmulatorAdmin) -> None:
    results = run(
        [
            {
                "method": "GET",
                "relative_url": f"{V}/act_600335/reachestimate?targeting_spec={{'geo_locations': "
                f"{{'countries':['{country}']}}}}",
            }
            for country in ("US", "FR")
        ]
    )
    assert [r["code"] for r in results] == [200, 200], results
    assert all(r["body"] for r in results)


def test_fail_on_error_names_the_failures_after_the_whole_batch(graph_conn: EmulatorAdmin) -> None:
    requests = [
        {"method": "GET", "relative_url": "act_1?fields=id"},
        {
            "method": "POST",
            "relative_url": "act_1/campaigns",
            "body": {"name": "no objective"},
            "name": "bad",
        },
        {
            "method": "POST",
            "relative_url": "act_1/campaigns",
            "body": {"name": "ok", "objective": "OUTCOME_TRAFFIC"},
        },
    ]
    op = GraphBatchOperator(task_id="b", requests=requests, batch_options=OPTS)
    with pytest.raises(GraphBatchError) as info:
        op.execute({})
    text = str(info.value)
    assert "1 of 3 batch entries failed" in text
    assert "#1 'bad' (POST): code 400, error 100" in text
    assert TEST_TOKEN not in text
    assert info.value.failures[0]["index"] == 1
    # The rest of the batch ran.
    assert graph_conn.counters()["objects_created"] == 1


def test_fail_on_error_false_returns_results(graph_conn: EmulatorAdmin) -> None:
    results = run(
        [
            {"method": "POST", "relative_url": "act_1/campaigns", "body": "name=x"},
            {"method": "GET", "relative_url": "act_1"},
        ],
        fail_on_error=False,
        include_headers=False,
    )
    assert results[0]["code"] == 400
    assert results[1]["code"] == 200
    assert results[1]["headers"] == {}


def test_validation_before_any_call(graph_conn: EmulatorAdmin) -> None:
    op = GraphBatchOperator(
        task_id="b",
        requests=[
            {"method": "GET", "relative_url": "me"},
            {"method": "GET", "relative_url": "{result=x:$.id}"},
        ],
    )
    with pytest.raises(GraphInputError, match=r"request #1: .*unknown name 'x'"):
        op.execute({})
    assert graph_conn.http_calls() == 0


def test_validation_needs_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT", raising=False)
    op = GraphBatchOperator(task_id="b", requests=[{"method": "FETCH", "relative_url": "me"}])
    with pytest.raises(GraphInputError, match="unknown method"):
        op.execute({})


def test_templated_requests_render(graph_conn: EmulatorAdmin) -> None:
    from airflow.sdk import DAG

    with DAG("t_batch_render", schedule=None):
        op = GraphBatchOperator(
            task_id="b",
            requests=[
                {"method": "GET", "relative_url": "{{ params.acct }}?fields=id", "name": "{{ params.n }}"}
            ],
            batch_options=OPTS,
        )
    op.render_template_fields({"params": {"acct": "act_42", "n": "first"}})
    assert op.requests == [{"method": "GET", "relative_url": "act_42?fields=id", "name": "first"}]
    assert op.execute({})[0]["body"]["id"] == "act_42"


def test_requests_rendered_to_text_are_read_as_the_list(graph_conn: EmulatorAdmin) -> None:
    # requests="{{ ti.xcom_pull(task_ids='build') }}" renders (non-native) to the list's repr.
    requests = [{"method": "GET", "relative_url": "me"}, {"method": "GET", "relative_url": f"{ACT}"}]
    op = GraphBatchOperator(task_id="batch", requests="{{ params.reqs }}", batch_options=OPTS)
    op.render_template_fields({"params": {"reqs": requests}})  # type: ignore[arg-type]
    assert isinstance(op.requests, str)
    result = op.execute({})
    assert [entry["code"] for entry in result] == [200, 200]


@pytest.mark.parametrize("requests", [[], "{{ params.reqs }}"])
def test_empty_requests_succeed_with_nothing_sent(
    requests: Any, graph_conn: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT")  # not even a connection lookup
    op = GraphBatchOperator(task_id="b", requests=requests)
    op.render_template_fields({"params": {"reqs": []}})  # an XCom of [] rendered to "[]"
    assert op.execute({}) == []
    assert graph_conn.http_calls() == 0


def test_progress_is_logged_at_info(graph_conn: EmulatorAdmin, caplog: pytest.LogCaptureFixture) -> None:
    requests = [{"method": "GET", "relative_url": f"act_{i}?fields=id"} for i in range(1, 501)]
    with caplog.at_level(logging.INFO, logger="airflow_fb_async"):
        results = run(requests, max_concurrency=1)
    assert [r["code"] for r in results] == [200] * 500
    progress = [r for r in caplog.records if r.getMessage().startswith("batch progress:")]
    assert progress
    assert all(r.levelno == logging.INFO for r in progress)
    assert progress[-1].getMessage().startswith("batch progress: 500/500 entries done, 0 errors")


def test_without_a_task_state_store_the_log_says_retries_may_resend(
    graph_conn: EmulatorAdmin, capsys: pytest.CaptureFixture[str]
) -> None:
    run([{"method": "GET", "relative_url": "me"}])
    out = capsys.readouterr().out
    assert "[info" in out
    assert "no task_state_store (Airflow 3.3+)" in out
    assert "a retry of this task may resend requests that an earlier try already sent" in out


class _Try:
    """The ``ti`` of a later try, on an Airflow without ``task_state_store`` (before 3.3)."""

    def __init__(self, try_number: int) -> None:
        self.try_number = try_number


def test_without_a_state_store_a_later_try_refuses_to_resend_creates(graph_conn: EmulatorAdmin) -> None:
    creates = [
        {"method": "POST", "relative_url": f"{ACT}/campaigns", "body": {"name": f"c{i}", "objective": "X"}}
        for i in range(3)
    ]
    reads = [{"method": "GET", "relative_url": "me"}]
    op = GraphBatchOperator(task_id="b", requests=creates + reads, batch_options=OPTS)
    with pytest.raises(AirflowFailException) as info:
        op.execute({"ti": _Try(2)})
    text = str(info.value)
    assert "try 2" in text
    assert "3 of 4 requests are not repeatable" in text
    assert "#0, #1, #2" in text
    assert "resend_creates_without_state=True" in text
    assert graph_conn.counters()["http_calls"] == 0

    # Reads and updates alone are harmless to resend; the first try and the opt-in send creates.
    assert [
        r["code"]
        for r in GraphBatchOperator(task_id="r", requests=reads, batch_options=OPTS).execute({"ti": _Try(2)})
    ] == [200]
    first = GraphBatchOperator(task_id="c", requests=creates, batch_options=OPTS).execute({"ti": _Try(1)})
    again = GraphBatchOperator(
        task_id="c2", requests=creates, batch_options=OPTS, resend_creates_without_state=True
    ).execute({"ti": _Try(2)})
    assert [r["code"] for r in first + again] == [200] * 6
    assert graph_conn.counters()["objects_created"] == 6
