"""Fetch /metrics pages over HTTP, concurrently and with bounded retries, like a Prometheus scrape."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict, Unpack

import httpx

from analytics.errors import CollectorError, ConfigError
from collectors.targets import Target, host_port

Clock = Callable[[], datetime]

# What Prometheus 2.x sends: prefer OpenMetrics, accept the classic text format.
ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
USER_AGENT = "fleetlens-scraper/0.1"
MAX_BODY_BYTES = 64 * 1024 * 1024
BACKOFF_S = 0.1


def utc_now() -> datetime:
    """The wall clock, aware UTC (the default clock of a scrape)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """The outcome of scraping one target once: the page text when ``ok``, else why not."""

    target: Target
    ts: datetime  # scrape start, from the injected clock
    ok: bool  # like Prometheus's `up`
    http_status: int | None
    duration_s: float
    text: str | None
    error: str = ""
    content_type: str | None = None
    attempts: int = 0


class _AttemptFailed(Exception):
    """One attempt failed: the message for the SCRAPES row and the HTTP status, if one came back."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _Retryable(_AttemptFailed):
    """Worth retrying: connection error, timeout, 5xx, a cut-off body."""


class _Fatal(_AttemptFailed):
    """A retry will not fix it: 4xx, body too large, not text."""


@dataclass(frozen=True, slots=True)
class _Page:
    """A page fetched whole: status, decoded text and the declared content type."""

    status: int
    text: str
    content_type: str | None


async def afetch_pages(
    targets: Sequence[Target],
    *,
    timeout_s: float = 5.0,
    retries: int = 2,
    concurrency: int = 16,
    clock: Clock = utc_now,
    client: httpx.AsyncClient | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    backoff_s: float = BACKOFF_S,
    timer: Callable[[], float] = time.perf_counter,
) -> list[ScrapeResult]:
    """Scrape every target at most ``concurrency`` at a time; one result per target, in order.

    Each attempt is bounded by ``timeout_s`` as a whole (connect, headers and body), like
    Prometheus's ``scrape_timeout``. A target's failure never raises: it is a result with ok=False.
    """
    if timeout_s <= 0 or retries < 0 or concurrency < 1:
        raise CollectorError(
            f"bad scrape settings: timeout_s={timeout_s} retries={retries} concurrency={concurrency}"
        )
    sem = asyncio.Semaphore(concurrency)
    own = client is None
    if client is None:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=True,
            # Like Prometheus, ignore HTTP(S)_PROXY from the environment: a proxy meant for the
            # outside world must not sit between the collector and in-cluster pod IPs.
            trust_env=False,
        )
    try:
        jobs = [
            _scrape_one(t, client=client, sem=sem, timeout_s=timeout_s, retries=retries, clock=clock,
                        max_body_bytes=max_body_bytes, backoff_s=backoff_s, timer=timer)
            for t in targets
        ]
        return list(await asyncio.gather(*jobs))
    finally:
        if own:
            await client.aclose()


class FetchOptions(TypedDict, total=False):
    """The keyword settings of ``afetch_pages`` (its signature holds the defaults)."""

    timeout_s: float
    retries: int
    concurrency: int
    clock: Clock
    client: httpx.AsyncClient | None
    max_body_bytes: int
    backoff_s: float
    timer: Callable[[], float]


def fetch_pages(targets: Sequence[Target], **options: Unpack[FetchOptions]) -> list[ScrapeResult]:
    """Synchronous ``afetch_pages`` (runs its own event loop: call ``afetch_pages`` inside one)."""
    return asyncio.run(afetch_pages(targets, **options))


async def _scrape_one(
    target: Target,
    *,
    client: httpx.AsyncClient,
    sem: asyncio.Semaphore,
    timeout_s: float,
    retries: int,
    clock: Clock,
    max_body_bytes: int,
    backoff_s: float,
    timer: Callable[[], float],
) -> ScrapeResult:
    """One target: up to 1 + ``retries`` attempts, each under the semaphore and the timeout."""
    async with sem:
        ts = clock()
        if ts.tzinfo is None:
            raise CollectorError(f"the scrape clock returned a naive datetime {ts!r}; it must be aware UTC")
        ts = ts.astimezone(UTC)
        start = timer()
        status: int | None = None
        error = ""
        attempts = 0
        if target.error:
            return ScrapeResult(target, ts, False, None, 0.0, None, target.error, attempts=0)
        try:
            host_port(target.url)
        except ConfigError as exc:
            return ScrapeResult(target, ts, False, None, 0.0, None, str(exc), attempts=0)
        for attempt in range(retries + 1):
            attempts += 1
            try:
                async with asyncio.timeout(timeout_s):
                    page = await _attempt(client, target.url, timeout_s, max_body_bytes)
                return ScrapeResult(target, ts, True, page.status, timer() - start, page.text,
                                    content_type=page.content_type, attempts=attempts)
            except _Fatal as exc:
                status, error = exc.status, exc.message
                break
            except _Retryable as exc:
                status, error = exc.status, exc.message
            except TimeoutError:
                status, error = None, f"timeout after {timeout_s:g}s"
            if attempt < retries:
                # Short exponential backoff: enough to ride out a restart, short next to an interval.
                await asyncio.sleep(backoff_s * (2**attempt))
        return ScrapeResult(target, ts, False, status, timer() - start, None, error, attempts=attempts)


async def _attempt(client: httpx.AsyncClient, url: str, timeout_s: float, max_body_bytes: int) -> _Page:
    """One GET of ``url``: the decoded page, or _Retryable / _Fatal naming what went wrong."""
    headers = {
        "Accept": ACCEPT,
        "User-Agent": USER_AGENT,
        # Lets an exporter cut its own work short, as Prometheus does.
        "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout_s:g}",
    }
    status: int | None = None
    try:
        async with client.stream("GET", url, headers=headers) as resp:
            status = resp.status_code
            if status >= 500:
                raise _Retryable(f"HTTP {status} {resp.reason_phrase}".rstrip(), status)
            if status != 200:
                raise _Fatal(f"HTTP {status} {resp.reason_phrase}".rstrip(), status)
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_body_bytes:
                raise _Fatal(f"body too large: Content-Length {declared} > {max_body_bytes} bytes", status)
            body = bytearray()
            # Counted after gzip decoding, so a compressed bomb is caught too.
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > max_body_bytes:
                    raise _Fatal(f"body too large: more than {max_body_bytes} bytes", status)
            content_type = resp.headers.get("content-type")
    except httpx.RemoteProtocolError as exc:
        # h11 raises this when the peer closes before Content-Length bytes arrived: a cut-off page
        # must never pass for a short one.
        raise _Retryable(f"truncated or malformed response: {exc}", status) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise _Fatal(f"invalid URL: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise _Retryable(f"timeout after {timeout_s:g}s ({type(exc).__name__})", status) from exc
    except httpx.TransportError as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc or 'connection failed'}", status) from exc
    except httpx.HTTPError as exc:
        raise _Fatal(f"{type(exc).__name__}: {exc}", status) from exc
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Fatal(f"body is not UTF-8 text (byte {exc.start}): not an exposition page", status) from exc
    return _Page(status, text, content_type)
