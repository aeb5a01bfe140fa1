"""The one command line: ``fleetlens parse | simulate | collect | ingest | rollup | demo``.

Each subcommand parses its flags, builds objects and calls library functions; this module is the only
place that turns fleetlens errors into messages and exit codes: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from analytics.errors import FleetlensError, UsageError
from fleetlens import env
from fleetlens.config_values import is_cluster_name, url_problem

Command = Callable[[argparse.Namespace], int]
# Times outside these bounds overflow datetime arithmetic (window padding) or predate epoch timestamps.
_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
_ARGUMENT = re.compile(r"argument ([^:]+): (.*)", re.DOTALL)


class _ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are ``UsageError``s (one line, exit 2) instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        """Raise the error naming the option (argparse's ``argument --x:``) or the subcommand."""
        m = _ARGUMENT.fullmatch(message)
        if m:
            raise UsageError(m.group(1), m.group(2))
        command = self.prog.removeprefix("fleetlens").strip()
        raise UsageError(command or "command line", f"{message} (see {self.prog} --help)")


def _parse_time(value: str) -> datetime:
    """An ISO 8601 time in UTC; naive times are UTC."""
    try:
        t = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc
    t = (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
    if not _EARLIEST <= t < _LATEST:
        raise argparse.ArgumentTypeError(f"{value!r} is not between 1970-01-01 and 9998-12-31")
    return t


def _number(kind: type[int | float], what: str, ok: Callable[[float], bool]) -> Callable[[str], Any]:
    """An argparse type: ``value`` read as ``kind`` and accepted when ``ok``, else "expected <what>"."""

    def parse(value: str) -> Any:
        try:
            x = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
        if not ok(x):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}")
        return x

    return parse


_positive_int = _number(int, "a positive integer", lambda n: n >= 1)
_non_negative_int = _number(int, "a non-negative integer", lambda n: n >= 0)
_positive_number = _number(float, "a positive finite number", lambda x: math.isfinite(x) and x > 0)


def _http_url(value: str) -> str:
    """An http:// or https:// URL with a host."""
    problem = url_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def _cluster(value: str) -> str:
    """A cluster name, as the config's ``cluster`` key takes it."""
    if not is_cluster_name(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a cluster name (letters, digits, '.', '_', '-', 1-63)")
    return value


def _cmd_parse(args: argparse.Namespace) -> int:
    from fleetlens.commands import parse_file

    return parse_file(Path(args.file), fmt=args.format, strict=args.strict, limit=args.limit)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from fleetlens.commands import simulate

    return simulate(
        config_path=args.config, seed=args.seed, speed=args.speed, duration_s=args.duration,
        files_dir=args.write_files,
    )


def _cmd_collect(args: argparse.Namespace) -> int:
    from fleetlens.commands import collect

    return collect(
        config_path=args.config, data_dir=args.data_dir, rounds=args.rounds, prometheus=args.prometheus,
        start=args.start, end=args.end, pod_list=args.pod_list,
    )


def _cmd_ingest(args: argparse.Namespace) -> int:
    from fleetlens.commands import ingest

    return ingest(
        config_path=args.config, data_dir=args.data_dir, gateway_logs=args.gateway_log, otlp=args.otlp,
        events=args.events, kubernetes=args.kubernetes, at=args.at, cluster=args.cluster,
    )


def _cmd_rollup(args: argparse.Namespace) -> int:
    from fleetlens.commands import rollup

    return rollup(config_path=args.config, data_dir=args.data_dir, start=args.start, end=args.end)


def _cmd_demo(args: argparse.Namespace) -> int:
    from fleetlens.commands import demo

    return demo(data_dir=Path(args.data_dir), minutes=args.minutes, seed=args.seed, config_path=args.config)


def _cmd_canary_judge(args: argparse.Namespace) -> int:
    from fleetlens.canary import canary_judge

    return canary_judge(config_path=args.config, data_dir=args.data_dir, tenant=args.tenant, model=args.model,
                        baseline=args.baseline, canary=args.canary, start=args.start, end=args.end,
                        policy_path=args.policy, fmt=args.format)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _ArgumentParser(
        prog="fleetlens", description="Observability, SLO and cost analytics for GPU inference fleets."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("parse", help="parse a Prometheus/OpenMetrics exposition file and print its samples")
    p.add_argument("file", help="exposition text file ('-' for standard input)")
    p.add_argument("--format", choices=("table", "jsonl"), default="table", help="output format")
    p.add_argument("--strict", action="store_true", help="stop at the first malformed line (exit 1)")
    p.add_argument("--limit", type=_positive_int, default=None, help="print at most this many samples (table)")
    p.set_defaults(func=_cmd_parse)

    p = sub.add_parser("simulate", help="serve the embedded simulated fleet's /metrics endpoints on 127.0.0.1")
    p.add_argument("--config", type=Path, default=None, help="YAML config (its simulator section)")
    p.add_argument("--seed", type=_non_negative_int, default=None, help="random seed (default: config or 7)")
    p.add_argument("--speed", type=_positive_number, default=None, help="simulated seconds per wall second")
    p.add_argument("--duration", type=_positive_number, default=None, help="stop after this many wall seconds")
    p.add_argument("--write-files", type=Path, default=None,
                   help="also write the request log, rollout events and pod/node lists to this folder")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("collect", help="scrape targets or query a Prometheus-API URL; write the data sets")
    p.add_argument("--config", type=Path, default=None, help="YAML config (targets, prometheus, data_dir)")
    p.add_argument("--data-dir", type=Path, default=None, help="where to write the data sets")
    p.add_argument("--rounds", type=_positive_int, default=1, help="scrape rounds, collect.interval_s apart")
    p.add_argument("--pod-list", type=Path, default=None,
                   help="kubectl get pods -A -o json output, to attribute targets to pods")
    p.add_argument("--prometheus", type=_http_url, default=None, help="Prometheus-API URL (instead of scraping)")
    p.add_argument("--start", type=_parse_time, default=None, help="window start (ISO 8601), with --prometheus")
    p.add_argument("--end", type=_parse_time, default=None, help="window end (ISO 8601), with --prometheus")
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("ingest", help="read request logs, OTLP traces, rollout events and pod/node lists")
    p.add_argument("--config", type=Path, default=None, help="YAML config (data_dir, cluster)")
    p.add_argument("--data-dir", type=Path, default=None, help="where to write the data sets")
    p.add_argument("--gateway-log", type=Path, action="append", default=[],
                   help="gateway access log, JSON lines (Envoy / kgateway / LLM gateway); repeatable")
    p.add_argument("--otlp", type=Path, action="append", default=[],
                   help="OTLP JSON traces as the Collector's file exporter writes them; repeatable")
    p.add_argument("--events", type=Path, action="append", default=[],
                   help="kubectl get events -A -o json output (Argo Rollouts, Flagger, Argo CD, ...); repeatable")
    p.add_argument("--kubernetes", type=Path, default=None,
                   help="kubectl get pods,nodes,resourcequotas -A -o json output: allocations, inventory, quotas")
    p.add_argument("--at", type=_parse_time, default=None,
                   help="time of the --kubernetes snapshot (default: the file's modification time)")
    p.add_argument("--cluster", type=_cluster, default=None, help="cluster name (default: config or 'default')")
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("rollup", help="(re)build the per-minute rollups of a window from the stored data sets")
    p.add_argument("--config", type=Path, default=None, help="YAML config (data_dir)")
    p.add_argument("--data-dir", type=Path, default=None, help="where the data sets are")
    p.add_argument("--start", type=_parse_time, required=True, help="window start (ISO 8601)")
    p.add_argument("--end", type=_parse_time, required=True,
                   help="window end (ISO 8601); every minute the window touches is rebuilt whole from the stored "
                        "data; the minute the data end in (a partial minute) holds what has arrived so far and is "
                        "rewritten by a later run")
    p.set_defaults(func=_cmd_rollup)

    p = sub.add_parser("canary", help="canary analysis: judge a canary version against its baseline")
    canary = p.add_subparsers(dest="canary_command", required=True, metavar="SUBCOMMAND")
    p = canary.add_parser("judge", help="the verdict (promote|continue|inconclusive|rollback) and its evidence")
    p.add_argument("--config", type=Path, default=None, help="YAML config (data_dir)")
    p.add_argument("--data-dir", type=Path, default=None, help="where the data sets are")
    p.add_argument("--tenant", required=True, help="the tenant (namespace)")
    p.add_argument("--model", required=True, help="the model name")
    p.add_argument("--baseline", required=True, help="the baseline's version (pod template hash)")
    p.add_argument("--canary", required=True, help="the canary's version (pod template hash)")
    p.add_argument("--start", type=_parse_time, required=True, help="window start (ISO 8601)")
    p.add_argument("--end", type=_parse_time, required=True, help="window end (ISO 8601)")
    p.add_argument("--policy", type=Path, default=None, help="canary policy YAML (docs/canary-policy.md)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.set_defaults(func=_cmd_canary_judge)

    p = sub.add_parser("demo", help="simulate a fleet, collect some simulated minutes, show what was written")
    p.add_argument("--data-dir", default="demo-data", help="where to write the data sets")
    p.add_argument("--minutes", type=_positive_number, default=40.0, help="simulated minutes to collect")
    p.add_argument("--seed", type=_non_negative_int, default=7, help="random seed of the simulated fleet")
    p.add_argument("--config", type=Path, default=None, help="YAML config (its simulator section)")
    p.set_defaults(func=_cmd_demo)
    return parser


def _check(args: argparse.Namespace) -> argparse.Namespace:
    """Checks across options, and the configuration file from ``FLEETLENS_CONFIG`` when no ``--config``."""
    start, end = getattr(args, "start", None), getattr(args, "end", None)
    if start is not None and end is not None and start >= end:
        raise UsageError("--start", f"{start.isoformat()} is not before --end {end.isoformat()}")
    if "config" in vars(args) and args.config is None:
        path = env.CONFIG.get()
        args.config = Path(path) if path else None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    try:
        args = _check(build_parser().parse_args(argv))
        return int(args.func(args))
    except FleetlensError as exc:
        # One line, whatever the message holds (a library error may quote a multi-line cause).
        print(f"fleetlens: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
