"""Status lifecycles as data: which state may follow which, with a clear refusal otherwise."""

from __future__ import annotations

from haechi.core.errors import Conflict, InvalidInput

from .config import transitions

INCIDENT = "incident"
UNIT = "unit"
OPEN_STATES = ("reported", "verified", "responding", "contained")


def allowed_next(lifecycle: str, state: str) -> tuple[str, ...]:
    return transitions(lifecycle).get(state, ())


def check(lifecycle: str, current: str, wanted: str, *, field: str = "body.status") -> None:
    """Refuse a move the lifecycle does not allow: 422 for an unknown state, 409 for an illegal step."""
    table = transitions(lifecycle)
    if wanted not in table:
        raise InvalidInput(f"unknown {lifecycle} status {wanted!r}; the statuses are {', '.join(table)}", field=field)
    nexts = table.get(current, ())
    if wanted not in nexts:
        allowed = ", ".join(nexts) if nexts else "none (it is final)"
        raise Conflict(
            f"{'an' if lifecycle[0] in 'aeiou' else 'a'} {lifecycle} cannot go from {current!r} to {wanted!r}; allowed next statuses: {allowed}",
            field=field)
