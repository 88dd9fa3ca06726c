"""The real nvidia-riva-client against a Syrinx server: run by tests/test_riva.py in .venv-riva.

nvidia-riva-client pins its own protobuf, so it lives in a venv of its own (`make install`);
this script is that venv's side. ``python riva_client.py COMMAND ADDRESS JSON`` prints one JSON
object: what the client got (audio in base64), or the gRPC error it raised.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import sys
import threading
import time

import grpc
import riva.client
from google.protobuf import descriptor_pb2, json_format
from riva.client.proto import riva_audio_pb2, riva_common_pb2, riva_tts_pb2, riva_tts_pb2_grpc

# What Pipecat and NVIDIA's cloud clients send (a key may repeat); Syrinx accepts it and never requires it.
METADATA = [
    ["function-id", "0149dedb-2be8-4195-b9a0-e57e0e14f972"],
    ["authorization", "Bearer None"],
    ["authorization", "Bearer nvapi-placeholder"],
]


def describe(_: str, __: dict) -> dict:
    """The three files' descriptors, as FileDescriptorProto JSON (names, numbers, types)."""
    out = {}
    for module in (riva_audio_pb2, riva_common_pb2, riva_tts_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        out[proto.package + ":" + proto.name.rsplit("/", 1)[-1]] = json_format.MessageToDict(proto)
    return out


def _service(address: str) -> riva.client.SpeechSynthesisService:
    """Plaintext, or what the caller set: RIVA_TEST_ROOT_CERT (TLS), RIVA_TEST_CLIENT_CERT and
    RIVA_TEST_CLIENT_KEY (mTLS), RIVA_TEST_TOKEN (sent after the placeholders, as Pipecat's api_key is)."""
    env = os.environ
    token = env.get("RIVA_TEST_TOKEN")
    auth = riva.client.Auth(
        uri=address,
        use_ssl="RIVA_TEST_ROOT_CERT" in env,
        ssl_root_cert=env.get("RIVA_TEST_ROOT_CERT"),
        ssl_client_cert=env.get("RIVA_TEST_CLIENT_CERT"),
        ssl_client_key=env.get("RIVA_TEST_CLIENT_KEY"),
        metadata_args=METADATA + ([["authorization", f"Bearer {token}"]] if token else []),
    )
    return riva.client.SpeechSynthesisService(auth)


def _response(response) -> dict:
    return {
        "audio": base64.b64encode(response.audio).decode(),
        "words": [[w.word, w.start_time, w.end_time] for w in response.meta.words],
    }


def synthesize(address: str, args: dict) -> dict:
    return {"responses": [_response(_service(address).synthesize(**args))]}


def online(address: str, args: dict) -> dict:
    """synthesize_online with a string or a list (the client's own helper)."""
    started = time.perf_counter()
    out = []
    for response in _service(address).synthesize_online(**args):
        out.append({**_response(response), "at": time.perf_counter() - started})
    return {"responses": out}


def stitched(address: str, args: dict) -> dict:
    """Pipecat's stitched mode: requests fed one at a time from a queue to the stub's SynthesizeOnline.
    The second request is sent only after the first audio has arrived."""
    texts = args.pop("texts")
    cancel_after_first = args.pop("cancel_after_first", False)
    channel = grpc.insecure_channel(address)
    stub = riva_tts_pb2_grpc.RivaSpeechSynthesisStub(channel)
    requests: queue.Queue = queue.Queue()

    def feed():
        while (request := requests.get()) is not None:
            yield request

    def request(text: str) -> riva_tts_pb2.SynthesizeSpeechRequest:
        return riva_tts_pb2.SynthesizeSpeechRequest(
            text=text, language_code="en-US", encoding=riva_audio_pb2.LINEAR_PCM, **args
        )

    requests.put(request(texts[0]))
    call = stub.SynthesizeOnline(feed(), metadata=METADATA)
    responses, second_sent_after_audio = [], None
    for response in call:
        responses.append(_response(response))
        if cancel_after_first:
            call.cancel()
            break
        if second_sent_after_audio is None:
            second_sent_after_audio = True
            for text in texts[1:]:
                requests.put(request(text))
            requests.put(None)
    threading.Event().wait(0.1)
    return {"responses": responses, "second_sent_after_audio": second_sent_after_audio}


def config(address: str, args: dict) -> dict:
    response = _service(address).stub.GetRivaSynthesisConfig(
        riva_tts_pb2.RivaSynthesisConfigRequest(**args), metadata=METADATA
    )
    return {"configs": [{"model_name": c.model_name, "parameters": dict(c.parameters)} for c in response.model_config]}


COMMANDS = {f.__name__: f for f in (describe, synthesize, online, stitched, config)}


def main() -> None:
    command, address, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if "encoding" in args:
        args["encoding"] = riva_audio_pb2.AudioEncoding.Value(args["encoding"])
    try:
        result = COMMANDS[command](address, args)
    except grpc.RpcError as error:
        result = {"code": error.code().name, "details": error.details()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
