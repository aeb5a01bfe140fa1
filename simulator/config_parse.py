"""The ``simulator:`` config section -> FleetSpec: read over the demo defaults key by key, then cross-checked."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from analytics.errors import ConfigError, NameValidationError
from analytics.names import validate_model, validate_tenant
from simulator.spec import (
    MIG_MEMORY_MIB,
    PRODUCTS,
    CanaryOutcome,
    CanarySpec,
    EngineKind,
    FleetSpec,
    ModelSpec,
    NodeSpec,
    PlacementSpec,
    RegressionSpec,
    RestartSpec,
    default_fleet_spec,
)


class _Reader:
    """Reads one mapping level, remembering the dotted key for error messages."""

    def __init__(self, data: Any, key: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(key, f"expected a mapping, got {type(data).__name__}")
        self.data, self.key = data, key

    def sub(self, name: str) -> str:
        return f"{self.key}.{name}"

    def check_known(self, allowed: Sequence[str]) -> None:
        for k in self.data:
            if k not in allowed:
                raise ConfigError(self.sub(str(k)), f"unknown key (known: {', '.join(allowed)})")

    def num(
        self,
        name: str,
        default: float,
        *,
        lo: float | None = None,
        hi: float | None = None,
        integer: bool = False,
    ) -> Any:
        if name not in self.data:
            return default
        v = self.data[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
            raise ConfigError(
                self.sub(name), f"expected {'an integer' if integer else 'a number'}, got {v!r}"
            )
        if not math.isfinite(v):
            raise ConfigError(self.sub(name), f"expected a finite number, got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ConfigError(self.sub(name), f"{v!r} is outside [{lo}, {hi}]")
        return v

    def items(self, name: str) -> list[Any]:
        v = self.data[name]
        if not isinstance(v, list):
            raise ConfigError(self.sub(name), "expected a list")
        return v

    def text(self, name: str, default: str) -> str:
        v = self.data.get(name, default)
        if not isinstance(v, str) or not v:
            raise ConfigError(self.sub(name), f"expected a non-empty string, got {v!r}")
        return v


def _placements(items: Any, key: str) -> tuple[PlacementSpec, ...]:
    if not isinstance(items, list):
        raise ConfigError(key, "expected a list of placements")
    out = []
    for i, item in enumerate(items):
        r = _Reader(item, f"{key}[{i}]")
        r.check_known(("node", "gpus", "mig_instance", "fraction"))
        gpus = r.data.get("gpus")
        if not isinstance(gpus, list) or not gpus or not all(isinstance(g, int) and g >= 0 for g in gpus):
            raise ConfigError(r.sub("gpus"), "expected a non-empty list of GPU indexes")
        mig = r.data.get("mig_instance")
        if mig is not None and (not isinstance(mig, int) or mig < 0):
            raise ConfigError(r.sub("mig_instance"), f"expected a non-negative integer, got {mig!r}")
        frac = r.num("fraction", None, lo=0.01, hi=1.0) if "fraction" in r.data else None
        out.append(PlacementSpec(r.text("node", ""), tuple(gpus), mig, frac))
    return tuple(out)


def _model(item: Any, key: str, base: ModelSpec | None) -> ModelSpec:
    r = _Reader(item, key)
    names = [f.name for f in dataclasses.fields(ModelSpec)]
    r.check_known(names)
    d = base or ModelSpec(name=r.text("name", "?"), tenant=r.text("tenant", "?"))
    try:
        name = validate_model(r.text("name", d.name))
        tenant = validate_tenant(r.text("tenant", d.tenant))
        engine = EngineKind(r.data.get("engine", d.engine))
    except (NameValidationError, ValueError) as e:
        raise ConfigError(key, str(e)) from e
    kw: dict[str, Any] = {
        "name": name,
        "tenant": tenant,
        "engine": engine,
        "size_class": r.text("size_class", d.size_class),
    }
    for f in (
        "rate_rps",
        "prompt_tokens_mean",
        "output_tokens_mean",
        "base_itl_s",
        "prefill_tokens_per_s",
        "weights_gib",
        "base_error_rate",
    ):
        kw[f] = float(r.num(f, getattr(d, f), lo=0.0, hi=1.0 if f == "base_error_rate" else None))
    for f in ("max_num_seqs", "kv_cache_tokens", "max_model_len"):
        kw[f] = r.num(f, getattr(d, f), lo=1, integer=True)
    kw["replicas"] = (
        _placements(r.data["replicas"], r.sub("replicas")) if "replicas" in r.data else d.replicas
    )
    return ModelSpec(**kw)


def _node(item: Any, key: str) -> NodeSpec:
    r = _Reader(item, key)
    r.check_known(("name", "gpu", "gpu_count", "cpu", "memory_gib", "mig"))
    gpu = r.text("gpu", "H100")
    if gpu not in PRODUCTS:
        raise ConfigError(r.sub("gpu"), f"unknown GPU {gpu!r} (known: {', '.join(PRODUCTS)})")
    mig_raw = r.data.get("mig", {})
    if not isinstance(mig_raw, Mapping):
        raise ConfigError(r.sub("mig"), "expected a mapping of GPU index to a list of MIG profiles")
    mig: dict[int, tuple[str, ...]] = {}
    for k, v in mig_raw.items():
        if not isinstance(v, list) or not all(p in MIG_MEMORY_MIB for p in v):
            raise ConfigError(
                f"{r.sub('mig')}.{k}", f"expected MIG profiles among {', '.join(MIG_MEMORY_MIB)}"
            )
        mig[int(k)] = tuple(v)
    return NodeSpec(
        r.text("name", ""),
        gpu,
        r.num("gpu_count", 8, lo=0, integer=True),
        r.num("cpu", 192, lo=1, integer=True),
        r.num("memory_gib", 2048, lo=1, integer=True),
        mig,
    )


def _canary(item: Any, key: str, base: CanarySpec | None) -> CanarySpec | None:
    if item is None:
        return None
    r = _Reader(item, key)
    r.check_known([f.name for f in dataclasses.fields(CanarySpec)])
    d = base or CanarySpec(model=r.text("model", "?"))
    steps = r.data.get("weight_steps", list(d.weight_steps))
    if (
        not isinstance(steps, list | tuple)
        or not steps
        or not all(isinstance(w, int) and not isinstance(w, bool) and 0 < w <= 100 for w in steps)
        or list(steps) != sorted(steps)
    ):
        raise ConfigError(r.sub("weight_steps"), f"expected increasing integers in 1..100, got {steps!r}")
    try:
        outcome = CanaryOutcome(r.data.get("outcome", d.outcome))
    except ValueError as e:
        raise ConfigError(r.sub("outcome"), str(e)) from e
    return CanarySpec(
        model=r.text("model", d.model),
        revision=r.num("revision", d.revision, lo=2, integer=True),
        replicas=_placements(r.data["replicas"], r.sub("replicas")) if "replicas" in r.data else d.replicas,
        start_s=float(r.num("start_s", d.start_s, lo=0)),
        weight_steps=tuple(steps),
        step_duration_s=float(r.num("step_duration_s", d.step_duration_s, lo=1)),
        warmup_s=float(r.num("warmup_s", d.warmup_s, lo=0)),
        outcome=outcome,
    )


def build_fleet_spec(mapping: Mapping[str, Any] | None, *, key: str = "simulator") -> FleetSpec:
    """Build a FleetSpec from a config mapping over the defaults; a bad value raises ConfigError naming its key."""
    r = _Reader(mapping or {}, key)
    scalars = (
        "seed",
        "start",
        "speed",
        "step_s",
        "cluster",
        "base_port",
        "load_factor",
        "max_queue_per_seq",
        "client_timeout_s",
        "restart_downtime_s",
        "log_retention_s",
    )
    r.check_known((*scalars, "nodes", "models", "canary", "regression", "restarts"))
    seed = r.num("seed", 7, integer=True, lo=0, hi=2**32 - 1)  # numpy seeds
    d = default_fleet_spec(seed)
    start = d.start
    if "start" in r.data:
        raw = r.data["start"]
        try:
            start = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
        except ValueError as e:
            raise ConfigError(r.sub("start"), f"not an ISO 8601 datetime: {raw!r}") from e
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    nodes = d.nodes
    if "nodes" in r.data:
        nodes = tuple(_node(n, f"{r.sub('nodes')}[{i}]") for i, n in enumerate(r.items("nodes")))
    models = d.models
    if "models" in r.data:
        by_name = {m.name: m for m in d.models}
        models = tuple(
            _model(
                m, f"{r.sub('models')}[{i}]", by_name.get(m.get("name")) if isinstance(m, Mapping) else None
            )
            for i, m in enumerate(r.items("models"))
        )
    canary = _canary(r.data["canary"], r.sub("canary"), d.canary) if "canary" in r.data else d.canary
    reg = d.regression
    if "regression" in r.data:
        rr = _Reader(r.data["regression"], r.sub("regression"))
        rr.check_known(("ttft_regression_pct", "itl_regression_pct", "error_rate_add"))
        reg = RegressionSpec(
            float(rr.num("ttft_regression_pct", reg.ttft_regression_pct, lo=-90)),
            float(rr.num("itl_regression_pct", reg.itl_regression_pct, lo=-90)),
            float(rr.num("error_rate_add", reg.error_rate_add, lo=0, hi=1)),
        )
    restarts = d.restarts
    if "restarts" in r.data:
        out = []
        for i, item in enumerate(r.items("restarts")):
            rr = _Reader(item, f"{r.sub('restarts')}[{i}]")
            rr.check_known(("pod", "at_s"))
            out.append(RestartSpec(rr.text("pod", ""), float(rr.num("at_s", 0.0, lo=0))))
        restarts = tuple(out)
    spec = FleetSpec(
        seed=seed,
        start=start,
        speed=float(r.num("speed", d.speed, lo=0.001)),
        step_s=float(r.num("step_s", d.step_s, lo=0.05, hi=60)),
        cluster=r.text("cluster", d.cluster),
        base_port=r.num("base_port", 0, lo=0, hi=65000, integer=True),
        load_factor=float(r.num("load_factor", 1.0, lo=0)),
        max_queue_per_seq=float(r.num("max_queue_per_seq", d.max_queue_per_seq, lo=0)),
        client_timeout_s=float(r.num("client_timeout_s", d.client_timeout_s, lo=1)),
        restart_downtime_s=float(r.num("restart_downtime_s", d.restart_downtime_s, lo=0)),
        log_retention_s=float(r.num("log_retention_s", d.log_retention_s, lo=60)),
        nodes=nodes,
        models=models,
        canary=canary,
        regression=reg,
        restarts=restarts,
    )
    validate_spec(spec, key=key)
    return spec


def validate_spec(spec: FleetSpec, *, key: str = "simulator") -> None:
    """Check cross references (nodes, GPUs, MIG instances, canary model); raise ConfigError naming the key."""
    nodes = {n.name: n for n in spec.nodes}
    names = [m.name for m in spec.models]
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}.models", "model names must be unique")

    def check(p: PlacementSpec, where: str) -> None:
        n = nodes.get(p.node)
        if n is None:
            raise ConfigError(f"{where}.node", f"unknown node {p.node!r}")
        if any(g >= n.gpu_count for g in p.gpus):
            raise ConfigError(f"{where}.gpus", f"node {p.node} has {n.gpu_count} GPUs")
        if p.mig_instance is not None and p.mig_instance >= len(n.mig.get(p.gpus[0], ())):
            raise ConfigError(
                f"{where}.mig_instance", f"GPU {p.gpus[0]} of {p.node} has no such MIG instance"
            )

    for i, m in enumerate(spec.models):
        if not m.replicas:
            raise ConfigError(f"{key}.models[{i}].replicas", "a model needs at least one replica")
        for j, p in enumerate(m.replicas):
            check(p, f"{key}.models[{i}].replicas[{j}]")
    if spec.canary is not None:
        if spec.canary.model not in names:
            raise ConfigError(f"{key}.canary.model", f"unknown model {spec.canary.model!r}")
        if not spec.canary.replicas:
            raise ConfigError(f"{key}.canary.replicas", "a canary needs at least one replica")
        for j, p in enumerate(spec.canary.replicas):
            check(p, f"{key}.canary.replicas[{j}]")
