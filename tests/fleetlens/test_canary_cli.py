"""`fleetlens canary judge` on the demo's data sets: the regressed canary is rolled back, with its evidence."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from analytics.schema import REQUESTS
from collectors.store.datasets import read_dataset
from fleetlens.cli import main
from simulator import default_fleet_spec

pytestmark = pytest.mark.slow

WINDOW = ["--start", "2025-06-02T08:00:00Z", "--end", "2025-06-02T08:25:00Z"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """25 simulated minutes (the canary starts at 5, at 10 %) and the canary model's two versions."""
    root = tmp_path_factory.mktemp("canary-demo")
    assert main(["demo", "--data-dir", str(root), "--minutes", "25"]) == 0
    spec = default_fleet_spec()
    assert spec.canary is not None
    requests = read_dataset(root, REQUESTS).filter(pl.col("model") == spec.canary.model).collect()
    first = requests.sort("ts").group_by("model_version", maintain_order=True).first()
    baseline, canary = first.get_column("model_version").to_list()  # the baseline served first
    return root, baseline, canary


def _judge(root: Path, baseline: str, canary: str, *extra: str) -> list[str]:
    spec = default_fleet_spec()
    assert spec.canary is not None
    tenant = next(m.tenant for m in spec.models if m.name == spec.canary.model)
    return ["canary", "judge", "--data-dir", str(root), "--tenant", tenant, "--model", spec.canary.model,
            "--baseline", baseline, "--canary", canary, *WINDOW, *extra]


def test_the_regressed_demo_canary_is_rolled_back_with_its_evidence(demo, capsys: pytest.CaptureFixture[str]) -> None:
    root, baseline, canary = demo
    assert main(_judge(root, baseline, canary, "--format", "json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "rollback" and doc["final"] is True
    errors = next(m for m in doc["metrics"] if m["name"] == "error_ratio")
    # The simulator's regression: about 2 % errors on the canary against 0.1 % on the baseline.
    assert errors["classification"] == "fail" and errors["lower"] > errors["tolerance"]
    assert errors["canary"] > 10 * errors["baseline"] and errors["n_canary"] >= 50
    assert doc["warmup_excluded"], "the canary's warm-up after each step is left out"
    assert {m["classification"] for m in doc["metrics"] if m["name"] in ("gpu_memory", "probe_pass_rate")} == {"nodata"}


def test_the_table_names_the_verdict_and_every_metric(demo, capsys: pytest.CaptureFixture[str]) -> None:
    root, baseline, canary = demo
    assert main(_judge(root, baseline, canary)) == 0
    out = capsys.readouterr().out
    assert out.startswith("rollback") and "error_ratio" in out and "ttft_p95" in out


def test_a_policy_file_is_used(demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, baseline, canary = demo
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  - {name: itl_p95, signal: itl, quantile: 0.95, threshold_rel: 10}\n")
    assert main(_judge(root, baseline, canary, "--policy", str(policy), "--format", "json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in doc["metrics"]] == ["itl_p95"] and doc["verdict"] == "promote"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (("--tenant", "Team_Chat"), "RFC 1123"),
        (("--canary", "SAME"), "same version"),
        (("--start", "2025-06-02T09:00:00Z"), "is not before --end"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(demo, capsys: pytest.CaptureFixture[str], change: tuple[str, str],
                                          fragment: str) -> None:
    root, baseline, canary = demo
    argv = _judge(root, baseline, canary)
    if change[0] == "--canary":
        argv[argv.index("--canary") + 1] = baseline
    else:
        argv[argv.index(change[0]) + 1] = change[1]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err and "Traceback" not in err
