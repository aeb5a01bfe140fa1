"""Problem, the one record of bad input: its one-line rendering and its round trip with InputError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.errors import ExpositionError, InputError, ItemError, Problem, ProblemCode

U = ProblemCode.UNMATCHED


@pytest.mark.parametrize(("problem", "shown"), [
    pytest.param(Problem("gw.jsonl", "not JSON", line=3), "gw.jsonl:3: not JSON",
                 id="a line of a text input reads source:line: reason"),
    pytest.param(Problem("pods.json", "skipped: bad", item=3, name="ns/p"), "pods.json: items[3] (ns/p): skipped: bad",
                 id="a list item reads source: items[i] (namespace/name): reason"),
    pytest.param(Problem("pods.json", "skipped: not an object", item=0), "pods.json: items[0]: skipped: not an object",
                 id="an item without a name leaves the name out"),
    pytest.param(Problem("webhook", "version left empty", name="team-a/chat"), "webhook: team-a/chat: version left empty",
                 id="a named object outside a list reads source: name: reason"),
    pytest.param(Problem("http://10.0.0.9:8000/metrics", "no running pod has IP 10.0.0.9", code=U),
                 "http://10.0.0.9:8000/metrics: unmatched: no running pod has IP 10.0.0.9",
                 id="a code stands before the reason"),
    pytest.param(Problem("gpu_samples", "not a label", name="../x", rows=3, code=ProblemCode.INVALID_TENANT),
                 "gpu_samples: ../x (3 rows): invalid_tenant: not a label",
                 id="rows not written are counted after the tenant"),
    pytest.param(Problem("f.json", "not JSON: Expecting value"), "f.json: not JSON: Expecting value",
                 id="a whole input reads source: reason"),
    pytest.param(Problem("m.txt", "invalid value 'x'", line=7, text='up{a="b"} x'), "m.txt:7: invalid value 'x'",
                 id="the offending text is kept but not shown"),
])
def test_a_problem_renders_as_one_line_naming_where(problem: Problem, shown: str) -> None:
    assert str(problem) == shown
    assert str(problem.error()) == shown  # raised, it reads the same


def test_an_input_error_carries_its_problem_and_the_problem_gives_the_error_back() -> None:
    err = InputError("events.json", None, "skipped: no time", item=4, name="ns/ev")
    assert err.problem == Problem("events.json", "skipped: no time", item=4, name="ns/ev")
    assert (err.source, err.line, err.reason) == ("events.json", None, "skipped: no time")
    again = err.problem.error()
    assert type(again) is InputError and again.problem == err.problem and str(again) == str(err)


def test_a_problem_raised_as_a_subclass_keeps_the_subclass() -> None:
    problem = Problem("page.txt", "missing value", line=2, text="up")
    with pytest.raises(ExpositionError) as caught:
        raise problem.error(ExpositionError)
    assert caught.value.problem == problem and caught.value.line == 2


def test_an_item_error_names_only_its_reason_until_its_reader_places_it() -> None:
    err = ItemError("spec.containers must be a list")
    assert isinstance(err, InputError) and str(err) == "spec.containers must be a list"


_maybe_int = st.none() | st.integers(min_value=0, max_value=10**6)
_maybe_text = st.none() | st.text(min_size=1, max_size=20)
problems = st.builds(
    Problem, st.text(max_size=30), st.text(min_size=1, max_size=40), line=_maybe_int, item=_maybe_int,
    name=_maybe_text, code=st.none() | st.sampled_from(ProblemCode), text=_maybe_text, rows=_maybe_int,
)


@given(problems)
def test_every_problem_round_trips_through_input_error(problem: Problem) -> None:
    err = problem.error()
    assert err.problem == problem and str(err) == str(problem)
    assert err.problem.error().problem == problem
