"""Status lifecycles as data: which state may follow which, with a clear refusal otherwise."""

from __future__ import annotations

import networkx as nx

from haechi.core.errors import Conflict, InvalidInput

from .config import transitions

INCIDENT = "incident"
UNIT = "unit"
OPEN_STATES = ("reported", "verified", "responding", "contained")


def allowed_next(lifecycle: str, state: str) -> tuple[str, ...]:
    return transitions(lifecycle).get(state, ())


def is_final(lifecycle: str, state: str) -> bool:
    """A state the lifecycle table lets nothing follow (an incident's ``closed``)."""
    return state in transitions(lifecycle) and not allowed_next(lifecycle, state)


def path(lifecycle: str, start: str, goal: str) -> tuple[str, ...]:
    """The fewest allowed steps from ``start`` to ``goal`` (the states after ``start``); () if none.

    So a unit released from ``on_scene`` goes ``returning`` then ``available``, exactly as an
    operator would have to move it.
    """
    graph = nx.DiGraph([(state, following) for state, nexts in transitions(lifecycle).items() for following in nexts])
    if start == goal or start not in graph or goal not in graph or not nx.has_path(graph, start, goal):
        return ()
    return tuple(nx.shortest_path(graph, start, goal)[1:])


def check(lifecycle: str, current: str, wanted: str, *, field: str = "body.status") -> None:
    """Refuse a move the lifecycle does not allow: 422 for an unknown state, 409 for an illegal step."""
    table = transitions(lifecycle)
    if wanted not in table:
        raise InvalidInput(f"unknown {lifecycle} status {wanted!r}; the statuses are {', '.join(table)}", field=field)
    nexts = table.get(current, ())
    if wanted not in nexts:
        allowed = ", ".join(nexts) if nexts else "none (it is final)"
        raise Conflict(
            f"{'an' if lifecycle[0] in 'aeiou' else 'a'} {lifecycle} cannot go from {current!r} to {wanted!r}; "
            f"allowed next statuses: {allowed}",
            field=field)
