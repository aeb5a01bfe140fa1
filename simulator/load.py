"""Load: per-model arrivals with a daily shape and noise, and the requests they create."""

from __future__ import annotations

import math
import random
import uuid
import zlib
from dataclasses import dataclass

import numpy as np

from simulator.config import ModelSpec

_TOKEN_SIGMA = 0.6  # lognormal spread of prompt and output lengths


def daily_shape(hour_of_day: float) -> float:
    """Relative load by hour (UTC): trough 0.55 at 04:00, peak 1.0 at 16:00."""
    return 0.55 + 0.45 * (0.5 - 0.5 * math.cos(2 * math.pi * (hour_of_day - 4.0) / 24.0))


def seeded_rng(seed: int, name: str) -> np.random.Generator:
    """A numpy generator keyed by (seed, name), stable across processes."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


@dataclass(slots=True)
class Request:
    """One request from arrival to completion (mutable while in flight)."""

    rid: str
    model: str
    tenant: str
    arrival: float  # sim seconds since start
    prompt: int
    output: int
    max_tokens: int
    pod: str = ""  # target pod name ("" when the gateway answered itself)
    variant: str = ""
    model_version: str = ""
    upstream: str = ""  # gateway cluster name
    enqueued: float = 0.0
    admitted: float = -1.0
    first_token: float = -1.0
    resume: float = -1.0  # when decoding (re)starts after the latest prefill
    finish: float = -1.0
    generated: float = 0.0
    queue_s: float = 0.0
    prefill_s: float = 0.0
    preemptions: int = 0
    status: int = 0
    flags: str = "-"
    finish_reason: str = ""
    counted: bool = False  # the engine counted it (request_success / Triton success or failure)
    fail: bool = False  # decided at admission: ends in an engine error

    @property
    def kv_tokens(self) -> int:
        """KV-cache tokens held while running."""
        return self.prompt + int(self.generated)

    @property
    def ttft_s(self) -> float:
        """Arrival to first token (NaN if none)."""
        return self.first_token - self.arrival if self.first_token >= 0 else float("nan")

    @property
    def e2e_s(self) -> float:
        """Arrival to completion."""
        return self.finish - self.arrival


class Arrivals:
    """The arrival process of one model: Poisson with a daily shape and smooth per-minute noise."""

    def __init__(self, seed: int, model: ModelSpec, load_factor: float, start_hour: float) -> None:
        self.seed, self.model, self.load_factor, self.start_hour = seed, model, load_factor, start_hour
        self.rng = seeded_rng(seed, f"arrivals/{model.name}")
        self._noise_cache: dict[int, float] = {}
        self._n = 0

    def _noise(self, minute: int) -> float:
        f = self._noise_cache.get(minute)
        if f is None:
            if len(self._noise_cache) > 4:
                self._noise_cache.clear()
            f = math.exp(0.15 * random.Random(f"{self.seed}:{self.model.name}:{minute}").gauss(0.0, 1.0))
            self._noise_cache[minute] = f
        return f

    def rate(self, t: float) -> float:
        """Mean arrivals per second at sim time ``t``."""
        m, frac = divmod(t / 60.0, 1.0)
        noise = self._noise(int(m)) * (1 - frac) + self._noise(int(m) + 1) * frac
        return (
            self.model.rate_rps * self.load_factor * daily_shape((self.start_hour + t / 3600.0) % 24) * noise
        )

    def draw(self, t0: float, dt: float) -> list[Request]:
        """The requests arriving in [t0, t0 + dt), in arrival order."""
        n = int(self.rng.poisson(self.rate(t0 + dt / 2) * dt))
        if n == 0:
            return []
        m = self.model
        times = np.sort(self.rng.uniform(t0, t0 + dt, n))
        prompts = self.rng.lognormal(math.log(m.prompt_tokens_mean) - _TOKEN_SIGMA**2 / 2, _TOKEN_SIGMA, n)
        outputs = self.rng.lognormal(math.log(m.output_tokens_mean) - _TOKEN_SIGMA**2 / 2, _TOKEN_SIGMA, n)
        ids = self.rng.integers(0, 2**63, (n, 2))
        out = []
        cap = m.max_model_len // 2
        for i in range(n):
            p = min(cap, max(1, int(prompts[i])))
            o = min(cap, max(1, int(outputs[i])))
            rid = str(uuid.UUID(int=(int(ids[i, 0]) << 64) | int(ids[i, 1]), version=4))
            self._n += 1
            max_tokens = max(o, 256 if o <= 256 else 1024 if o <= 1024 else cap)
            out.append(
                Request(rid, m.name, m.tenant, float(times[i]), p, o, max_tokens, enqueued=float(times[i]))
            )
        return out
