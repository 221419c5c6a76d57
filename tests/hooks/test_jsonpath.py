"""The client-side JSONPath subset used to resolve ``{result=NAME:$.path}`` across batch calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fb_async.hooks import jsonpath
from airflow_fb_async.hooks.jsonpath import JSONPathError, compile_path, find, resolve

DOC = {
    "id": "123",
    "data": [{"id": "a1", "n": 1}, {"id": "a2", "n": 2}],
    "images": {"test1.jpg": {"hash": "h1", "url": "u1"}, "test2.jpg": {"hash": "h2"}},
    "nested": {"a": {"b": {"c": True}}},
    "num": {"0": "zero-key"},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.id", ["123"]),
        ("$.data.0.id", ["a1"]),
        ("$.data[1].id", ["a2"]),
        ("$.data.*.id", ["a1", "a2"]),
        ("$.data[*].n", [1, 2]),
        ("$.images.*.hash", ["h1", "h2"]),
        ("$.images['test1.jpg'].url", ["u1"]),
        ('$.images["test2.jpg"].hash', ["h2"]),
        ("$.nested.a.b.c", [True]),
        ("$.num.0", ["zero-key"]),
        ("$.data.-1.id", []),
        ("$.data[-1].id", ["a2"]),
        ("$.missing", []),
        ("$.data.5.id", []),
        ("$.id.x", []),
        ("$.images.*.url", ["u1"]),
    ],
)
def test_find(path: str, expected: list[object]) -> None:
    assert find(DOC, path) == expected


def test_root_and_whole_document() -> None:
    assert find(DOC, "$") == [DOC]
    assert resolve({"a": [1, 2]}, "$") == '{"a":[1,2]}'


def test_resolve_joins_with_commas_and_formats_values() -> None:
    assert resolve(DOC, "$.data.*.id") == "a1,a2"
    assert resolve(DOC, "$.images.*.hash") == "h1,h2"
    assert resolve(DOC, "$.nested.a.b.c") == "true"
    assert resolve(DOC, "$.data.*.n") == "1,2"
    assert resolve(DOC, "$.nested.a") == '{"b":{"c":true}}'
    assert resolve(DOC, "$.nothing") is None
    assert resolve(None, "$.id") is None


@pytest.mark.parametrize(
    "bad",
    ["", "id", "data.0", "$..id", "$.", "$.a b", "$[", "$[abc]", "$.a[1", "$.a!", "$.*x"],
)
def test_bad_syntax(bad: str) -> None:
    with pytest.raises(JSONPathError):
        compile_path(bad)


def test_compile_is_cached_and_reusable() -> None:
    path = compile_path("$.data.*.id")
    assert path is compile_path("$.data.*.id")
    assert path.find({"data": [{"id": 1}]}) == [1]


def test_not_shared_with_emulator() -> None:
    """Independent code on purpose: the client must not import the emulator's resolver."""
    source = Path(jsonpath.__file__).read_text(encoding="utf-8")
    assert "emulator" not in source.split('"""', 2)[2]
