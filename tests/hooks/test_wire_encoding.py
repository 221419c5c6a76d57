"""The fast wire paths of a call (issue 14 point 5) give exactly what the slow ones gave.

- :func:`encode_form` (the sync hook's pre-encoded form body) is byte for byte ``urlencode``, the
  body ``requests`` builds from a dict; over HTTP the emulator stores the values as sent.
- :func:`accounts_in` (which ad accounts a call touches, for the throttle) finds what the regex
  ``\\bact_(\\d+)`` finds.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest

from airflow_fb_async.hooks.encoding import encode_form, quote_all, quote_form
from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.hooks.throttle import accounts_in

TRICKY = [
    "".join(map(chr, range(128))),  # every ASCII character
    "",
    "name",
    "a b+c%20d&e=f",
    "%2520 literal, + plus, %+ both",
    "héllo wörld ✓ 日本 \U0001f600",
    '[{"method":"POST","relative_url":"act_1/campaigns","body":"name=a%20b"}]',
]


# Long texts take the str.replace path: every ASCII character, escapes next to each other, a
# standard batch's JSON.
TRICKY += [text * 40 for text in TRICKY if text] + ["%+ " * 100, " +%" * 100, "a" * 129, "%" * 129]


@pytest.mark.parametrize("text", TRICKY)
def test_fast_quotes_are_urllib_quotes(text: str) -> None:
    assert quote_all(text) == quote(text, safe="")
    assert quote_form(text) == quote_plus(text, safe="")


def test_encode_form_is_what_requests_sends() -> None:
    fields = {f"k{i} {text[:5]}": text for i, text in enumerate(TRICKY)}
    fields["access_token"] = "tok en/+="
    assert encode_form(fields) == urlencode(fields).encode("ascii")
    assert encode_form({}) == b""


def _regex_accounts(*texts: str | None) -> list[str]:
    found: list[str] = []
    for text in texts:
        for match in re.finditer(r"\bact_(\d+)", text or ""):
            if match.group(1) not in found:
                found.append(match.group(1))
    return found


@pytest.mark.parametrize(
    "texts",
    [
        ("act_1/campaigns",),
        ("act_12/ads", "act_12/adsets", "act_3"),
        ("xact_1 fact_2 _act_3 9act_4 act_ act_x",),  # no word boundary, or no digits
        ("act_act_5 (act_6)-act_7/act_8?x=act_9&y=%20act_10",),
        ('[{"relative_url":"act_1/ads","body":"account=act_2"},{"relative_url":"act_1"}]',),
        ("é act_٣4", "act_11"),  # \d is Unicode: a non-ASCII digit counts, as in the regex
        ("", None, "no accounts here"),
    ],
)
def test_accounts_in_matches_the_regex(texts: tuple[str | None, ...]) -> None:
    assert accounts_in(*texts) == _regex_accounts(*texts)


TRICKY_NAMES = ["a b+c%20d&e=f", "héllo ✓ 日本 \U0001f600", "x=1&access=act_5 %+"]


def test_form_bodies_arrive_as_sent(graph_conn: Any) -> None:
    """Plain POST and standard batch (the root POST with the token) through the pre-encoded body:
    the emulator decodes and stores every name exactly."""
    with GraphHook() as hook:
        created = [
            hook.post("act_1/campaigns", data={"name": TRICKY_NAMES[0], "objective": "OUTCOME_SALES"})["id"]
        ]
        results = hook.batch(
            [
                {
                    "method": "POST",
                    "relative_url": "act_1/campaigns",
                    "body": {"name": n, "objective": "OUTCOME_SALES", "tags": [n]},
                }
                for n in TRICKY_NAMES
            ]
        )
        assert [r["code"] for r in results] == [200] * len(TRICKY_NAMES)
        created += [r["body"]["id"] for r in results]
        names = [hook.get(object_id, params={"fields": "name"})["name"] for object_id in created]
    assert names == [TRICKY_NAMES[0], *TRICKY_NAMES]
    stored = {o["id"]: o for o in graph_conn.objects("campaign")}
    assert [stored[i]["name"] for i in created] == names
    assert [json.loads(stored[i]["tags"]) for i in created[1:]] == [[n] for n in TRICKY_NAMES]
