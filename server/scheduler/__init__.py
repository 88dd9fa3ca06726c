"""Between transport and engine: which work runs next, batching, admission, cancellation.

``core`` holds the decisions as a synchronous state machine; ``loop`` runs it
on the event loop and the engine on its own thread.
"""

from .core import OverCapacityError, Scheduler, SchedulerConfig
from .loop import EngineClient, ScheduledStream, SchedulerLoop

__all__ = ["EngineClient", "OverCapacityError", "ScheduledStream", "Scheduler", "SchedulerConfig", "SchedulerLoop"]
