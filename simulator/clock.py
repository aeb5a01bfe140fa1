"""Simulated time: a start datetime advanced by wall time x speed, or by hand in manual mode."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta


class SimClock:
    """Sim time = start + (wall seconds since ``run()``) x speed; in manual mode only ``advance``/``set`` move it."""

    def __init__(self, start: datetime, speed: float = 60.0, *, manual: bool = False) -> None:
        self.start, self.speed, self.manual = start, speed, manual
        self._lock = threading.Lock()
        self._offset = 0.0  # sim seconds since start at the last anchor
        self._anchor: float | None = None  # monotonic wall time of the anchor while running

    def run(self) -> None:
        """Let wall time drive the clock (no effect in manual mode)."""
        with self._lock:
            if not self.manual and self._anchor is None:
                self._anchor = time.monotonic()

    def pause(self) -> None:
        """Freeze the clock where it is."""
        with self._lock:
            self._offset = self._seconds_locked()
            self._anchor = None

    def _seconds_locked(self) -> float:
        if self._anchor is None:
            return self._offset
        return self._offset + (time.monotonic() - self._anchor) * self.speed

    def seconds(self) -> float:
        """Sim seconds since ``start``."""
        with self._lock:
            return self._seconds_locked()

    def now(self) -> datetime:
        """The current sim datetime."""
        return self.start + timedelta(seconds=self.seconds())

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (any mode)."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._offset += seconds

    def set(self, when: datetime | float) -> None:
        """Move the clock to ``when`` (a datetime or sim seconds since start); never backwards."""
        target = (when - self.start).total_seconds() if isinstance(when, datetime) else float(when)
        with self._lock:
            now = self._seconds_locked()
            if target < now - 1e-9:
                raise ValueError("a clock does not go backwards")
            self._offset += target - now
