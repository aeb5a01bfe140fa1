"""Bad input never escapes the CLI as a traceback: one line on stderr naming the input, exit status 2."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from analytics.errors import CollectorError
from collectors.metrics.prom_api import PromApiSource
from fleetlens.cli import main
from fleetlens.config import Config, PrometheusConfig, load_config

REPO = Path(__file__).resolve().parents[2]
TOKEN = "tok-s3cr3t-4f1d"
QUOTAS = REPO / "tests" / "fixtures" / "kube" / "kueue-and-resourcequotas.json"


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI, assert exit 2 and exactly one stderr line, and return that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fleetlens: error: ")
    return lines[0]


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Bad inputs of every kind, in one folder."""
    (tmp_path / "not-utf8.json").write_bytes(b'{"kind": "List",\n "items": [\xff]}\n')
    (tmp_path / "not-utf8.yaml").write_bytes(b"cluster: a\ndata_dir: \xfe\n")
    (tmp_path / "a-file").write_text("x\n")
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "kube.json").write_text('{"apiVersion": "v1", "kind": "List", "items": []}\n')
    (tmp_path / "quotas.json").write_bytes(QUOTAS.read_bytes())
    return {p.name: p for p in tmp_path.iterdir()}


# (argv with {placeholders} for the files, what the one line must contain)
CASES = [
    pytest.param(["demo", "--minutes", "nan"], "--minutes: expected a positive finite number, got 'nan'",
                 id="demo --minutes nan is refused by the parser"),
    pytest.param(["demo", "--minutes", "inf"], "--minutes: expected a positive finite number, got 'inf'",
                 id="demo --minutes inf is refused"),
    pytest.param(["demo", "--minutes", "0"], "--minutes: expected a positive finite number, got '0'",
                 id="demo --minutes 0 is refused"),
    pytest.param(["demo", "--minutes", "-1"], "--minutes: expected a positive finite number, got '-1'",
                 id="demo --minutes -1 is refused"),
    pytest.param(["demo", "--seed", "-1"], "--seed: expected a non-negative integer, got '-1'",
                 id="a negative seed is refused"),
    pytest.param(["simulate", "--speed", "nan"], "--speed: expected a positive finite number, got 'nan'",
                 id="simulate --speed nan is refused"),
    pytest.param(["simulate", "--duration", "-1"], "--duration: expected a positive finite number, got '-1'",
                 id="simulate --duration -1 is refused"),
    pytest.param(["collect", "--rounds", "0"], "--rounds: expected a positive integer, got '0'",
                 id="collect --rounds 0 is refused"),
    pytest.param(["collect", "--rounds", "-1"], "--rounds: expected a positive integer, got '-1'",
                 id="collect --rounds -1 is refused"),
    pytest.param(["parse", "x", "--limit", "-1"], "--limit: expected a positive integer, got '-1'",
                 id="parse --limit -1 is refused"),
    pytest.param(["rollup", "--start", "soon", "--end", "2025-01-01"], "--start: not an ISO 8601 time: 'soon'",
                 id="a time that is not ISO 8601 names the option"),
    pytest.param(["rollup", "--start", "0001-01-01", "--end", "2025-01-01"],
                 "--start: '0001-01-01' is not between 1970-01-01 and 9998-12-31",
                 id="a time before 1970 is refused instead of overflowing"),
    pytest.param(["rollup", "--end", "2025-01-01"], "rollup: the following arguments are required: --start",
                 id="a missing required option is one line"),
    pytest.param(["bogus"], "COMMAND: invalid choice: 'bogus'", id="an unknown subcommand is one line"),
    pytest.param(["rollup", "--data-dir", "{a-dir}", "--start", "2025-01-01T01:00", "--end", "2025-01-01T00:00"],
                 "--start: 2025-01-01T01:00:00+00:00 is not before --end 2025-01-01T00:00:00+00:00",
                 id="rollup --start after --end is refused"),
    pytest.param(["collect", "--data-dir", "{a-dir}", "--prometheus", "http://127.0.0.1:9", "--start",
                  "2025-01-01", "--end", "2025-01-01"],
                 "--start: 2025-01-01T00:00:00+00:00 is not before --end 2025-01-01T00:00:00+00:00",
                 id="collect --start equal to --end is refused"),
    pytest.param(["collect", "--data-dir", "{a-dir}", "--start", "2025-01-01"],
                 "--start: needs --prometheus (or prometheus.url in the config)",
                 id="collect --start without a Prometheus-API URL is refused, not ignored"),
    pytest.param(["collect", "--data-dir", "{a-dir}", "--end", "2025-01-01"],
                 "--end: needs --prometheus (or prometheus.url in the config)",
                 id="collect --end without a Prometheus-API URL is refused, not ignored"),
    pytest.param(["collect", "--data-dir", "{a-dir}", "--prometheus", "127.0.0.1:9090"],
                 "--prometheus: '127.0.0.1:9090' is not an http:// or https:// URL with a host",
                 id="a Prometheus URL without a scheme is refused"),
    pytest.param(["collect", "--data-dir", "{a-dir}", "--prometheus", "http://127.0.0.1:9", "--pod-list",
                  "{kube.json}"], "--pod-list: attributes scrape targets",
                 id="--pod-list with a Prometheus-API URL is refused, not ignored"),
    pytest.param(["ingest", "--data-dir", "{a-dir}", "--kubernetes", "{kube.json}", "--cluster", "a/b"],
                 "--cluster: 'a/b' is not a cluster name", id="an invalid --cluster is refused"),
    pytest.param(["ingest", "--data-dir", "{a-dir}", "--kubernetes", "{not-utf8.json}"],
                 "not-utf8.json:2: not UTF-8 text (byte 0xff at offset 28)",
                 id="a non-UTF-8 --kubernetes file names the file, line and byte"),
    pytest.param(["ingest", "--data-dir", "{a-dir}", "--events", "{not-utf8.json}"],
                 "not-utf8.json:2: not UTF-8 text (byte 0xff at offset 28)",
                 id="a non-UTF-8 --events file names the file, line and byte"),
    pytest.param(["collect", "--config", "{not-utf8.yaml}"], "not-utf8.yaml:2: not UTF-8 text (byte 0xfe at offset 21)",
                 id="a non-UTF-8 config file names the file, line and byte"),
    pytest.param(["collect", "--config", "{list.yaml}"], "list.yaml: <root>: expected a mapping, got list",
                 id="a config whose top level is a list is refused"),
    pytest.param(["collect", "--config", "{a-dir}"], "a-dir: <file>: cannot read: Is a directory",
                 id="a directory given as the config file"),
    pytest.param(["ingest", "--data-dir", "{a-dir}", "--gateway-log", "{a-dir}/nope.jsonl"], "nope.jsonl",
                 id="a missing --gateway-log file"),
    pytest.param(["ingest", "--data-dir", "{a-dir}", "--otlp", "{a-dir}/nope.jsonl"], "nope.jsonl",
                 id="a missing --otlp file"),
    pytest.param(["ingest", "--data-dir", "{a-dir}", "--gateway-log", "{a-dir}"], "a-dir",
                 id="a directory given as --gateway-log"),
    pytest.param(["ingest", "--data-dir", "{a-dir}", "--kubernetes", "{a-dir}"], "a-dir: cannot read: Is a directory",
                 id="a directory given as --kubernetes"),
    pytest.param(["parse", "{a-dir}"], "a-dir: cannot read: Is a directory", id="parse of a directory"),
    pytest.param(["collect", "--data-dir", "{a-dir}", "--pod-list", "{a-dir}/nope.json"], "nope.json",
                 id="a missing --pod-list file"),
    pytest.param(["ingest", "--data-dir", "{a-file}", "--kubernetes", "{quotas.json}"], "a-file/quotas/tenant=",
                 id="a --data-dir that is a file is a store error naming the partition path"),
]


