"""The action grammar contract: a table of valid and invalid actions, properties, and large inputs."""

from __future__ import annotations

import json
import math
import re
import signal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agentic import Action, ActionKind, parse_action, render_action
from agentic.bench.fuzz import FRAGMENTS

TOOL, ASK, FINISH, TEXT, INVALID = (
    ActionKind.TOOL,
    ActionKind.ASK,
    ActionKind.FINISH,
    ActionKind.TEXT,
    ActionKind.INVALID,
)

VALID = [
    # (text, kind, thought, content, tool, arguments, discarded)
    (
        'I need the sum. <tool name="calculator">{"expression": "2+3"}</tool>',
        TOOL,
        "I need the sum.",
        "",
        "calculator",
        {"expression": "2+3"},
        "",
    ),
    (
        '<tool  name = "calc" >  { "a" : 1 , "b": [true, null] }  </tool >',
        TOOL,
        "",
        "",
        "calc",
        {"a": 1, "b": [True, None]},
        "",
    ),
    ('<tool name="ping"></tool>', TOOL, "", "", "ping", {}, ""),
    ('<tool name="ping">  \n </tool>', TOOL, "", "", "ping", {}, ""),
    ('<tool name="ns.sub-tool_2">{}</tool>', TOOL, "", "", "ns.sub-tool_2", {}, ""),
    ('<tool name="_x">{"q": "a<b>c</tool> \\" done"}</tool>', TOOL, "", "", "_x", {"q": 'a<b>c</tool> " done'}, ""),
    ("<ask>  How many boxes?  </ask>", ASK, "", "How many boxes?", None, {}, ""),
    ("<ask>is 3 < 4 > 2, or <finish>?</ask>", ASK, "", "is 3 < 4 > 2, or <finish>?", None, {}, ""),
    ("if a<b and c>d then\n<finish>42</finish>", FINISH, "if a<b and c>d then", "42", None, {}, ""),
    ("<finish></finish>", FINISH, "", "", None, {}, ""),
    ("<ask>a</ask><finish>b</finish>", ASK, "", "a", None, {}, "<finish>b</finish>"),
    (
        "<finish>done</finish> and then some chatter </tool>",
        FINISH,
        "",
        "done",
        None,
        {},
        " and then some chatter </tool>",
    ),
    ("思考する <finish>答え ✓ 🎉</finish>", FINISH, "思考する", "答え ✓ 🎉", None, {}, ""),
    ('<tool name="t">{"emoji": "🎉", "n": -1.5e3}</tool>', TOOL, "", "", "t", {"emoji": "🎉", "n": -1500.0}, ""),
    (
        "just thinking out loud <tools> <asking> a -> b",
        TEXT,
        "",
        "just thinking out loud <tools> <asking> a -> b",
        None,
        {},
        "",
    ),
    ("", TEXT, "", "", None, {}, ""),
]

INVALID_CASES = [
    # (text, error fragment, position)
    ("<ask>How many", "never closed: expected </ask>", 13),
    ("<finish>4", "never closed: expected </finish>", 9),
    ('<tool name="calc">{"a": 1}', "never closed: expected </tool>", 26),
    ('<tool name="calc">{"a": "unterminated</tool>', "Unterminated string", 44),
    ("<tool>{}</tool>", "malformed tool tag", 0),
    ("<tool name=calc>{}</tool>", "malformed tool tag", 0),
    ('<tool name="1calc">{}</tool>', "malformed tool tag", 0),
    ("<tool name='calc'>{}</tool>", "malformed tool tag", 0),
    ("thinking </finish>", "has no opening <finish>", 9),
    ("</ask>", "has no opening <ask>", 0),
    ('<tool name="calc">[1, 2]</tool>', "must be a JSON object", 18),
    ('<tool name="calc">"x"</tool>', "must be a JSON object", 18),
    ('<tool name="calc">{expression: "1"}</tool>', "not valid JSON", 19),
    ('<tool name="calc">{"a": 1} trailing</tool>', "not valid JSON", 27),
    ('<tool name="calc">{"a": NaN}</tool>', "not usable JSON", 18),
    ("the result is <result>5</result>", "written by the environment", 14),
    ("<user>yes</user>", "written by the environment", 0),
    ('<Tool name="calc">{}</Tool>', "malformed", 0),
    ("<ASK>hi</ASK>", "malformed", 0),
]


@pytest.mark.parametrize("text, kind, thought, content, tool, arguments, discarded", VALID)
def test_valid_actions(text, kind, thought, content, tool, arguments, discarded):
    action = parse_action(text)
    assert action == Action(kind, thought=thought, content=content, tool=tool, arguments=arguments)
    assert action.raw == text
    assert action.discarded == discarded


@pytest.mark.parametrize("text, fragment, position", INVALID_CASES)
def test_invalid_actions_say_where_and_what(text, fragment, position):
    action = parse_action(text)
    assert action.kind is INVALID
    assert fragment in action.error
    assert action.position == position
    assert f"at char {position}" in action.error
    assert action.expected, "an invalid action names what was expected"


def test_invalid_keeps_the_thought_before_the_problem():
    action = parse_action("Let me ask. <ask>How many")
    assert action.kind is INVALID and action.thought == "Let me ask."


def test_non_string_input_is_invalid_not_an_exception():
    assert parse_action(None).kind is INVALID  # type: ignore[arg-type]
    assert parse_action(b"<finish>1</finish>").kind is INVALID  # type: ignore[arg-type]


