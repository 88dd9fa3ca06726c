"""The engine's threads give way to the server's own threads the moment those wake.

On a CPU the engine's torch threads keep every core busy while streams are being
made. A thread that answers calls (the event loop, gRPC's threads) wakes up onto a
core a torch thread is using, and Linux lets the torch thread run on to the end of
its time slice: 4.5-5.5 ms, about a scheduler tick at HZ=250, in our measurements.
A shed call's RESOURCE_EXHAUSTED, a health check or a cancellation waited that long
behind the model (docs/reliability.md).

At ``SCHED_IDLE`` the kernel preempts the engine's threads as soon as a normal
thread of the same cgroup wakes, and they still get every cycle nobody else wants.
The cgroup is the container (or the systemd unit): the priority ranks the server's
threads among themselves, not the server against other workloads. The threads the
model needs are the engine thread and libgomp's workers, which the engine thread
starts at its first parallel region and which inherit its policy, so setting it on
the engine thread before its first torch call covers them all.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

PRIORITIES = ("idle", "normal")


def set_engine_thread_priority(priority: str) -> bool:
    """Give the calling thread (the engine thread) ``priority``; True when it is in effect."""
    if priority == "normal":
        return True
    setscheduler = getattr(os, "sched_setscheduler", None)
    if setscheduler is None or not hasattr(os, "SCHED_IDLE"):
        log.info("this platform has no SCHED_IDLE; the engine's threads run at normal priority")
        return False
    try:
        setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError as error:  # a seccomp profile may refuse it; the server works the same, answers wait more
        log.warning("could not run the engine's threads at idle priority (%s); they run at normal priority", error)
        return False
    return True
