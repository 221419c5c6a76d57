"""The typed errors: Graph's HTTP status under its own name, fields given at construction."""

from __future__ import annotations

import pickle

import pytest

from airflow_fb_async._compat import AirflowException
from airflow_fb_async.exceptions import AsyncRequestSetError, GraphAPIError, GraphThrottledError
from airflow_fb_async.waiting.events import event_result, make_event

SUMMARY = {"7": {"total_count": 5, "success_count": 3, "error_count": 2, "canceled_count": 0}}


def test_http_status_is_graphs_status_and_status_code_is_a_deprecated_alias() -> None:
    err = GraphThrottledError("slow down", code=4, http_status=400, retry_after=2.0)
    assert err.http_status == 400
    assert "HTTP 400" in str(err)
    assert err.to_dict()["http_status"] == 400
    with pytest.warns(DeprecationWarning, match="http_status"):
        assert err.status_code == 400
    # AirflowException's own status_code (the API server's) is left alone on other errors
    assert "status_code" not in vars(err)
    assert AirflowException.status_code != 400


def test_status_code_keyword_still_works_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="http_status"):
        err = GraphAPIError("boom", code=1, status_code=503)
    assert err.http_status == 503


def test_api_errors_survive_pickling_with_their_fields() -> None:
    err = GraphThrottledError("slow down", code=17, http_status=400, retry_after=3.5, method="GET", path="me")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is GraphThrottledError
    assert (copy.http_status, copy.code, copy.retry_after, str(copy)) == (400, 17, 3.5, str(err))


@pytest.mark.parametrize("status", ["error", "timeout"])
def test_set_errors_carry_status_and_counts_from_construction(status: str) -> None:
    with pytest.raises(AsyncRequestSetError) as info:
        event_result(make_event(status, "boom", SUMMARY))
    assert info.value.status == status
    assert info.value.request_sets == SUMMARY
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.status, copy.request_sets, str(copy)) == (status, SUMMARY, str(info.value))


def test_set_error_defaults() -> None:
    err = AsyncRequestSetError("results are not JSON-serialisable")
    assert (err.status, err.request_sets) == (None, {})
