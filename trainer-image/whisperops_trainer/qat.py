"""Quantization-aware training (spec.compression.quantizationAware) and the static INT8 QDQ export.

Training side (torch.ao.quantization fake-quant modules): every projection of the encoder and decoder
layers (self-/cross-attention q/k/v/out_proj, fc1, fc2 — the MatMuls the ONNX INT8 graphs quantize)
gets
- a weight FakeQuantize, int8 per output channel, symmetric (a parametrization of `weight`: the layer
  trains on the rounded weights, gradients pass straight through), re-observed every step;
- an input FakeQuantize, uint8 per tensor, affine (a forward pre-hook), whose range is calibrated on
  `calibrationSamples` training utterances before training (MinMax, fake quantization off) and then
  fixed: the model learns to live with exactly the activation grid the exported graph uses.
`finish()` removes both (the fp32 weights stay) and returns the activation scales and zero points.

Export side (`write_static_qdq`): the exported fp32 ONNX graphs are rewritten into a static INT8 QDQ
model — each matched MatMul's constant weight becomes an int8 initializer (the same per-channel
symmetric grid the training used) behind a DequantizeLinear, and its activation input goes through
QuantizeLinear → DequantizeLinear with the fixed QAT scale and zero point. The rewrite walks the If
branches of optimum's merged decoder directly (onnxruntime's quantize_static does not reach them); no
calibration pass over the ONNX graphs is needed because the scales come from training. onnxruntime
fuses DQ → MatMul with the weight DQ into integer MatMuls when it loads the model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

PARAMS_FILE = "qat_activation_ranges.json"

# module names of the quantized projections (HF Whisper layout)
_MODULE = re.compile(r"^model\.(encoder|decoder)\.layers\.\d+\.((self_attn|encoder_attn)\.(q_proj|k_proj|v_proj|out_proj)|fc1|fc2)$")
# the matching ONNX MatMul node names (optimum export: the encoder graph has no "/model/encoder" prefix)
_NODE = re.compile(r"^(?:/model/(encoder|decoder))?/layers\.(\d+)/((?:self_attn|encoder_attn)/(?:q_proj|k_proj|v_proj|out_proj)|fc1|fc2)/MatMul$")


def quantized_linears(model) -> list[tuple[str, Any]]:
    """(name, nn.Linear) of every projection QAT quantizes, in module order."""
    import torch

    return [(n, m) for n, m in model.named_modules() if _MODULE.match(n) and isinstance(m, torch.nn.Linear)]


def _weight_fq():
    import torch
    from torch.ao.quantization import FakeQuantize, MovingAveragePerChannelMinMaxObserver

    # averaging_constant 1: the range of the current weights (they change every step)
    return FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127, dtype=torch.qint8,
                        qscheme=torch.per_channel_symmetric, ch_axis=0, averaging_constant=1.0)


def _act_fq():
    import torch
    from torch.ao.quantization import FakeQuantize, MinMaxObserver

    return FakeQuantize(observer=MinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
                        qscheme=torch.per_tensor_affine)


def _pre_hook(mod, args):
    return (mod.input_fake_quant(args[0]),) + tuple(args[1:])


def prepare(model) -> int:
    """Insert the fake-quant modules (weights: parametrization; inputs: pre-hook), fake quantization
    off and observers on (calibration mode). Returns the number of quantized linears."""
    from torch.nn.utils import parametrize

    lins = quantized_linears(model)
    if not lins:
        raise ValueError("no quantizable projections found (is the model a WhisperForConditionalGeneration?)")
    for _, lin in lins:
        parametrize.register_parametrization(lin, "weight", _weight_fq())
        lin.input_fake_quant = _act_fq()
        lin._qat_hook = lin.register_forward_pre_hook(_pre_hook)
    set_mode(model, calibrating=True)
    return len(lins)


def fake_quants(model) -> list[Any]:
    from torch.ao.quantization import FakeQuantize

    return [m for m in model.modules() if isinstance(m, FakeQuantize)]


def set_mode(model, calibrating: bool) -> None:
    """Calibration: fp32 forward, activation observers record ranges. Training: weights and inputs
    fake-quantized, activation ranges frozen, weight ranges re-observed every step."""
    for _, lin in quantized_linears(model):
        act = lin.input_fake_quant
        wfq = lin.parametrizations.weight[0]
        if calibrating:
            act.enable_observer(), act.disable_fake_quant()
            wfq.enable_observer(), wfq.disable_fake_quant()
        else:
            act.disable_observer(), act.enable_fake_quant()
            wfq.enable_observer(), wfq.enable_fake_quant()


def calibrate(model, batches) -> int:
    """Run batches (dicts of model inputs) through the model in calibration mode; returns the count."""
    import torch

    set_mode(model, calibrating=True)
    was_training = model.training
    model.eval()
    n = 0
    with torch.no_grad():
        for b in batches:
            model(**b)
            n += 1
    model.train(was_training)
    set_mode(model, calibrating=False)
    return n


def activation_params(model) -> dict[str, dict[str, float | int]]:
    """{module name: {scale, zeroPoint}} of every calibrated input fake-quant."""
    out = {}
    for name, lin in quantized_linears(model):
        s, z = lin.input_fake_quant.calculate_qparams()
        out[name] = {"scale": float(s.reshape(-1)[0]), "zeroPoint": int(z.reshape(-1)[0])}
    return out


def finish(model) -> dict[str, dict[str, float | int]]:
    """Remove every fake-quant module (the fp32 weights stay); return the activation parameters."""
    from torch.nn.utils import parametrize

    params = activation_params(model)
    for _, lin in quantized_linears(model):
        parametrize.remove_parametrizations(lin, "weight", leave_parametrized=False)
        lin._qat_hook.remove()
        del lin._qat_hook
        del lin.input_fake_quant
    return params


def save_params(out_dir: Path, params: dict[str, Any]) -> Path:
    p = Path(out_dir) / PARAMS_FILE
    p.write_text(json.dumps({"activation": "uint8 per tensor, affine, calibrated then fixed",
                             "weight": "int8 per output channel, symmetric (scale = max|w| / 127.5)",
                             "inputs": params}, indent=1))
    return p


def load_params(model_dir: Path) -> dict[str, dict[str, Any]]:
    return json.loads((Path(model_dir) / PARAMS_FILE).read_text())["inputs"]


# --- static INT8 QDQ export -----------------------------------------------------------------------

def weight_qparams(w):
    """(int8 weights, per-channel scales) of a MatMul weight w (in × out, channel = column), the grid of
    torch's per_channel_symmetric qint8 FakeQuantize: scale = max|w| / 127.5, zero point 0."""
    import numpy as np

    amax = np.abs(w).max(axis=0).astype(np.float32)
    scale = np.maximum(amax / np.float32(127.5), np.float32(np.finfo(np.float32).eps)).astype(np.float32)
    # torch's fake quantization multiplies by the reciprocal (fake_quantize_per_channel_affine)
    q = np.clip(np.round(w.astype(np.float32) * (np.float32(1) / scale)), -128, 127).astype(np.int8)
    return q, scale


