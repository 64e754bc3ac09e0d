"""Schedules over training progress, for loss weights and distillation temperatures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ramp:
    """A linear ramp over training progress (0 at the first step, 1 at the last).

    The value is `start` until progress `begin`, moves linearly to `end` by progress `until`, and stays there.
    Warm-up: Ramp(start=0, end=1, until=0.1). Decay: Ramp(start=1, end=0). Temperature annealing: Ramp(4, 1).
    """

    start: float
    end: float
    begin: float = 0.0
    until: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.begin < self.until <= 1.0:
            raise ValueError(f"Ramp needs 0 <= begin < until <= 1, got begin={self.begin}, until={self.until}")

    def __call__(self, progress: float) -> float:
        fraction = min(max((progress - self.begin) / (self.until - self.begin), 0.0), 1.0)
        return self.start + (self.end - self.start) * fraction