@pytest.mark.parametrize(("argv", "expected"), CASES)
def test_bad_input_is_one_line_naming_it_and_exit_2(argv: list[str], expected: str, files: dict[str, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for name, path in files.items():
        argv = [a.replace(f"{{{name}}}", str(path)) for a in argv]
    if argv[0] == "collect" and "--pod-list" in argv and "--prometheus" not in argv:
        cfg = files["a-dir"] / "targets.yaml"
        cfg.write_text("collect:\n  targets: [{format: vllm, url: 'http://127.0.0.1:9/metrics'}]\n")
        argv += ["--config", str(cfg)]
    assert expected in one_error_line(capsys, argv)


def test_a_data_dir_that_is_a_file_is_a_store_error_naming_the_path(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.write_text("not a folder\n")
    line = one_error_line(capsys, ["rollup", "--data-dir", str(data), "--start", "2025-01-01", "--end", "2025-01-02"])
    assert line == f"fleetlens: error: {data}: the data directory is not a directory"


def test_an_unreachable_prometheus_is_a_collector_error_on_one_line(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    line = one_error_line(capsys, ["collect", "--data-dir", str(tmp_path), "--prometheus", url])
    assert line.startswith(f"fleetlens: error: {url}: query ") and "Connection refused" in line


def test_fleetlens_config_is_read_when_no_config_option_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "from-env.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n")
    monkeypatch.setenv("FLEETLENS_CONFIG", str(cfg))
    # The file from the environment is the one read: it names no targets, and the error names it.
    assert one_error_line(capsys, ["collect"]) == (
        f"fleetlens: error: {cfg}: collect.targets: nothing to collect: no targets configured and no --prometheus"
    )
    other = tmp_path / "other.yaml"
    other.write_text("- a list\n")
    assert str(other) in one_error_line(capsys, ["collect", "--config", str(other)]), "--config wins"
    monkeypatch.setenv("FLEETLENS_CONFIG", str(tmp_path / "missing.yaml"))
    assert "missing.yaml: <file>: cannot read" in one_error_line(capsys, ["collect"])


def test_without_fleetlens_config_no_config_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FLEETLENS_CONFIG", raising=False)
    line = one_error_line(capsys, ["collect", "--data-dir", str(tmp_path)])
    assert line == ("fleetlens: error: config: collect.targets: nothing to collect: no targets configured "
                    "and no --prometheus")


@pytest.mark.parametrize("argv", [
    pytest.param(["demo", "--minutes", "nan"], id="a parser error"),
    pytest.param(["ingest", "--data-dir", "{tmp}/d", "--events", "{tmp}/bad.json"], id="an input error"),
])
def test_the_console_script_prints_one_line_and_exits_2(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe")
    argv = [a.format(tmp=tmp_path) for a in argv]
    script = Path(sys.executable).with_name("fleetlens")
    done = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


# --- the bearer token stays secret -------------------------------------------------------------------


def test_the_token_is_in_no_repr() -> None:
    pcfg = PrometheusConfig(url="http://127.0.0.1:9090", bearer_token=TOKEN)
    source = PromApiSource("http://127.0.0.1:9090", headers={"Authorization": f"Bearer {TOKEN}"})
    for obj in (pcfg, Config(prometheus=pcfg), source):
        assert TOKEN not in repr(obj) and TOKEN not in str(obj)


def test_a_failing_fetch_shows_the_token_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROM_TOKEN_FOR_TEST", TOKEN)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        data_dir: {tmp_path / 'data'}
        prometheus:
          url: http://127.0.0.1:{closed_port()}
          bearer_token: ${{env:PROM_TOKEN_FOR_TEST}}
        """))
    loaded = load_config(cfg)
    assert loaded.prometheus is not None and loaded.prometheus.bearer_token == TOKEN
    caplog.set_level(logging.DEBUG)
    source = PromApiSource(loaded.prometheus.url, headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(CollectorError) as err:
        source.collect(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 0, 5, tzinfo=UTC))
    assert TOKEN not in str(err.value) and TOKEN not in repr(err.value)
    line = one_error_line(capsys, ["collect", "--config", str(cfg)])
    assert TOKEN not in line and "Connection refused" in line
    assert caplog.records, "the HTTP client logged the attempts at DEBUG"
    assert TOKEN not in caplog.text
    assert all(TOKEN not in repr(r.args) for r in caplog.records)