def node_module(node_name: str, side: str) -> str | None:
    """The torch module a MatMul node of the optimum export computes, or None."""
    m = _NODE.match(node_name)
    if not m:
        return None
    return f"model.{m.group(1) or side}.layers.{m.group(2)}.{m.group(3).replace('/', '.')}"


def write_static_qdq(src: Path, dst: Path, side: str, act: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Rewrite the fp32 graph src (side: encoder|decoder) into a static INT8 QDQ graph dst (see the
    module doc). Returns {"matmuls": quantized MatMuls, "weights": int8 initializers}."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    main = model.graph
    inits = {i.name: i for i in main.initializer}
    new_inits: dict[str, Any] = {}
    counts = {"matmuls": 0, "weights": 0}

    def const(name, arr):
        if name not in new_inits:
            new_inits[name] = numpy_helper.from_array(arr, name)
        return name

    def rewrite(g, tag: str):
        nodes = []
        for node in g.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    rewrite(a.g, f"{tag}/{node.name}.{a.name}")
            mod = node_module(node.name, side) if node.op_type == "MatMul" else None
            if mod is None or mod not in act or node.input[1] not in inits:
                nodes.append(node)
                continue
            wname = node.input[1]
            if wname + "_quantized" not in new_inits:
                q, s = weight_qparams(numpy_helper.to_array(inits[wname]))
                const(wname + "_quantized", q)
                const(wname + "_scale", s)
                const(wname + "_zero_point", np.zeros_like(q[0]))
                counts["weights"] += 1
            a = act[mod]
            sname = const(f"qat/{mod}/input_scale", np.array(a["scale"], dtype=np.float32))
            zname = const(f"qat/{mod}/input_zero_point", np.array(a["zeroPoint"], dtype=np.uint8))
            base = node.name[:-len("/MatMul")]
            xq, xdq, wdq = f"{base}/input_q", f"{base}/input_dq", f"{base}/weight_dq"
            nodes.append(helper.make_node("QuantizeLinear", [node.input[0], sname, zname], [xq], name=xq))
            nodes.append(helper.make_node("DequantizeLinear", [xq, sname, zname], [xdq], name=xdq))
            nodes.append(helper.make_node("DequantizeLinear", [wname + "_quantized", wname + "_scale", wname + "_zero_point"],
                                          [wdq], name=wdq, axis=1))
            nodes.append(helper.make_node("MatMul", [xdq, wdq], list(node.output), name=node.name))
            counts["matmuls"] += 1
        del g.node[:]
        g.node.extend(nodes)

    rewrite(main, "")
    used: set[str] = set()

    def collect(g):
        for n in g.node:
            used.update(n.input)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    collect(a.g)
        used.update(o.name for o in g.output)

    collect(main)
    keep = [i for i in main.initializer if i.name in used]
    del main.initializer[:]
    main.initializer.extend(keep + list(new_inits.values()))
    onnx.save(model, str(dst))
    return counts


def export_static_int8(onnx_dir: Path, act: dict[str, dict[str, Any]]) -> list[Path]:
    """onnx/{encoder_model,decoder_model_merged}_quantized.onnx as static INT8 QDQ from the fp32 graphs."""
    from . import log

    out = []
    for name, side in (("encoder_model", "encoder"), ("decoder_model_merged", "decoder")):
        dst = onnx_dir / f"{name}_quantized.onnx"
        counts = write_static_qdq(onnx_dir / f"{name}.onnx", dst, side, act)
        if counts["matmuls"] == 0:
            raise ValueError(f"static INT8: no MatMul of {name}.onnx matched the QAT modules")
        log.info("Static INT8 (QDQ)", file=dst.name, bytes=dst.stat().st_size, **counts)
        out.append(dst)
    return out
