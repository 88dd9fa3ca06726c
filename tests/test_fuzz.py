"""Property-based fuzzing of every RPC of both protocols, on a real server with the real engine.

Any request (any field set to any value of its type, or bytes that are no protobuf at all) gets
OK or a clear client-error status, never INTERNAL or UNKNOWN, and no ERROR line in the log; the
server stays SERVING; concurrent streams never carry each other's audio. ``make test`` runs a
few fixed examples per RPC; ``make fuzz`` runs many random ones and prints what they got
(docs/reliability.md).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os

import grpc
import pytest
from fuzz_rpcs import RPCS, SPEAKABLE, Rpc, call, requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_fixtures import ServerThread

from syrinx.server.config import ServerConfig
from syrinx.server.scheduler import SchedulerConfig
from syrinx.v1 import synthesizer_pb2 as pb
from syrinx.v1 import synthesizer_pb2_grpc as pb_grpc

EXAMPLES = int(os.environ.get("SYRINX_FUZZ_EXAMPLES", "10"))
RANDOM = os.environ.get("SYRINX_FUZZ_RANDOM") == "1"  # make fuzz: new examples each run
MAX_TEXT = 300
ACCEPTABLE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


class ErrorLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture(scope="module")
def fuzzed():
    # Unpaced (max_ahead_seconds): the fuzz reads as fast as it can and need not wait for real time.
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        max_text_chars=MAX_TEXT,
        scheduler=SchedulerConfig(max_streams=8, max_ahead_seconds=3600.0),
    )
    server = ServerThread(config)
    server.make_ready()
    errors = ErrorLines()
    logging.getLogger().addHandler(errors)
    server.errors = errors
    server.tally = collections.defaultdict(collections.Counter)
    yield server
    logging.getLogger().removeHandler(errors)
    server.stop()
    if RANDOM:
        print(f"\nfuzzed calls by RPC and status ({EXAMPLES} examples each, bodies and concurrency included):")
        for name, codes in sorted(server.tally.items()):
            print(f"  {name:28} " + ", ".join(f"{code} {n}" for code, n in codes.most_common()))


def assert_still_serving(server) -> None:
    reply = health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert not server.errors.lines, server.errors.lines


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
def test_any_request_gets_ok_or_a_clear_client_error(fuzzed, rpc: Rpc):
    @FUZZ
    @given(requests(rpc, max_text=MAX_TEXT + 50))
    def check(messages):
        code, _ = call(fuzzed.channel, rpc, [m.SerializeToString() for m in messages], timeout=120)
        fuzzed.tally[rpc.name][code.name] += 1
        assert code in ACCEPTABLE, (code, messages)

    check()
    assert_still_serving(fuzzed)


@FUZZ
@given(st.sampled_from(RPCS), st.lists(st.binary(max_size=300), min_size=1, max_size=3))
def test_bytes_that_may_not_be_protobuf_get_ok_or_a_clear_client_error(fuzzed, rpc: Rpc, bodies):
    code, _ = call(fuzzed.channel, rpc, bodies, timeout=120)
    fuzzed.tally["(random bytes)"][code.name] += 1
    assert code in ACCEPTABLE, (rpc.name, code, bodies)


def test_the_server_serves_after_random_bodies(fuzzed):
    assert_still_serving(fuzzed)


def _stream_audio(stub, text: str, seed: int) -> bytes:
    responses = stub.StreamSynthesize(pb.StreamSynthesizeRequest(text=text, seed=seed), timeout=120)
    return b"".join(r.audio for r in responses)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(SPEAKABLE), st.integers(0, 2**64 - 1)), min_size=2, max_size=4))
def test_concurrent_streams_each_get_exactly_their_own_audio(fuzzed, requests_):
    stub = pb_grpc.SynthesizerStub(fuzzed.channel)
    with concurrent.futures.ThreadPoolExecutor(len(requests_)) as pool:
        together = list(pool.map(lambda r: _stream_audio(stub, *r), requests_))
    alone = [_stream_audio(stub, *r) for r in requests_]
    fuzzed.tally["(concurrent streams)"]["OK"] += len(requests_)
    assert together == alone
