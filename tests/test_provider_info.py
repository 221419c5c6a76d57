"""The provider-info dict must satisfy the installed Airflow's schema: a bad one breaks every Airflow command."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_fb_async.get_provider_info import get_provider_info


def test_provider_info_matches_airflow_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_is_registered() -> None:
    eps = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_fb_async")
    ]
    assert len(eps) == 1
    assert eps[0].load()()["package-name"] == "airflow-fb-async"


@pytest.mark.parametrize("section", ["hooks", "operators", "sensors", "triggers"])
def test_every_listed_module_imports(section: str) -> None:
    for entry in get_provider_info()[section]:
        for module in entry["python-modules"]:
            importlib.import_module(module)


def test_connection_type_points_at_the_hook() -> None:
    (conn,) = get_provider_info()["connection-types"]
    module, _, cls = conn["hook-class-name"].rpartition(".")
    hook_cls = getattr(importlib.import_module(module), cls)
    assert hook_cls.conn_type == conn["connection-type"] == "facebook_graph"
    assert hook_cls.default_conn_name == "facebook_graph_default"
