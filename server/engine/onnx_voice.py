"""Read a Piper voice's network (architecture and weights) from its ``.onnx`` file.

Only the file's initializers and node attributes are read; onnxruntime is not
involved. Most initializers are named after their module path
(``dec.ups.0.weight``). Weights that the exporter renamed (``onnx::Conv_8168``,
or the phoneme embedding stored as ``sid``) are mapped through the node that
uses them: a Conv node called ``/flow/flows.6/enc/in_layers.0/Conv`` owns
``flow.flows.6.enc.in_layers.0.weight``. Convolution settings (dilation,
stride, padding) come from the same nodes' attributes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import VoiceLoadError
from .vits.architecture import Architecture, ConvSpec

_MODULE_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)+$")


@dataclass(frozen=True)
class VoiceNetwork:
    architecture: Architecture
    tensors: dict[str, np.ndarray]


def _attributes(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _module_path(node_name: str) -> str | None:
    """``/flow/flows.6/enc/in_layers.0/Conv`` -> ``flow.flows.6.enc.in_layers.0``."""
    parts = [p for p in node_name.split("/") if p]
    if len(parts) < 2:
        return None
    return ".".join(parts[:-1])


def _conv_spec(node, weight: np.ndarray, has_bias: bool, where: str) -> ConvSpec:
    attrs = _attributes(node)
    pads = list(attrs.get("pads", [0, 0]))
    if len(pads) != 2 or pads[0] != pads[1]:
        raise VoiceLoadError(where, f"layer {node.name} has asymmetric padding {pads}, which VITS never uses")
    groups = int(attrs.get("group", 1))
    transposed = node.op_type == "ConvTranspose"
    if transposed:
        in_channels, out_channels = weight.shape[0], weight.shape[1] * groups
    else:
        out_channels, in_channels = weight.shape[0], weight.shape[1] * groups
    return ConvSpec(
        in_channels=int(in_channels),
        out_channels=int(out_channels),
        kernel_size=int(weight.shape[2]),
        stride=int(attrs.get("strides", [1])[0]),
        dilation=int(attrs.get("dilations", [1])[0]),
        padding=int(pads[0]),
        groups=groups,
        transposed=transposed,
        bias=has_bias,
    )


def read_voice_network(path: Path) -> VoiceNetwork:
    import onnx
    from onnx import numpy_helper

    where = str(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise VoiceLoadError(where, "file not found") from None
    except Exception as exc:  # protobuf raises DecodeError and friends on bad bytes
        raise VoiceLoadError(where, f"not a readable ONNX model (truncated or corrupt?): {exc}") from None
    graph = model.graph
    if not graph.node or not graph.initializer:
        raise VoiceLoadError(where, "not a Piper voice: the ONNX graph has no nodes or weights")

    initializers = {t.name: t for t in graph.initializer}
    arrays: dict[str, np.ndarray] = {}

    def array(name: str) -> np.ndarray:
        if name not in arrays:
            arrays[name] = numpy_helper.to_array(initializers[name])
        return arrays[name]

    tensors: dict[str, np.ndarray] = {}
    convs: dict[str, ConvSpec] = {}
    graph_inputs = {i.name for i in graph.input}

    for node in graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            module = _module_path(node.name)
            if module is None or node.input[1] not in initializers:
                continue
            weight = array(node.input[1])
            has_bias = len(node.input) > 2 and node.input[2] in initializers
            convs[module] = _conv_spec(node, weight, has_bias, where)
            tensors[f"{module}.weight"] = weight
            if has_bias:
                tensors[f"{module}.bias"] = array(node.input[2])
        elif node.op_type == "Gather" and node.input[0] in initializers and node.input[1] in graph_inputs:
            # Embedding lookups: phoneme ids -> enc_p.emb, speaker id -> emb_g.
            target = "emb_g.weight" if node.input[1] == "sid" else "enc_p.emb.weight"
            tensors[target] = array(node.input[0])

    for name in initializers:
        if _MODULE_PATH.match(name) and name not in tensors:
            tensors[name] = array(name)

    _recover_duration_affine_scale(graph, initializers, array, tensors)

    conv_params = {f"{m}.{p}" for m in convs for p in ("weight", "bias")}
    shapes = {name: tuple(int(d) for d in t.shape) for name, t in tensors.items() if name not in conv_params}
    return VoiceNetwork(architecture=Architecture(convs=convs, shapes=shapes), tensors=tensors)


def _recover_duration_affine_scale(graph, initializers, array, tensors) -> None:
    """Exporters fold ``exp(-dp.flows.0.logs)`` into a constant; turn it back into ``logs``."""
    if "dp.flows.0.logs" in tensors or "dp.flows.0.m" not in tensors:
        return
    for node in graph.node:
        if node.op_type == "Mul" and node.name.startswith("/dp/flows.0/"):
            constants = [i for i in node.input if i in initializers and i != "dp.flows.0.m"]
            if constants:
                scale = array(constants[0]).astype(np.float64)
                tensors["dp.flows.0.logs"] = (-np.log(scale)).astype(np.float32)
                return
    # Without the scale the flow cannot be inverted; let the model report the gap.


__all__ = ["VoiceNetwork", "read_voice_network"]
