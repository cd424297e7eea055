"""The runtime: one composer of the capabilities, each declaring what it runs in one place.

``part`` says what a capability's declaration holds and which roles a process may have,
``parts`` declares every capability, and ``compose`` starts the chosen roles of them in order
and stops them in reverse, with a small scheduler for periodic jobs. ``leader`` decides which
engine runs the engine role (one active, hot standbys); ``one_at_a_time`` does the same for a
service one replica runs (the MQTT ingest); ``membership`` shows every process in the cluster table.
"""

from .compose import Hooks, Runtime, run_roles, stopped_by_signals
from .leader import Leadership, LeadershipLost
from .part import Context, Job, Part, Role, Service

__all__ = ["Context", "Hooks", "Job", "Leadership", "LeadershipLost", "Part", "Role", "Runtime", "Service",
           "run_roles", "stopped_by_signals"]