def test_huge_integers_and_deep_nesting_are_invalid_not_exceptions():
    assert "not usable JSON" in parse_action('<tool name="c">{"n": ' + "9" * 5000 + "}</tool>").error
    deep = '<tool name="c">' + '{"a":' * 5000 + "1" + "}" * 5000 + "</tool>"
    assert parse_action(deep).kind is INVALID


# -- properties --------------------------------------------------------------------------

fragments = st.sampled_from(
    [
        *FRAGMENTS,  # the fuzz audit's tag pieces, numbers JSON cannot hold, surrogates, control codes, markup
        ' name="calc">',
        ":",
        ",",
        "[",
        "]",
        "1",
        "\n",
        "<",
        ">",
        "=",
        "null",
        "</",
        "-1E999",
    ]
)
actionish_text = st.lists(st.one_of(fragments, st.text(max_size=5)), max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), actionish_text))
def test_parse_never_raises_and_valid_actions_round_trip(text):
    action = parse_action(text)
    assert isinstance(action, Action) and action.raw == text
    if action.kind is INVALID:
        assert action.error and action.position is not None and 0 <= action.position <= len(text)
    else:
        assert parse_action(render_action(action)) == action


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**18), 10**18)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
tool_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,12}", fullmatch=True)


def _plain(text: str) -> bool:
    """Text that can stand as a thought: stripped and free of tag-like sequences."""
    return text == text.strip() and parse_action(text).kind is TEXT


@settings(max_examples=300, deadline=None)
@given(
    thought=st.text(max_size=40),
    name=tool_names,
    arguments=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
def test_tool_calls_round_trip(thought, name, arguments):
    assume(_plain(thought))
    action = Action(TOOL, thought=thought, tool=name, arguments=arguments)
    assert parse_action(render_action(action)) == action


@settings(max_examples=300, deadline=None)
@given(thought=st.text(max_size=40), content=st.text(max_size=60), kind=st.sampled_from([ASK, FINISH]))
def test_ask_and_finish_round_trip(thought, content, kind):
    assume(_plain(thought) and content == content.strip() and not re.search(rf"</{kind.value}\s*>", content))
    action = Action(kind, thought=thought, content=content)
    assert parse_action(render_action(action)) == action


json_numbers = st.one_of(
    st.floats().map(repr),  # includes inf, -inf and nan, which are not JSON
    st.from_regex(r"-?[1-9][0-9]{0,3}(\.[0-9]{1,3})?[eE][+-]?[0-9]{1,4}", fullmatch=True),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e308", "1.8e308", "-1e400", "4.9e-324", "1e-400"]),
)


@settings(max_examples=300, deadline=None)
@given(numbers=st.lists(json_numbers, min_size=1, max_size=3))
def test_numbers_parse_to_finite_values_or_invalid_and_round_trip(numbers):
    """A number JSON cannot hold (inf from 1e400, NaN) makes the action invalid; a valid one renders back."""
    action = parse_action('<tool name="t">{"a": [' + ", ".join(numbers) + "]}</tool>")
    if action.kind is INVALID:
        assert action.error
        return
    assert all(math.isfinite(v) for v in action.arguments["a"])
    assert parse_action(render_action(action)) == action


def test_a_lone_surrogate_escape_makes_the_arguments_invalid():
    action = parse_action('<tool name="t">{"name": "\\ud800"}</tool>')
    assert action.kind is INVALID and "surrogate" in action.error
    assert parse_action('<tool name="t">{"name": "\\ud83d\\ude00"}</tool>').arguments == {"name": "\U0001f600"}


# -- large inputs ------------------------------------------------------------------------

HUNDRED_KB = 100_000
LARGE_INPUTS = {
    "plain thought": ("x" * HUNDRED_KB, TEXT),
    "angle brackets": ("a < b > c " * (HUNDRED_KB // 10 + 1), TEXT),
    "many tag-like prefixes": ("<tools " * (HUNDRED_KB // 7 + 1), TEXT),
    "long answer": ("<finish>" + "<" * HUNDRED_KB + "</finish>", FINISH),
    "long JSON string": ('<tool name="t">{"k": "' + '<\\"' * (HUNDRED_KB // 3 + 1) + '"}</tool>', TOOL),
    "long JSON array": ('<tool name="t">{"k": [' + "1," * (HUNDRED_KB // 2 + 1) + "1]}</tool>", TOOL),
    "unterminated string": ('<tool name="t">{"k": "' + '\\"' * (HUNDRED_KB // 2 + 1), INVALID),
    "unclosed ask": ("<ask>" + "why " * (HUNDRED_KB // 4 + 1), INVALID),
    "many sentinels": ("<finish>a</finish>" * (HUNDRED_KB // 18 + 1), FINISH),
}


class ParseTookTooLong(Exception):
    pass


@pytest.mark.parametrize("name", LARGE_INPUTS)
def test_100kb_inputs_parse(name):
    """Each shape of 100 KB input parses correctly. A generous alarm guards against a super-linear
    (e.g. backtracking) parse, which would take minutes; this is a hang guard, not a timing assertion."""
    text, kind = LARGE_INPUTS[name]
    assert len(text) >= HUNDRED_KB

    def on_alarm(signum, frame):
        raise ParseTookTooLong(name)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(20)
    try:
        action = parse_action(text)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert action.kind is kind


def test_render_refuses_arguments_that_are_not_json():
    with pytest.raises(ValueError):
        render_action(Action(TOOL, tool="t", arguments={"x": float("nan")}))
    assert json.loads(
        render_action(Action(TOOL, tool="t", arguments={"x": 1})).split(">", 1)[1].split("</tool>")[0]
    ) == {"x": 1}
