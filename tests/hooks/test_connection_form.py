"""The connection form shows every extra the hook reads, on every supported Airflow.

Airflow 3.2+ builds it from the provider info; 2.x, 3.0 and 3.1 from the hook's
``get_connection_form_widgets`` / ``get_ui_field_behaviour``. The same tests run in the main venv
(Airflow 3.3) and in the Airflow 2.11 venv of ``make compat`` (scripts/compat_check.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from airflow_fb_async.get_provider_info import get_provider_info
from airflow_fb_async.hooks.config import EXTRA_PREFIX, parse_conn_config
from airflow_fb_async.hooks.connection_form import EXTRA_FIELDS
from airflow_fb_async.hooks.graph import GraphHook
from tests.conftest import CONN_ENV, TEST_TOKEN
from tests.emu_admin import EmulatorAdmin

FORM_NAMES = {field.name for field in EXTRA_FIELDS}


class RecordingExtra(dict[str, Any]):
    """An extra that records every key the parser asks for."""

    def __init__(self) -> None:
        super().__init__(unrelated=1)  # non-empty: the parser treats an empty extra as none
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_every_extra_the_hook_reads_is_a_form_field() -> None:
    extra = RecordingExtra()
    parse_conn_config("c", host=None, password="t", extra=extra)
    plain = {key for key in extra.asked if not key.startswith(EXTRA_PREFIX)}
    assert plain == FORM_NAMES
    assert len(FORM_NAMES) == len(EXTRA_FIELDS) == 11


def test_form_defaults_are_the_hook_defaults() -> None:
    config = parse_conn_config("c", host=None, password="t", extra={})
    for field in EXTRA_FIELDS:
        expected = False if field.kind == "boolean" else field.default
        assert getattr(config, field.name) == expected, field.name


def test_provider_info_lists_every_field() -> None:
    (conn,) = get_provider_info()["connection-types"]
    assert set(conn["conn-fields"]) == FORM_NAMES
    assert conn["conn-fields"]["app_secret"]["schema"]["format"] == "password"
    assert conn["ui-field-behaviour"]["hidden-fields"] == ["schema", "port", "login"]


def test_hook_methods_are_defined_on_the_hook_class_itself() -> None:
    """Airflow 2.x-3.1 look for them in the class's own __dict__, not in a base class."""
    assert "get_connection_form_widgets" in GraphHook.__dict__
    assert "get_ui_field_behaviour" in GraphHook.__dict__
    behaviour = GraphHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == ["schema", "port", "login"]
    assert behaviour["relabeling"] == {"host": "Graph API base URL", "password": "Access token"}


def test_widgets_are_fields_every_airflow_accepts() -> None:
    """Only the WTForms classes Airflow 2.x-3.1 allow; passwords as password fields."""
    wtforms = pytest.importorskip("wtforms")
    pytest.importorskip("flask_appbuilder")
    widgets = GraphHook.get_connection_form_widgets()
    assert set(widgets) == FORM_NAMES
    allowed = {wtforms.StringField, wtforms.PasswordField, wtforms.IntegerField, wtforms.BooleanField}
    assert {w.field_class for w in widgets.values()} <= allowed
    assert widgets["app_secret"].field_class is wtforms.PasswordField
    assert widgets["page_size"].field_class is wtforms.IntegerField
    assert widgets["appsecret_time"].field_class is wtforms.BooleanField


# Run in a fresh interpreter: ProvidersManager is a process-wide singleton that other tests fill.
_READ_FORM = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from airflow.providers_manager import ProvidersManager
    pm = ProvidersManager()
    hook = pm.hooks["facebook_graph"]
    widgets = pm.connection_form_widgets
    behaviours = pm.field_behaviours
print(json.dumps({
    "hook": hook.hook_class_name if hook else None,
    "widgets": sorted(k for k in widgets if k.startswith("extra__facebook_graph__")),
    "sensitive": sorted(k for k, w in widgets.items() if k.startswith("extra__facebook_graph__") and w.is_sensitive),
    "behaviour": behaviours.get("facebook_graph"),
    "warnings": [str(w.message) for w in caught if "GraphHook" in str(w.message)],
}))
"""


def test_airflow_builds_the_whole_form_without_deprecation_warnings() -> None:
    """What the UI gets, read through the installed Airflow's own ProvidersManager."""
    out = subprocess.run(
        [sys.executable, "-c", _READ_FORM], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    form = json.loads(out.strip().splitlines()[-1])
    assert form["hook"] == "airflow_fb_async.hooks.graph.GraphHook"
    assert form["widgets"] == sorted(EXTRA_PREFIX + name for name in FORM_NAMES)
    assert form["sensitive"] == [EXTRA_PREFIX + "app_secret"]
    assert form["behaviour"]["hidden_fields"] == ["schema", "port", "login"]
    assert form["behaviour"]["relabeling"]["password"] == "Access token"
    assert form["warnings"] == []


def test_values_typed_in_the_form_reach_graph(
    graph_conn: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form stores text under extra__facebook_graph__<name>; the hook reads it as typed values."""
    extra = {
        EXTRA_PREFIX + "page_size": "2",
        EXTRA_PREFIX + "api_version": "v24.0",
        EXTRA_PREFIX + "timeout": "30",
    }
    conn = {"conn_type": "facebook_graph", "host": graph_conn.url, "password": TEST_TOKEN, "extra": extra}
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    hook = GraphHook()
    hook.post("act_42/campaigns", data={"name": "a", "objective": "OUTCOME_TRAFFIC"})
    hook.post("act_42/campaigns", data={"name": "b", "objective": "OUTCOME_TRAFFIC"})
    hook.post("act_42/campaigns", data={"name": "c", "objective": "OUTCOME_TRAFFIC"})
    assert len(list(hook.paginate("act_42/campaigns"))) == 3
    reads = [c for c in graph_conn.calls() if c["method"] == "GET"]
    assert len(reads) == 2  # pages of 2
    assert all("/v24.0/" in c["path"] for c in graph_conn.calls())
    assert hook.config.timeout == 30.0
