"""The health view routing reads: an immutable picture, swapped whole.

A value is identified for health by (zone, check name, target text). The
prober (or, in production, the Redis quorum) publishes a new `HealthView`
with a higher generation whenever something changes; routers cache derived
pool health per generation. Operator decisions beat the monitors: `status:
up|down` on a value beats the checks, and a drained region counts as down.
"""

from __future__ import annotations

from dataclasses import dataclass

HealthKey = tuple[str, str, str]  # (zone origin, check name, target)


@dataclass(frozen=True, slots=True)
class HealthView:
    generation: int = 0
    down: frozenset[HealthKey] = frozenset()
    drained: frozenset[str] = frozenset()  # region names

    def is_up(self, key: HealthKey | None, status: str, region: str | None) -> bool:
        if region is not None and region in self.drained:
            return False
        if status == "up":
            return True
        if status == "down":
            return False
        return key is None or key not in self.down


ALL_UP = HealthView()
