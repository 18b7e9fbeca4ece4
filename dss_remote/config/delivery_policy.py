"""When webhook deliveries are retried and given up: the store config's `delivery` section (pure).

`schedule[k]` is the wait before attempt k+1, counted from the previous attempt (attempt 1: from
the enqueue). After the schedule's last step, attempts repeat at that last interval until the next
one would fall later than `give_up_after` seconds after the first attempt; then the entry goes to
the dead letters. The default is HCA DSS's: at once, 1 min, 10 min, 1 h, 6 h, then every 6 h for
7 days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ria_store.errors import ConfigError

DEFAULT_SCHEDULE = (0.0, 60.0, 600.0, 3600.0, 21600.0)
DEFAULT_GIVE_UP_AFTER = 7 * 86400.0
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 300.0
MAX_STEPS = 100
_FIELDS = {"schedule", "give_up_after", "timeout"}


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry schedule (seconds), when to give up, and the connect/read timeout of one POST."""

    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    give_up_after: float = DEFAULT_GIVE_UP_AFTER
    timeout: float = DEFAULT_TIMEOUT

    def first_due(self, enqueued: float) -> float:
        """When a fresh entry is first attempted."""
        return enqueued + self.schedule[0]

    def next_attempt(self, attempts: int, last_attempt: float, first_attempt: float) -> float | None:
        """When to try again after `attempts` failed attempts; None: give up (dead letter)."""
        if attempts < len(self.schedule):
            return last_attempt + self.schedule[attempts]
        when = last_attempt + self.schedule[-1]
        return when if when <= first_attempt + self.give_up_after else None

    def is_default(self) -> bool:
        return self == DeliveryPolicy()

    def to_json(self) -> dict[str, Any]:
        return {"schedule": [_num(s) for s in self.schedule], "give_up_after": _num(self.give_up_after),
                "timeout": _num(self.timeout)}


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_schedule(steps: Any, where: str) -> tuple[float, ...]:
    if (not isinstance(steps, list) or not steps or len(steps) > MAX_STEPS
            or not all(_number(s) and 0 <= s for s in steps)):
        raise ConfigError(f"{where}: delivery schedule {steps!r} must be a list of 1 to {MAX_STEPS} "
                          "waits in seconds (>= 0), e.g. [0, 60, 600, 3600, 21600]")
    return tuple(float(s) for s in steps)


def check_give_up_after(value: Any, where: str) -> float:
    if not _number(value) or value < 0:
        raise ConfigError(f"{where}: delivery give_up_after {value!r} must be seconds (>= 0) after the "
                          "first attempt, e.g. 604800 for 7 days")
    return float(value)


def check_timeout(value: Any, where: str) -> float:
    if not _number(value) or not 0 < value <= MAX_TIMEOUT:
        raise ConfigError(f"{where}: delivery timeout {value!r} must be seconds, more than 0 and at "
                          f"most {MAX_TIMEOUT:g}, e.g. 10")
    return float(value)


def check_policy(policy: DeliveryPolicy, where: str) -> DeliveryPolicy:
    """Refuse a policy that would retry without pause for `give_up_after` seconds."""
    if policy.schedule[-1] == 0 and policy.give_up_after > 0:
        raise ConfigError(f"{where}: a delivery schedule ending in 0 would retry without pause until "
                          "give_up_after; end it with a wait > 0 or set give_up_after to 0")
    return policy


def parse_delivery(section: Any, where: str) -> DeliveryPolicy:
    """Validate the `delivery` object of a store config; every field is optional."""
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: 'delivery' must be an object such as "
                          '{"schedule": [0, 60, 600], "give_up_after": 86400, "timeout": 10}')
    unknown = sorted(set(section) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: 'delivery' has unknown field(s) {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(sorted(_FIELDS))}); remove them or upgrade dss-remote")
    d = DeliveryPolicy()
    return check_policy(DeliveryPolicy(
        schedule=check_schedule(section["schedule"], where) if "schedule" in section else d.schedule,
        give_up_after=(check_give_up_after(section["give_up_after"], where)
                       if "give_up_after" in section else d.give_up_after),
        timeout=check_timeout(section["timeout"], where) if "timeout" in section else d.timeout), where)


def parse_schedule_arg(text: str) -> tuple[float, ...]:
    """`--schedule 0,60,600` as waits in seconds."""
    try:
        steps: Any = [float(s) for s in text.split(",")]
    except ValueError:
        steps = text
    return check_schedule(steps, "--schedule")
