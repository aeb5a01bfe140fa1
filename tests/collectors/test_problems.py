"""Every collector reports bad input as the one Problem record, naming the source and the line or item."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from analytics.errors import InputError, Problem, ProblemCode
from collectors.exposition import parse_text
from collectors.kube.allocations import parse_allocations
from collectors.kube.nodes import parse_nodes
from collectors.kube.pods import parse_pod_list
from collectors.kube.quotas import parse_quotas
from collectors.kube.target_attribution import attribute_targets_report
from collectors.requests.gateway_logs import parse_gateway_log
from collectors.requests.otlp_traces import parse_otlp_traces
from collectors.rollouts.events import parse_k8s_events
from collectors.samples import SourceFormat
from collectors.targets import Target

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 6, 2, 8, tzinfo=UTC)
BAD_POD = {"kind": "Pod", "metadata": {"namespace": "team-a", "name": "p-0"}, "spec": {"containers": "x"},
           "status": {"phase": "Running"}}
BAD_NODE = {"kind": "Node", "metadata": {"name": "n1"}, "status": []}
BAD_QUOTA = {"kind": "ResourceQuota", "metadata": {"namespace": "team-a", "name": "q"}, "spec": []}


def _list(*items: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


PRODUCERS: list = [
    pytest.param(lambda: parse_text("up 1\nup{ 2\n", source="m.txt").dropped, r"m\.txt:2: ",
                 id="an exposition line dropped names page and line"),
    pytest.param(lambda: parse_text("# TYPE up gauge\n", source="m.txt").warnings, r"m\.txt:1: ",
                 id="an exposition warning names page and line"),
    pytest.param(lambda: parse_gateway_log(['{"start_time": "x"'], source="gw.jsonl").bad_lines, r"gw\.jsonl:1: ",
                 id="a gateway log line names log and line"),
    pytest.param(lambda: parse_otlp_traces(["{}", "not json"], source="t.jsonl").bad_lines, r"t\.jsonl:[12]: ",
                 id="an OTLP line names file and line"),
    pytest.param(lambda: parse_pod_list(_list(1, BAD_POD), source="pods.json").issues,
                 r"pods\.json: items\[[01]\]", id="a pod list item names list and index"),
    pytest.param(lambda: parse_nodes(_list(BAD_NODE), source="k.json").issues, r"k\.json: items\[0\] \(n1\): skipped",
                 id="a node item names list, index and node"),
    pytest.param(lambda: parse_allocations(_list(BAD_POD), source="k.json", ts=T0, cluster="c").issues,
                 r"k\.json: items\[0\] \(team-a/p-0\): skipped", id="an allocation item names list, index and pod"),
    pytest.param(lambda: parse_quotas(_list(BAD_QUOTA), source="k.json", ts=T0, cluster="c").issues,
                 r"k\.json: items\[0\] \(team-a/q\): skipped", id="a quota item names list, index and quota"),
    pytest.param(lambda: parse_k8s_events(_list({"kind": "Event"}), source="ev.json").issues,
                 r"ev\.json: items\[0\]: skipped", id="an event item names list and index"),
    pytest.param(lambda: attribute_targets_report([Target(SourceFormat.VLLM, "http://10.9.9.9:8000/metrics")], []).issues,
                 r"http://10\.9\.9\.9:8000/metrics: unmatched: ", id="a target names its URL and why"),
]


@pytest.mark.parametrize(("produce", "where"), PRODUCERS)
def test_each_collector_reports_problems_as_one_line_naming_source_and_place(
    produce: Callable[[], tuple[Problem, ...]], where: str,
) -> None:
    problems = produce()
    assert problems and all(type(p) is Problem for p in problems)
    for p in problems:
        assert re.match(where, str(p)) and "\n" not in str(p), str(p)


def test_strict_mode_raises_the_first_problem_of_lenient_mode() -> None:
    lines = ['{"start_time": "x"', "not json"]
    first = parse_gateway_log(lines, source="gw.jsonl").bad_lines[0]
    with pytest.raises(InputError) as err:
        parse_gateway_log(lines, source="gw.jsonl", strict=True)
    assert err.value.problem == first


def test_attribution_codes_let_callers_branch() -> None:
    (problem,) = attribute_targets_report([Target(SourceFormat.VLLM, "http://10.9.9.9:8000/metrics")], []).issues
    assert problem.code is ProblemCode.UNMATCHED and problem.source == "http://10.9.9.9:8000/metrics"


# A ninth parallel record would be a class named like the eight that Problem replaced.
_PARALLEL = re.compile(r"(Issue|Dropped|BadLine|BadItem|Rejected\w*)$")


def test_no_other_problem_record_exists_in_collectors_or_fleetlens() -> None:
    found = []
    for package in ("collectors", "fleetlens"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef) and _PARALLEL.search(node.name):
                    found.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert found == [], "report bad input as analytics.errors.Problem, not a new record type"
