"""What a user installs: the wheel and sdist built from this checkout, inspected file by file.

Builds both once (``python -m build``, about 10 s) and checks the metadata, the file lists, the
license files, ``twine check --strict``, and that the declared dependencies are exactly the
third-party modules the package imports.
"""

from __future__ import annotations

import email.parser
import re
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from pathlib import Path

import pytest

import airflow_fb_async
from tests.test_imports import EDGES, _in_package

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "airflow_fb_async"

# Imported only inside GraphHook.get_connection_form_widgets, which only Airflow 2.x-3.1's UI calls:
# that UI brings them (Flask-AppBuilder), and on 3.0/3.1 Airflow substitutes stand-ins when absent.
UI_ONLY_MODULES = {"flask_appbuilder", "flask_babel", "wtforms"}
COMPAT = "airflow.providers.common.compat"
EXPECTED_REQUIRES = {
    "apache-airflow": ">=2.11.0",
    "apache-airflow-providers-common-compat": ">=1.20.0",
    "certifi": ">=2023.7.22",
    "httpx": "<1,>=0.27",
    "requests": "<3,>=2.31",
    "typing_extensions": ">=4.6",
    "urllib3": "<3,>=2",
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(zf.read(name).decode())


def requirement_names(metadata: Message) -> dict[str, str]:
    """Name -> specifier of the non-extra Requires-Dist lines."""
    out = {}
    for req in metadata.get_all("Requires-Dist") or []:
        if "extra ==" in req:
            continue
        match = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", req)
        assert match, req
        out[match.group(1).lower()] = match.group(2).strip()
    return out


def test_wheel_holds_the_package_and_its_license_only(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as zf:
        names = zf.namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"airflow_fb_async", f"airflow_fb_async-{airflow_fb_async.__version__}.dist-info"}
    assert "airflow_fb_async/py.typed" in names
    assert "airflow_fb_async/_compat.py" in names
    assert "airflow_fb_async/emulator/__main__.py" in names
    licenses = {n.rsplit("/", 1)[1] for n in names if "/licenses/" in n}
    assert licenses == {"LICENSE", "NOTICE"}
    on_disk = {str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert on_disk <= set(names)


def test_wheel_metadata(dist: dict[str, Path]) -> None:
    meta = wheel_metadata(dist["wheel"])
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.10"
    classifiers = set(meta.get_all("Classifier") or [])
    assert {"Framework :: Apache Airflow", "Framework :: Apache Airflow :: Provider"} <= classifiers
    assert {f"Programming Language :: Python :: 3.{m}" for m in (10, 11, 12, 13)} <= classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX expression says it
    assert "airflow" in (meta["Keywords"] or "")
    assert meta["Author"]
    assert requirement_names(meta) == EXPECTED_REQUIRES


def test_entry_point_in_the_wheel(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith("entry_points.txt")]
        text = zf.read(name).decode()
    assert "[apache_airflow_provider]" in text
    assert "airflow_fb_async.get_provider_info:get_provider_info" in text


def test_sdist_holds_docs_changelog_examples_and_the_whole_suite(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"LICENSE", "NOTICE", "CHANGELOG.md", "README.md", "pyproject.toml", "Makefile"} <= names
    for folder in ("docs", "dags_examples", "tests", "scripts"):
        on_disk = {
            str(p.relative_to(REPO))
            for p in (REPO / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }
        assert on_disk, folder
        assert on_disk <= names, sorted(on_disk - names)[:5]
    assert {p.name for p in REPO.glob("constraints*.txt")} <= names
    assert not [n for n in names if n.startswith((".venv/", ".compat/")) or "__pycache__" in n]


def test_twine_check_strict(dist: dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist["wheel"]), str(dist["sdist"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def third_party_imports() -> set[str]:
    """Top-level modules (``airflow.providers.common.compat`` kept whole) imported by the package,
    read from tests/test_imports.py's import graph (every import statement, lazy ones included)."""
    found = {
        COMPAT if e.target.startswith(COMPAT) else e.target.split(".")[0]
        for e in EDGES
        if not _in_package(e.target, "airflow_fb_async")
    }
    return {m for m in found if m not in sys.stdlib_module_names}


def test_declared_dependencies_are_exactly_what_the_package_imports() -> None:
    distribution = {
        "airflow": "apache-airflow",
        COMPAT: "apache-airflow-providers-common-compat",
    }
    imported = {distribution.get(m, m) for m in third_party_imports() - UI_ONLY_MODULES}
    assert imported == set(EXPECTED_REQUIRES)
