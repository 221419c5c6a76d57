"""airflow_fb_async/_compat.py is the one place that knows where Airflow's names live.

Any other module importing from ``airflow`` directly would work on one Airflow and break on another
(``airflow.sdk`` does not exist on 2.11; ``airflow.models.baseoperator`` warns on 3.x). The example
DAGs, which ``make compat`` runs on Airflow 2.11 and 3.3, take their names from common-compat.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from airflow_fb_async import _compat

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "airflow_fb_async"


def airflow_imports(path: Path) -> list[str]:
    """Modules under ``airflow`` (not this package) that a file imports, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "airflow"]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "airflow"
        ):
            found.append(str(node.module))
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if p.name != "_compat.py"),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_module_but_compat_imports_airflow(path: Path) -> None:
    assert airflow_imports(path) == []


@pytest.mark.parametrize("path", sorted((REPO / "dags_examples").glob("*.py")), ids=lambda p: p.name)
def test_examples_take_airflow_names_from_common_compat(path: Path) -> None:
    for module in airflow_imports(path):
        assert module.startswith("airflow.providers.common.compat"), module


def test_compat_exports_what_it_lists() -> None:
    for name in _compat.__all__:
        assert getattr(_compat, name) is not None, name


def test_str_enum_members_are_their_values() -> None:
    class Colour(_compat.StrEnum):
        RED = "RED"

    assert Colour.RED == "RED"
    assert str(Colour.RED) == "RED"
    assert f"{Colour.RED}" == "RED"
