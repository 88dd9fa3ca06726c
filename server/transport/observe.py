"""One span and one status count per RPC, around the error table (so they see the final code)."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

import grpc

from ..telemetry import RpcCall


def _finish(call: RpcCall, context: grpc.aio.ServicerContext, cancelled: bool) -> None:
    code = grpc.StatusCode.CANCELLED if cancelled else (context.code() or grpc.StatusCode.OK)
    if isinstance(code, int):  # grpc.aio gives the enum; be lenient with raw numbers
        code = next(c for c in grpc.StatusCode if c.value[0] == code)
    call.finish(code.value[0], code.name, "" if cancelled else (context.details() or ""))
    call.span.end()


def observed(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a servicer method that takes an :class:`RpcCall` as its last argument; the servicer has ``_telemetry``."""
    name = method.__name__
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def streaming(self, request, context):
            call = self._telemetry.start_rpc(name, context.invocation_metadata() or ())
            cancelled = False
            try:
                async for item in method(self, request, context, call):
                    yield item
            except asyncio.CancelledError:
                cancelled = True
                raise
            finally:
                _finish(call, context, cancelled)

        return streaming

    @functools.wraps(method)
    async def unary(self, request, context):
        call = self._telemetry.start_rpc(name, context.invocation_metadata() or ())
        cancelled = False
        try:
            return await method(self, request, context, call)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            _finish(call, context, cancelled)

    return unary
