"""Hypothesis strategies for every RPC's request messages, built from the protobuf descriptors.

Every field of every request type gets values of its type, extremes included: any Unicode text,
the ends of each integer range, NaN and infinities, unknown enum numbers, nested messages and
repeated fields. Fields whose plausible values lead deeper into the server (a text it can
speak, a voice that exists, a sample rate in range) draw those values often, so a fuzzed call
gets past validation as well as failing it. Used by tests/test_fuzz.py (a few examples per RPC,
in ``make test``) and by ``make fuzz`` (many).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor, message_factory
from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import strategies as st

from syrinx.riva import riva_tts_pb2
from syrinx.v1 import synthesizer_pb2 as pb

SPEAKABLE = [
    "Hello there.",
    "Your table for two is booked for seven tonight.",
    "It costs $4.50, or 3 for $12!",
    "Dr. Smith lives at 221B Baker St.",
    "Wait... what?",
    "**Sure!** Here's a list:\n- one\n- two",
    "<speak>Hi</speak>",
    "[[ h ə l ˈoʊ ]]",
    "Ünïcödé façade — naïve café 😀",
]
VOICES = ["", "en_US-joe-medium", "Piper.EN-US.joe-medium"]

INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([0, 1, -1 if low < 0 else 2, low, high]), st.integers(low, high))


def _text(max_size: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SPEAKABLE),
        st.text(max_size=max_size),
        st.text(st.characters(codec="utf-8"), max_size=max_size),
        st.lists(st.sampled_from(SPEAKABLE), min_size=1, max_size=4).map(" ".join),
    )


# Field names whose plausible values are worth drawing often (any value is drawn too).
def _named(field: descriptor.FieldDescriptor, max_text: int) -> st.SearchStrategy[Any] | None:
    name = field.name
    if name == "text":
        return _text(max_text)
    if name in ("voice", "voice_name"):
        return st.one_of(st.sampled_from(VOICES), st.text(max_size=40))
    if name == "language_code":
        return st.one_of(st.sampled_from(["", "en-US", "en-us", "de-DE"]), st.text(max_size=10))
    if name == "sample_rate_hz":
        return st.one_of(st.sampled_from([0, 8000, 16000, 22050, 24000, 48000]), _integers(-(2**31), 2**31 - 1))
    if name == "speaking_rate":
        return st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.floats(width=32))
    if name == "chunk_duration_ms":
        return st.one_of(st.sampled_from([0, 20, 40]), _integers(0, 2**32 - 1))
    if name in ("speaker_id", "max_delay_ms"):
        return st.one_of(st.just(0), _integers(*INT_RANGES[field.type]))
    return None


def _scalar(field: descriptor.FieldDescriptor, max_text: int) -> st.SearchStrategy[Any]:
    named = _named(field, max_text)
    if named is not None:
        return named
    kind = field.type
    if kind in INT_RANGES:
        return _integers(*INT_RANGES[kind])
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind == F.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == F.TYPE_DOUBLE:
        return st.floats()
    if kind == F.TYPE_STRING:
        return st.text(max_size=40)
    if kind == F.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == F.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-3, 1000))  # proto3 enums are open
    if kind == F.TYPE_MESSAGE:
        return messages(field.message_type, max_text)
    raise AssertionError(f"no strategy for field type {kind}")


@st.composite
def _message(draw: st.DrawFn, message_type: descriptor.Descriptor, max_text: int) -> Any:
    message = message_factory.GetMessageClass(message_type)()
    for field in message_type.fields:
        if not draw(st.booleans()):
            continue  # left unset
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field, value_field = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            entries = draw(st.dictionaries(_scalar(key_field, 40), _scalar(value_field, 40), max_size=3))
            getattr(message, field.name).update(entries)
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field, max_text), max_size=3)))
        elif field.type == F.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(draw(_scalar(field, max_text)))
        else:
            setattr(message, field.name, draw(_scalar(field, max_text)))
    return message


def messages(message_type: descriptor.Descriptor, max_text: int = 200) -> st.SearchStrategy[Any]:
    """Messages of ``message_type`` with any subset of fields set to any value of their type."""
    return st.deferred(lambda: _message(message_type, max_text))


# -- the RPCs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    path: str  # /package.Service/Method
    request_type: descriptor.Descriptor
    request_streaming: bool
    response_streaming: bool

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1] + ("@riva" if "riva" in self.path else "")


def _rpcs(service: descriptor.ServiceDescriptor) -> list[Rpc]:
    return [
        Rpc(f"/{service.full_name}/{m.name}", m.input_type, m.client_streaming, m.server_streaming)
        for m in service.methods
    ]


RPCS = _rpcs(pb.DESCRIPTOR.services_by_name["Synthesizer"]) + _rpcs(
    riva_tts_pb2.DESCRIPTOR.services_by_name["RivaSpeechSynthesis"]
)


def requests(rpc: Rpc, max_text: int = 200) -> st.SearchStrategy[list[Any]]:
    """What one call sends: a message, or a list of them for a client-streaming RPC (a LiveSynthesize
    call often starts with its settings, as a well-behaved client's does)."""
    one = messages(rpc.request_type, max_text)
    if not rpc.request_streaming:
        return one.map(lambda m: [m])
    if rpc.request_type.full_name == "syrinx.v1.LiveSynthesizeRequest":
        settings = messages(pb.LiveSettings.DESCRIPTOR, max_text).map(lambda s: pb.LiveSynthesizeRequest(settings=s))
        return st.tuples(st.one_of(settings, one), st.lists(one, max_size=4)).map(lambda t: [t[0], *t[1]])
    return st.lists(one, min_size=1, max_size=4)


def call(channel: grpc.Channel, rpc: Rpc, bodies: list[bytes], timeout: float) -> tuple[grpc.StatusCode, int]:
    """Send serialized ``bodies`` (or any bytes) to ``rpc`` and read every response.
    Returns the status code and the number of responses."""
    identity: Callable[[bytes], bytes] = lambda data: data  # noqa: E731
    kinds = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }
    method = kinds[(rpc.request_streaming, rpc.response_streaming)](
        rpc.path, request_serializer=identity, response_deserializer=identity
    )
    argument: Any = iter(bodies) if rpc.request_streaming else bodies[0]
    try:
        result = method(argument, timeout=timeout)
        count = sum(1 for _ in result) if rpc.response_streaming else 1
    except grpc.RpcError as error:
        return error.code(), 0
    return grpc.StatusCode.OK, count
