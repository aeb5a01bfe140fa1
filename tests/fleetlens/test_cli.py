"""The CLI: every subcommand documented, `parse` output, error exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetlens.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream"
TRITON_COUNTERS = UPSTREAM / "triton" / "metrics.md.counter-sample.txt"
VLLM_ELIDED = UPSTREAM / "vllm" / "v0.33.0" / "docs-design-metrics.md.example-output.txt"


def _subcommands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)  # type: ignore[union-attr]


def test_every_subcommand_has_help_text() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    helps = {c.dest: c.help for c in sub._choices_actions}  # type: ignore[union-attr]
    assert set(helps) == set(_subcommands())
    assert all(h and len(h) > 10 for h in helps.values())


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_is_in_the_readme(command: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"fleetlens {command}\b", readme), f"README.md does not show `fleetlens {command}`"


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n## ")[0]
    assert "make demo" in head and "make test" in head


def test_parse_jsonl_prints_every_sample_prometheus_client_reads(capsys: pytest.CaptureFixture[str]) -> None:
    text = TRITON_COUNTERS.read_text()
    expected = [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]
    assert main(["parse", str(TRITON_COUNTERS), "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    got = [(r["name"], r["labels"], r["value"]) for r in lines]
    assert sorted(got, key=repr) == sorted(expected, key=repr)


def test_parse_table_names_the_file_and_counts_samples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(TRITON_COUNTERS)]) == 0
    out = capsys.readouterr().out
    n = sum(len(f.samples) for f in text_string_to_metric_families(TRITON_COUNTERS.read_text()))
    assert f"{n} samples" in out
    assert "nv_inference_request_success" in out


def test_parse_lenient_reports_dropped_lines_and_keeps_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(VLLM_ELIDED), "--format", "jsonl"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip(), "the well-formed samples of the page are kept"
    dropped = [line for line in captured.err.splitlines() if line.startswith("dropped")]
    assert dropped and all(re.match(rf"dropped {re.escape(str(VLLM_ELIDED))}:\d+: ", d) for d in dropped)


def test_parse_strict_stops_with_the_line_number(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(VLLM_ELIDED), "--strict"]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(str(VLLM_ELIDED))}:\d+:", err)


def test_parse_of_a_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(tmp_path / "nope.txt")]) == 2
    assert "nope.txt" in capsys.readouterr().err


def test_collect_without_targets_or_prometheus_names_the_key(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n")
    assert main(["collect", "--config", str(cfg)]) == 2
    assert "collect.targets" in capsys.readouterr().err
