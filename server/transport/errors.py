"""The one table from domain errors to gRPC status codes, applied to every RPC method.

Messages of domain errors are written for the client and pass through as they
are. Anything else is a bug: the client gets INTERNAL with an id to quote, and
the stack trace goes to the server log under that id, never to the client.

Load shedding (RESOURCE_EXHAUSTED) carries when to retry twice over: a
``google.rpc.RetryInfo`` in the rich status details, for clients that read
them, and the ``grpc-retry-pushback-ms`` trailer that gRPC's own retry
policies obey.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..audio import UnsupportedAudioError
from ..engine.errors import InvalidOptionError, InvalidTextError, VoiceNotFoundError
from ..live import SessionIdleError
from ..scheduler import OverCapacityError
from ..service import UnavailableError
from .handlers import MalformedRequest

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[Exception], grpc.StatusCode] = {
    InvalidTextError: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidOptionError: grpc.StatusCode.INVALID_ARGUMENT,
    UnsupportedAudioError: grpc.StatusCode.INVALID_ARGUMENT,
    VoiceNotFoundError: grpc.StatusCode.NOT_FOUND,
    OverCapacityError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    SessionIdleError: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_for(error: Exception) -> tuple[grpc.StatusCode, str]:
    for kind, code in STATUS_BY_ERROR.items():
        if isinstance(error, kind):
            return code, str(error)
    incident = uuid.uuid4().hex[:12]
    log.error("internal error %s", incident, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error (id {incident}); the operator can find it in the server log"


def _trailers(code: grpc.StatusCode, message: str, error: Exception) -> tuple[tuple[str, str | bytes], ...]:
    retry_after = getattr(error, "retry_after_seconds", None)
    if retry_after is None:
        return ()
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(retry_after * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    rich = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))
    return (*rich.trailing_metadata, ("grpc-retry-pushback-ms", str(int(retry_after * 1000))))


async def _abort(context: grpc.aio.ServicerContext, error: Exception) -> None:
    code, message = status_for(error)
    try:
        await context.abort(code, message, _trailers(code, message, error))
    except grpc.aio.InternalError as unsent:
        # The call ended (its deadline passed, or the caller hung up) while this answer was
        # on its way, before gRPC had noticed: nobody is left to tell. End it as gRPC ends
        # a call cancelled under a running handler, instead of letting gRPC log an error
        # with a stack trace for it (seen under load, with short client deadlines).
        raise asyncio.CancelledError("the call ended before its status could be sent") from unsent


def _checked(request: Any) -> Any:
    """The request, or its stream of requests, with a body that did not parse raised as an error."""
    if isinstance(request, MalformedRequest):
        raise request.error()
    if hasattr(request, "__aiter__"):

        async def messages():
            async for message in request:
                if isinstance(message, MalformedRequest):
                    raise message.error()
                yield message

        return messages()
    return request


def translate_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a servicer method so errors leave through :data:`STATUS_BY_ERROR`, and a request body
    that did not parse (``handlers.MalformedRequest``) is INVALID_ARGUMENT."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def streaming(self, request, context, *passed):
            try:
                async for item in method(self, _checked(request), context, *passed):
                    yield item
            except (grpc.aio.AbortError, GeneratorExit):
                raise
            except Exception as error:
                await _abort(context, error)

        return streaming

    @functools.wraps(method)
    async def unary(self, request, context, *passed):
        try:
            return await method(self, _checked(request), context, *passed)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort(context, error)

    return unary
