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


def test_every_operator_sensor_and_trigger_is_in_a_listed_module() -> None:
    # Airflow's provider listing and docs read these lists: an operator left out is invisible there.
    import inspect
    import pkgutil

    from airflow_fb_async._compat import BaseOperator, BaseTrigger

    info = get_provider_info()
    listed = [
        importlib.import_module(m)
        for s in ("operators", "sensors", "triggers")
        for e in info[s]
        for m in e["python-modules"]
    ]
    reachable = {id(obj) for module in listed for obj in vars(module).values()}
    defined = set()
    for sub in ("operators", "sensors", "triggers"):
        package = importlib.import_module(f"airflow_fb_async.{sub}")
        for found in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{found.name}")
            defined |= {
                cls
                for cls in vars(module).values()
                if inspect.isclass(cls)
                and cls.__module__ == module.__name__
                and issubclass(cls, (BaseOperator, BaseTrigger))
                and not cls.__name__.startswith("_")
                and not inspect.isabstract(cls)
            }
    assert sorted(c.__name__ for c in defined if id(c) not in reachable) == []


def test_one_version_everywhere() -> None:
    from importlib.metadata import version

    import airflow_fb_async
    from airflow_fb_async.hooks.call import USER_AGENT

    # The installed metadata comes from pyproject.toml: one version in the package, its metadata,
    # the provider info and the User-Agent.
    declared = version("airflow-fb-async")
    assert airflow_fb_async.__version__ == declared
    assert get_provider_info()["versions"][0] == declared
    assert f"airflow-fb-async/{declared}" == USER_AGENT
