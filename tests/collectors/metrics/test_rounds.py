"""Tests of one scrape round: target labels, parsing and normalising pages, the SCRAPES rows, repeated rounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from analytics.errors import ConfigError
from analytics.schema import SCRAPES
from collectors.kube.pods import parse_pod_list
from collectors.kube.target_attribution import attribute_targets
from collectors.metrics.rounds import (
    ScrapeBatch,
    attach_target_labels,
    build_batch,
    collect_scrape,
    run_rounds,
    target_labels,
)
from collectors.metrics.scrape import ScrapeResult
from collectors.samples import SourceFormat
from collectors.targets import Target
from tests.collectors.kube.test_pods import pod_item, pod_list
from tests.collectors.metrics.test_scrape import send, serve

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SGLANG_PAGE = (Path(__file__).parents[2] / "fixtures" / "upstream" / "sglang"
               / "production_metrics.md.example-output.txt").read_bytes()
SGLANG_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def vllm_page(running: float, prompt_tokens: float, *, model: str = "m1", ts_ms: int | None = None) -> str:
    """A small hand-written vLLM page (not an upstream sample: the values are the test's own)."""
    stamp = f" {ts_ms}" if ts_ms is not None else ""
    return (
        "# TYPE vllm:num_requests_running gauge\n"
        f'vllm:num_requests_running{{model_name="{model}",engine="0"}} {running}{stamp}\n'
        "# TYPE vllm:prompt_tokens_total counter\n"
        f'vllm:prompt_tokens_total{{model_name="{model}",engine="0"}} {prompt_tokens}{stamp}\n'
    )


def ok(target: Target, text: str, ts: datetime = T0) -> ScrapeResult:
    return ScrapeResult(target, ts, True, 200, 0.01, text)


VLLM_A = Target(SourceFormat.VLLM, "http://10.0.0.1:8000/metrics", {"namespace": "team-a", "pod": "vllm-a-0"})
VLLM_B = Target(SourceFormat.VLLM, "http://10.0.0.2:8000/metrics", {"namespace": "team-b", "pod": "vllm-b-0"})


# --- target labels -----------------------------------------------------------------------------------

def test_target_labels_add_instance_job_and_cluster_without_overriding_config() -> None:
    t = Target(SourceFormat.VLLM, "http://10.0.0.1:8000/metrics", {"namespace": "a", "cluster": "own", "pod": ""})
    assert target_labels(t, cluster="fleet") == {
        "namespace": "a", "cluster": "own", "instance": "10.0.0.1:8000", "job": "vllm"}
    assert target_labels(Target(SourceFormat.TGI, "https://tgi.example:9000/"), cluster="fleet") == {
        "instance": "tgi.example:9000", "job": "tgi", "cluster": "fleet"}


def test_the_default_port_is_part_of_the_instance() -> None:
    assert target_labels(Target(SourceFormat.TGI, "http://10.0.0.3/metrics"))["instance"] == "10.0.0.3:80"


def test_colliding_exposed_labels_are_renamed_exported_and_target_labels_added() -> None:
    wide = pl.DataFrame({
        "__name__": ["DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_GPU_UTIL"],
        "namespace": ["team-a", None], "pod": ["llm-0", None], "gpu": ["0", "1"],
    })
    out = attach_target_labels(wide, {"namespace": "gpu-operator", "pod": "dcgm-x", "job": "dcgm"})
    assert out["exported_namespace"].to_list() == ["team-a", None]
    assert out["exported_pod"].to_list() == ["llm-0", None]
    assert out["namespace"].to_list() == ["gpu-operator"] * 2
    assert out["job"].to_list() == ["dcgm"] * 2
    assert out["gpu"].to_list() == ["0", "1"]


def test_a_taken_exported_name_is_prefixed_again_like_prometheus() -> None:
    wide = pl.DataFrame({"__name__": ["x"], "pod": ["inner"], "exported_pod": ["outer"]})
    out = attach_target_labels(wide, {"pod": "target"})
    assert out.row(0, named=True) == {"__name__": "x", "exported_exported_pod": "inner",
                                      "exported_pod": "outer", "pod": "target"}


# --- one round from results ----------------------------------------------------------------------------

def test_a_good_page_is_normalised_with_target_labels_and_the_scrape_time() -> None:
    batch = build_batch([ok(VLLM_A, vllm_page(3, 120))], cluster="east")
    engine = batch.normalised.engine
    assert engine.height == 1
    row = engine.row(0, named=True)
    assert (row["tenant"], row["pod"], row["cluster"], row["instance"], row["model"]) == (
        "team-a", "vllm-a-0", "east", "10.0.0.1:8000", "m1")
    assert (row["requests_running"], row["prompt_tokens_total"]) == (3.0, 120.0)
    assert row["ts"] == T0
    (scrape,) = batch.scrapes.iter_rows(named=True)
    assert scrape["up"] and scrape["samples"] == 2 and scrape["dropped_lines"] == 0 and scrape["error"] is None
    assert (scrape["tenant"], scrape["pod"], scrape["target"], scrape["job"]) == (
        "team-a", "vllm-a-0", VLLM_A.url, "vllm")


def test_a_sample_with_its_own_timestamp_keeps_it() -> None:
    own = T0 - timedelta(seconds=7)
    batch = build_batch([ok(VLLM_A, vllm_page(1, 2, ts_ms=int(own.timestamp() * 1000)))])
    assert batch.normalised.engine["ts"].to_list() == [own]


def test_the_scrapes_frame_conforms_to_the_data_set() -> None:
    batch = build_batch([ok(VLLM_A, vllm_page(1, 2))])
    assert batch.scrapes.schema == SCRAPES.schema


def test_dropped_lines_are_counted_and_the_rest_of_the_page_kept() -> None:
    text = vllm_page(4, 10) + "this is not a sample line\nvllm:num_requests_waiting{model_name=\"m1\" 2\n"
    batch = build_batch([ok(VLLM_A, text)])
    (scrape,) = batch.scrapes.iter_rows(named=True)
    assert scrape["up"] and scrape["dropped_lines"] == 2 and scrape["samples"] == 2
    assert "line 5" in scrape["error"]
    assert batch.normalised.engine["requests_running"].to_list() == [4.0]


def test_a_page_with_nothing_readable_is_a_failed_scrape_with_the_parsers_message() -> None:
    html = "<html>\n<body>502 Bad Gateway</body>\n</html>\n"
    batch = build_batch([ok(VLLM_A, html), ok(VLLM_B, vllm_page(1, 1))])
    bad, good = batch.scrapes.iter_rows(named=True)
    assert not bad["up"] and bad["samples"] == 0 and bad["dropped_lines"] == 3
    assert "no samples parsed" in bad["error"] and "line 1" in bad["error"]
    assert good["up"]
    assert batch.normalised.engine["tenant"].to_list() == ["team-b"]


def test_an_empty_page_is_up_with_no_samples() -> None:
    batch = build_batch([ok(VLLM_A, "")])
    (scrape,) = batch.scrapes.iter_rows(named=True)
    assert scrape["up"] and scrape["samples"] == 0 and scrape["error"] is None


def test_a_failed_fetch_becomes_a_down_row_and_other_targets_are_kept() -> None:
    down = ScrapeResult(VLLM_B, T0, False, None, 0.5, None, "ConnectError: refused")
    batch = build_batch([ok(VLLM_A, vllm_page(2, 5)), down])
    rows = {r["target"]: r for r in batch.scrapes.iter_rows(named=True)}
    assert rows[VLLM_B.url]["up"] is False and rows[VLLM_B.url]["error"] == "ConnectError: refused"
    assert rows[VLLM_B.url]["samples"] is None
    assert batch.normalised.engine["tenant"].to_list() == ["team-a"]


def test_samples_the_normaliser_drops_are_noted_on_the_up_row() -> None:
    no_tenant = Target(SourceFormat.VLLM, "http://10.0.0.9:8000/metrics")
    batch = build_batch([ok(no_tenant, vllm_page(1, 2))])
    (scrape,) = batch.scrapes.iter_rows(named=True)
    assert scrape["up"] and batch.normalised.engine.height == 0
    assert "normalise dropped" in scrape["error"] and "tenant" in scrape["error"]


def test_a_round_with_no_targets_is_empty() -> None:
    batch = build_batch([])
    assert batch.scrapes.height == 0 and batch.normalised.engine.height == 0


# --- over HTTP -----------------------------------------------------------------------------------------

def test_a_round_over_http_with_pods_attributed_from_a_pod_list() -> None:
    with serve({"/metrics": lambda h, n: send(h, SGLANG_PAGE)}) as srv:
        pods = parse_pod_list(pod_list(pod_item("team-s", "sglang-7c9-x", "127.0.0.1", ports={"sglang": [srv.port]},
                                                labels={"pod-template-hash": "7c9"})), source="pods.json")
        (target,) = attribute_targets([Target(SourceFormat.SGLANG, srv.url("/metrics"))], pods)
        batch = collect_scrape([target], clock=lambda: T0, timeout_s=5, retries=0, concurrency=2, cluster="lab")
    (scrape,) = batch.scrapes.iter_rows(named=True)
    assert scrape["up"] and scrape["http_status"] == 200 and scrape["tenant"] == "team-s"
    engine = batch.normalised.engine
    assert engine.height >= 1
    assert set(engine["tenant"]) == {"team-s"} and set(engine["pod"]) == {"sglang-7c9-x"}
    assert set(engine["model"]) == {SGLANG_MODEL} and set(engine["model_version"]) == {"7c9"}
    assert set(engine["cluster"]) == {"lab"}
    # The upstream sample's counter, carried through unchanged.
    assert engine["prompt_tokens_total"].to_list() == [8.128902e06]
    assert batch.normalised.hist.height > 0


def test_an_unusable_target_is_a_down_row_and_never_fetched() -> None:
    with serve({"/metrics": lambda h, n: send(h, vllm_page(1, 1).encode())}) as srv:
        pods = parse_pod_list(pod_list(pod_item("Bad_NS", "p", "127.0.0.1", ports={"m": [srv.port]})), source="s")
        (target,) = attribute_targets([Target(SourceFormat.VLLM, srv.url("/metrics"))], pods)
        batch = collect_scrape([target], clock=lambda: T0, retries=0)
    (scrape,) = batch.scrapes.iter_rows(named=True)
    assert not scrape["up"] and "Bad_NS" in scrape["error"]
    assert srv.hits["/metrics"] == 0


# --- repeated rounds -----------------------------------------------------------------------------------

class FakeTime:
    """A clock that only moves when slept on, or when a round is made to take ``round_s``."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def test_rounds_run_at_the_interval_on_the_injected_clock() -> None:
    t = FakeTime(T0)
    seen: list[tuple[int, list[datetime]]] = []
    with serve({"/metrics": lambda h, n: send(h, vllm_page(n, 10 * n).encode())}) as srv:
        target = Target(SourceFormat.VLLM, srv.url("/metrics"), {"namespace": "team-a"})
        done = run_rounds([target], rounds=3, interval_s=15, clock=t.clock, sleep=t.sleep, retries=0,
                          on_round=lambda i, b: seen.append((i, b.normalised.engine["ts"].to_list())))
    assert done == 3
    assert t.slept == [15.0, 15.0]
    assert seen == [(0, [T0]), (1, [T0 + timedelta(seconds=15)]), (2, [T0 + timedelta(seconds=30)])]


def test_a_round_that_overruns_starts_the_next_at_once_without_catching_up() -> None:
    t = FakeTime(T0)
    batches: list[ScrapeBatch] = []

    def on_round(i: int, batch: ScrapeBatch) -> None:
        batches.append(batch)
        if i == 0:
            t.now += timedelta(seconds=40)  # the first round took longer than two intervals

    with serve({"/metrics": lambda h, n: send(h, vllm_page(1, 1).encode())}) as srv:
        run_rounds([Target(SourceFormat.VLLM, srv.url("/metrics"), {"namespace": "a"})], rounds=3, interval_s=15,
                   clock=t.clock, sleep=t.sleep, on_round=on_round, retries=0)
    assert t.slept == [15.0]  # round 1 at once (t0+40), round 2 one interval later
    assert [b.scrapes["ts"][0] for b in batches] == [T0, T0 + timedelta(seconds=40), T0 + timedelta(seconds=55)]


def test_targets_given_as_a_callable_are_re_read_every_round() -> None:
    t = FakeTime(T0)
    counts: list[int] = []
    with serve({"/metrics": lambda h, n: send(h, vllm_page(1, 1).encode())}) as srv:
        pool = [Target(SourceFormat.VLLM, srv.url("/metrics"), {"namespace": "a"})]

        def targets() -> list[Target]:
            pool.append(Target(SourceFormat.VLLM, srv.url("/metrics"), {"namespace": f"n{len(pool)}"}))
            return list(pool)

        run_rounds(targets, rounds=2, interval_s=1, clock=t.clock, sleep=t.sleep, retries=0,
                   on_round=lambda i, b: counts.append(b.scrapes.height))
    assert counts == [2, 3]


def test_a_non_positive_interval_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="interval_s"):
        run_rounds([], rounds=1, interval_s=0, clock=lambda: T0, sleep=lambda s: None, on_round=lambda i, b: None)
