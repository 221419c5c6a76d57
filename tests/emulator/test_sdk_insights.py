"""The unmodified official SDK's async insights walk (``get_insights(is_async=True)``) on the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emu_admin import EmulatorAdmin
from tests.waits import wait_for

facebook_business = pytest.importorskip("facebook_business")


def test_sdk_async_insights_job(sdk_api: Any, emu: EmulatorAdmin) -> None:
    from facebook_business.adobjects.adaccount import AdAccount
    from facebook_business.adobjects.adreportrun import AdReportRun
    from facebook_business.adobjects.adsinsights import AdsInsights

    emu.config(insights_pace=400)
    account = AdAccount("act_31")
    campaign_ids = [
        account.create_campaign(params={"name": f"c{i}", "objective": "OUTCOME_TRAFFIC"})["id"]
        for i in range(2)
    ]
    # The SDK's documented walk: start, poll api_get() until 100 % / Job Completed, get_result().
    job = account.get_insights(
        fields=[AdsInsights.Field.campaign_id, AdsInsights.Field.impressions, AdsInsights.Field.spend],
        params={
            "level": "campaign",
            "time_range": {"since": "2025-03-01", "until": "2025-03-05"},
            "time_increment": 1,
        },
        is_async=True,
    )
    assert isinstance(job, AdReportRun)

    def status() -> str:
        job.api_get()
        seen = str(job[AdReportRun.Field.async_status])
        assert seen in ("Job Not Started", "Job Started", "Job Running", "Job Completed"), job
        return seen

    wait_for(status, lambda seen: seen == "Job Completed", "the report run to complete")
    assert job[AdReportRun.Field.async_percent_completion] == 100
    assert job[AdReportRun.Field.account_id] == "31"
    rows = [dict(row) for row in job.get_result(params={"limit": 3})]  # the cursor follows 4 pages
    assert len(rows) == 10
    assert {(r["campaign_id"], r["date_start"]) for r in rows} == {
        (c, f"2025-03-0{d}") for c in campaign_ids for d in range(1, 6)
    }
    assert all(
        isinstance(r["impressions"], str)
        and set(r) == {"campaign_id", "impressions", "spend", "date_start", "date_stop"}
        for r in rows
    )
    kinds = emu.counters()["calls_by_kind"]
    assert kinds["insights_start"] == 1
    assert kinds["get_edge"] == 4  # the rows' pages
