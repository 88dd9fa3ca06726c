"""Bearer tokens on every RPC but health: a server interceptor in front of every servicer.

A call needs ``authorization: Bearer <token>`` metadata with a token from the operator's file
(``--auth-tokens-file``). Both a missing and a wrong token are UNAUTHENTICATED, with different
messages: gRPC keeps PERMISSION_DENIED for a caller who is known but not allowed, and every
valid token here may do everything. A token may also be capped in how many calls it holds at
once (RESOURCE_EXHAUSTED naming the cap), so one client cannot take the whole server.

No token, hash or line of the file ever goes into a log line, span, metric or status message.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ..config import AuthConfig
from ..security.tokens import TokenEntry, TokenTable, read_tokens
from ..security.watched_file import WatchedFiles
from .handlers import HANDLER_MAKERS

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")
# Calls that read the server's settings only: they need a token but hold no stream slot.
UNCOUNTED_METHODS = frozenset(
    {"/syrinx.v1.Synthesizer/ListVoices", "/nvidia.riva.tts.RivaSpeechSynthesis/GetRivaSynthesisConfig"}
)

log = logging.getLogger(__name__)

_MISSING = "this server needs a token: send the metadata 'authorization: Bearer <token>'"
_INVALID = "the bearer token is not valid"


def _bearer_tokens(metadata: Any) -> list[str]:
    """Every ``authorization: Bearer x`` value (clients such as Pipecat's send the key more than once)."""
    tokens = []
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                tokens.append(token.strip())
    return tokens


class StreamSlots:
    """How many calls each token holds now, keyed by the token's digest (which stays the same
    when the file is edited around it); never logged."""

    def __init__(self, default_cap: int) -> None:
        self.default_cap = default_cap
        self.held: Counter[bytes] = Counter()

    def cap(self, entry: TokenEntry) -> int:
        return entry.max_streams if entry.max_streams is not None else self.default_cap

    def try_take(self, entry: TokenEntry) -> bool:
        cap = self.cap(entry)
        if cap and self.held[entry.digest] >= cap:
            return False
        self.held[entry.digest] += 1
        return True

    def give_back(self, entry: TokenEntry) -> None:
        self.held[entry.digest] -= 1
        if self.held[entry.digest] <= 0:
            del self.held[entry.digest]


def _refusal(handler: grpc.RpcMethodHandler, method: str, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that ends the call with ``code`` (and one log
    line naming the method and the peer, for the operator: never the credentials)."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        log.info("%s refused with %s: %s (peer %s)", method, code.name, message, context.peer())
        await context.abort(code, message)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        log.info("%s refused with %s: %s (peer %s)", method, code.name, message, context.peer())
        await context.abort(code, message)
        yield  # pragma: no cover - an async generator, as streaming handlers are

    return _same_kind(handler, refuse, refuse_stream)


def _same_kind(handler: grpc.RpcMethodHandler, unary: Callable[..., Any], streaming: Callable[..., Any]) -> Any:
    """A handler of ``handler``'s kind and (de)serializers, running ``streaming`` if its responses stream."""
    make = HANDLER_MAKERS[(handler.request_streaming, handler.response_streaming)]
    return make(
        streaming if handler.response_streaming else unary,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _behavior(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    return (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream  # type: ignore[return-value]
    )


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, config: AuthConfig) -> None:
        assert config.tokens_file is not None
        self.tokens: WatchedFiles[TokenTable] = WatchedFiles("auth tokens file", [config.tokens_file], read_tokens)
        self.slots = StreamSlots(config.max_streams_per_token)
        self._exempt = (HEALTH_PREFIX, *(() if config.reflection_needs_token else REFLECTION_PREFIXES))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        method = details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(self._exempt):
            return handler
        presented = _bearer_tokens(details.invocation_metadata)  # type: ignore[attr-defined]
        if not presented:
            return _refusal(handler, method, grpc.StatusCode.UNAUTHENTICATED, _MISSING)
        entry = self.tokens.current().match(presented)
        if entry is None:
            return _refusal(handler, method, grpc.StatusCode.UNAUTHENTICATED, _INVALID)
        if method in UNCOUNTED_METHODS:
            return handler
        return self._holding_a_slot(handler, entry)

    def _holding_a_slot(self, handler: grpc.RpcMethodHandler, entry: TokenEntry) -> grpc.RpcMethodHandler:
        """``handler`` with one of the token's slots held while its call runs (refused when none is free)."""
        behavior, slots = _behavior(handler), self.slots

        def over_cap() -> str:
            return f"this token already holds its limit of {slots.cap(entry)} concurrent calls; retry when one ends"

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if not slots.try_take(entry):
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, over_cap())
            try:
                return await behavior(request, context)
            finally:
                slots.give_back(entry)

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if not slots.try_take(entry):
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, over_cap())
            try:
                if inspect.isasyncgenfunction(behavior):
                    async for item in behavior(request, context):
                        yield item
                else:  # a handler that writes with context.write and returns
                    await behavior(request, context)
            finally:
                slots.give_back(entry)

        return _same_kind(handler, unary, streaming)
