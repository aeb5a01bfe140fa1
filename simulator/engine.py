"""A continuous-batching engine model: slots, KV cache, queueing, prefill, decode, preemption, errors."""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

from simulator.config import EngineKind, ModelSpec
from simulator.load import Request, seeded_rng
from simulator.stats import EngineStats

_ITL_BATCH_SLOWDOWN = 1.2  # ITL at a full batch is (1 + this) x the single-request ITL
_PREFILL_BATCH_SLOWDOWN = 0.8
_WARMUP_AMPLITUDE = 1.0  # a cold pod starts this much slower, decaying linearly over the warm-up
_PREFIX_HIT_RATIO = 0.35


@dataclass(frozen=True, slots=True)
class Degradation:
    """Multipliers applied to one pod (the canary's regression)."""

    ttft: float = 1.0
    itl: float = 1.0
    error_add: float = 0.0


class EngineSim:
    """One engine process on one pod; ``step`` advances it by dt and returns the requests that ended."""

    def __init__(
        self,
        seed: int,
        pod: str,
        model: ModelSpec,
        degradation: Degradation,
        started: float,
        warmup_s: float,
        epoch: float,
    ) -> None:
        self.model, self.pod, self.deg = model, pod, degradation
        self.rng = seeded_rng(seed, f"engine/{pod}")
        self.warmup_s = warmup_s
        self.epoch = epoch  # wall epoch of sim time 0, for *_created
        self.running: list[Request] = []
        self.waiting: deque[Request] = deque()
        self.restart(started)

    def restart(self, t: float) -> list[Request]:
        """Start a new process at ``t``: counters reset; in-flight requests are dropped and returned."""
        dropped = [*self.running, *self.waiting]
        self.running, self.waiting = [], deque()
        self.started = t
        self.stats = EngineStats(self.epoch + t, self.model.max_model_len)
        self.busy = 0.0  # mean batch occupancy of the last step, 0..1 of max_num_seqs
        self.iter_per_s = 0.0
        self.last_prefill_tokens = 0
        return dropped

    def warm(self, t: float) -> float:
        """Slowdown factor while the pod warms up (CUDA graphs, caches)."""
        if self.warmup_s <= 0:
            return 1.0
        return 1.0 + _WARMUP_AMPLITUDE * max(0.0, 1.0 - (t - self.started) / self.warmup_s)

    @property
    def queue_len(self) -> int:
        """Requests waiting for a slot."""
        return len(self.waiting)

    def enqueue(self, r: Request) -> None:
        """Accept a routed request into the waiting queue."""
        self.waiting.append(r)

    def step(self, t0: float, dt: float, client_timeout_s: float) -> list[Request]:
        """Advance [t0, t0 + dt): decode, finish, admit, preempt. Returns requests that ended."""
        m, st = self.model, self.stats
        t1 = t0 + dt
        b0 = len(self.running)
        warm = self.warm(t0)
        itl = m.base_itl_s * (1 + _ITL_BATCH_SLOWDOWN * b0 / m.max_num_seqs) * self.deg.itl * warm
        ended: list[Request] = []
        slot_free: list[float] = [t0] * max(0, m.max_num_seqs - b0)
        still: list[Request] = []
        gen_tokens = 0
        for r in self.running:
            before = int(r.generated)
            if self._decode(r, max(t0, r.resume), t1, itl):
                heapq.heappush(slot_free, r.finish)
                ended.append(r)
            else:
                still.append(r)
            gen_tokens += int(r.generated) - before
        self.running = still
        kv_used = sum(r.kv_tokens for r in still)
        # Admit in FIFO order while a slot and KV blocks are free inside this step.
        prefill_tokens = 0
        while self.waiting and slot_free:
            r = self.waiting[0]
            at = max(r.enqueued, slot_free[0])
            if at >= t1 or kv_used + r.prompt + int(r.generated) > m.kv_cache_tokens:
                break
            self.waiting.popleft()
            heapq.heappop(slot_free)
            r.queue_s += at - r.enqueued
            recompute = int(r.generated)
            prefill = (
                (r.prompt + recompute)
                / m.prefill_tokens_per_s
                * (1 + _PREFILL_BATCH_SLOWDOWN * len(self.running) / m.max_num_seqs)
                * warm
            )
            if r.admitted < 0:
                r.admitted = at
                prefill *= self.deg.ttft
                st.add("prompt_tokens", r.prompt)
                st.add("prefix_cache_queries", r.prompt)
                st.add("prefix_cache_hits", int(r.prompt * _PREFIX_HIT_RATIO) // 16 * 16)
                r.fail = bool(self.rng.random() < m.base_error_rate + self.deg.error_add)
            prefill_tokens += r.prompt + recompute
            r.prefill_s += prefill
            r.resume = at + prefill
            if r.first_token < 0:
                r.first_token = r.resume
            before = int(r.generated)
            if self._decode(r, r.resume, t1, itl):
                gen_tokens += int(r.generated) - before
                ended.append(r)
                continue
            gen_tokens += int(r.generated) - before
            kv_used += r.kv_tokens
            self.running.append(r)
        kv_used = sum(r.kv_tokens for r in self.running)
        while kv_used > m.kv_cache_tokens and len(self.running) > 1:
            victim = self.running.pop()  # vLLM preempts the most recently scheduled request
            kv_used -= victim.kv_tokens
            victim.preemptions += 1
            victim.enqueued = t1
            st.add("num_preemptions", 1)
            self.waiting.appendleft(victim)
        # Clients give up on requests still waiting after their timeout (vLLM counts them as aborted).
        kept: deque[Request] = deque()
        for r in self.waiting:
            if t1 - r.arrival > client_timeout_s:
                self._end(r, t1, "abort", 499, flags="DC")
                ended.append(r)
            else:
                kept.append(r)
        self.waiting = kept
        st.add("generation_tokens", gen_tokens)
        b = len(self.running)
        self.busy = min(1.0, (b0 + b) / 2 / m.max_num_seqs)
        self.iter_per_s = (1.0 / itl) if (b0 or b) else 0.0
        iters = round(dt * self.iter_per_s)
        if iters:
            st.hists["iteration_tokens_total"].observe(b + prefill_tokens, 1)
            st.hists["iteration_tokens_total"].observe(max(1, (b0 + b) // 2), iters - 1)
            st.add("exec_count", iters)
        self.last_prefill_tokens = prefill_tokens
        st.running, st.waiting = b, len(self.waiting)
        st.kv_usage = min(1.0, kv_used / m.kv_cache_tokens)
        for r in ended:
            self._record(r)
        return ended

    def _decode(self, r: Request, start: float, t1: float, itl: float) -> bool:
        """Generate tokens from ``start`` to ``t1``; True if the request finished (then r.finish is set)."""
        if start >= t1:
            return False
        if r.fail:
            self._end(r, start, "error", 500)
            return True
        if r.generated < 1:
            r.generated = 1.0  # the first token, emitted when prefill ends
        need = r.output - r.generated
        avail = (t1 - start) / itl
        gaps = int(min(need, avail) + r.generated) - int(r.generated)
        self.stats.hists["inter_token_latency_seconds"].observe(itl, gaps)
        if need <= avail:
            r.generated = float(r.output)
            reason = "length" if r.output >= r.max_tokens else "stop"
            self._end(r, start + max(0.0, need) * itl, reason, 200)
            return True
        r.generated += avail
        return False

    def _end(self, r: Request, t: float, reason: str, status: int, flags: str = "-") -> None:
        r.finish, r.finish_reason, r.status, r.flags = t, reason, status, flags
        r.counted = True

    def _record(self, r: Request) -> None:
        """Observe a finished request the way the engine's metrics do."""
        st = self.stats
        if self.model.engine is EngineKind.TRITON:
            if r.status == 200:
                st.success["stop"] += 1
            elif r.finish_reason == "abort":
                st.failure["CANCELED"] += 1
            else:
                st.failure["BACKEND"] += 1
            st.add("inference_count", 1)
            us = 1e6
            st.add("request_duration_us", int(r.e2e_s * us))
            st.add("queue_duration_us", int(r.queue_s * us))
            st.add("compute_input_duration_us", 40 + r.prompt // 20)
            st.add("compute_infer_duration_us", int(max(0.0, r.e2e_s - r.queue_s) * us))
            st.add("compute_output_duration_us", 30 + int(r.generated) // 10)
            if r.first_token >= 0 and r.first_token <= r.finish:
                st.hists["first_response_histogram_ms"].observe(r.ttft_s * 1000.0)
            return
        st.success[r.finish_reason] += 1
        h = st.hists
        e2e = r.e2e_s
        h["e2e_request_latency_seconds"].observe(e2e)
        h["request_queue_time_seconds"].observe(r.queue_s)
        h["request_inference_time_seconds"].observe(max(0.0, e2e - r.queue_s))
        h["request_prompt_tokens"].observe(r.prompt)
        h["request_generation_tokens"].observe(int(r.generated))
        h["request_params_max_tokens"].observe(r.max_tokens)
        h["request_max_num_generation_tokens"].observe(r.max_tokens)
        h["request_params_n"].observe(1)
        if r.first_token >= 0 and r.first_token <= r.finish:
            h["time_to_first_token_seconds"].observe(r.ttft_s)
            h["request_prefill_time_seconds"].observe(r.prefill_s)
            decode = r.finish - r.first_token
            h["request_decode_time_seconds"].observe(decode)
            if r.generated > 1:
                h["request_time_per_output_token_seconds"].observe(decode / (int(r.generated) - 1))
        else:
            h["request_prefill_time_seconds"].observe(0.0)
            h["request_decode_time_seconds"].observe(0.0)


def itl_of(r: Request) -> float:
    """Mean inter-token latency of a finished request (NaN with fewer than two tokens)."""
    if r.first_token < 0 or r.generated < 2:
        return math.nan
    return (r.finish - r.first_token) / (int(r.generated) - 1)
