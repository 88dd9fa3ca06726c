"""Registering a servicer whose request bodies are parsed without raising.

The generated ``add_*Servicer_to_server`` functions parse each request with its message's
``FromString``; a body that is not a valid protobuf then raises inside gRPC, which answers
UNKNOWN ("Unexpected DecodeError") and logs an error with a stack trace. These handlers
parse the same way, but a body that does not parse becomes a :class:`MalformedRequest`,
which ``translate_errors`` turns into INVALID_ARGUMENT with a short message, no trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor, message_factory
from google.protobuf.message import DecodeError

from ..engine.errors import InvalidOptionError


class MalformedRequestError(InvalidOptionError):
    """A request body that is not a valid message of its type (INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class MalformedRequest:
    """What a body that does not parse becomes: the handler raises :class:`MalformedRequestError`."""

    type_name: str

    def error(self) -> MalformedRequestError:
        return MalformedRequestError(f"the request body is not a valid {self.type_name} message")


def _parser(message_class: Any) -> Callable[[bytes], Any]:
    def parse(body: bytes) -> Any:
        try:
            return message_class.FromString(body)
        except DecodeError:
            return MalformedRequest(message_class.DESCRIPTOR.full_name)

    return parse


# (client streaming, server streaming) -> the grpc factory of that kind of method handler.
HANDLER_MAKERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_servicer(server: grpc.aio.Server, servicer: Any, service: descriptor.ServiceDescriptor) -> None:
    """Register every method of ``service`` on ``server``, served by ``servicer``'s same-named methods."""
    handlers = {}
    for method in service.methods:
        make_handler = HANDLER_MAKERS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make_handler(
            getattr(servicer, method.name),
            request_deserializer=_parser(message_factory.GetMessageClass(method.input_type)),
            response_serializer=message_factory.GetMessageClass(method.output_type).SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
