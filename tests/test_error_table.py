"""The transport's error table (``translate_errors``) against stand-in servicer contexts.

The real-server tests (``test_service``) show the codes a client sees; these cover what a
loopback client cannot provoke on purpose: a call that ends while its error is being sent.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest

from syrinx.server.scheduler import OverCapacityError
from syrinx.server.transport.errors import translate_errors


class RecordingContext:
    """Keeps what the handler aborted with, and raises as grpc.aio's abort does."""

    def __init__(self) -> None:
        self.aborted: tuple | None = None

    async def abort(self, code, details="", trailing_metadata=()):
        self.aborted = (code, details, dict(trailing_metadata))
        raise grpc.aio.AbortError()


class EndedCallContext:
    """A call whose deadline passed, or whose caller hung up, before the status went out:
    gRPC core refuses to send it."""

    async def abort(self, code, details="", trailing_metadata=()):
        raise grpc.aio.InternalError('Failed "execute_batch"')


class Servicer:
    @translate_errors
    async def Unary(self, request, context):
        raise OverCapacityError(
            "server is at its limit of 2 concurrent streams; retry shortly", retry_after_seconds=0.5
        )

    @translate_errors
    async def Streaming(self, request, context):
        yield "first"
        raise OverCapacityError(
            "server is at its limit of 2 concurrent streams; retry shortly", retry_after_seconds=0.5
        )


async def _drain(stream) -> list:
    return [item async for item in stream]


def test_a_domain_error_aborts_with_its_code_message_and_retry_hint():
    context = RecordingContext()
    with pytest.raises(grpc.aio.AbortError):
        asyncio.run(Servicer().Unary(None, context))
    code, details, trailers = context.aborted
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "server is at its limit of 2 concurrent streams; retry shortly"
    assert trailers["grpc-retry-pushback-ms"] == "500"


@pytest.mark.parametrize("method", ["Unary", "Streaming"])
def test_an_error_for_a_call_that_already_ended_ends_it_as_cancelled_without_logging_an_error(method, caplog):
    servicer = Servicer()
    call = getattr(servicer, method)(None, EndedCallContext())
    with caplog.at_level(logging.WARNING), pytest.raises(asyncio.CancelledError):
        asyncio.run(call if method == "Unary" else _drain(call))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
