"""Export: merge LoRA, save the HF folder, ONNX via optimum (encoder + merged decoder, the layout
transformers.js and optimum use), INT8 dynamic quantization (or fp16), and the quality gate."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from . import log

HF_FILES = ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
            "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json"]


class QualityGateFailed(RuntimeError):
    """The quantized model is worse than the spec allows (exit code 3, not retried)."""


def copy_hf_side_files(src: Path, dst: Path) -> None:
    """Tokenizer and processor files that `save_pretrained` of the model alone does not write."""
    for name in HF_FILES:
        if (src / name).is_file() and not (dst / name).exists():
            shutil.copy2(src / name, dst / name)


def export_onnx(model_dir: Path, out_dir: Path) -> dict[str, float]:
    """optimum: task automatic-speech-recognition-with-past, decoders merged into
    decoder_model_merged.onnx (use_cache_branch input). Writes out_dir/onnx/{encoder_model,
    decoder_model_merged}.onnx; returns timings. Input frames = 2 * max_source_positions."""
    import json

    from optimum.exporters.onnx import main_export

    cfg = json.loads((model_dir / "config.json").read_text())
    frames = 2 * int(cfg["max_source_positions"])
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as tmp:
        from .compress import layout_of_config

        if layout_of_config(cfg):
            # a head-pruned model: from_pretrained cannot rebuild its smaller projections, so the
            # model is loaded here (compress.load_whisper) and exported from memory, with export
            # configs whose dummy past key/values have each decoder layer's own head count
            from optimum.exporters.onnx import onnx_export_from_model

            from .compress import load_whisper

            model = load_whisper(model_dir)
            onnx_export_from_model(model=model, output=tmp, task="automatic-speech-recognition-with-past",
                                   opset=None, device="cpu", do_validation=False, nb_max_frames=frames,
                                   custom_onnx_configs=pruned_onnx_configs(model))
        else:
            main_export(
                model_name_or_path=str(model_dir),
                output=tmp,
                task="automatic-speech-recognition-with-past",
                opset=None,
                device="cpu",
                do_validation=False,
                nb_max_frames=frames,
            )
        dst = out_dir / "onnx"
        dst.mkdir(parents=True, exist_ok=True)
        for name in ("encoder_model.onnx", "decoder_model_merged.onnx"):
            shutil.copy2(Path(tmp) / name, dst / name)
    secs = time.time() - t0
    log.info("Exported ONNX", dir=str(out_dir / "onnx"), seconds=secs, frames=frames)
    return {"exportSeconds": secs}


def pruned_onnx_configs(model) -> dict:
    """optimum export configs (encoder_model, decoder_model, decoder_with_past_model) for a head-pruned
    Whisper: optimum's WhisperOnnxConfig with a past-key/value dummy generator that gives decoder layer l
    past tensors of [batch, heads_l, seq, head_dim] (self-attention: layout["decoder"][l], cross:
    layout["cross"][l]) instead of one uniform shape. The graph's past_key_values.* inputs then declare
    those head counts (dim 1 is not a dynamic axis) and the traced decoder runs on matching tensors."""
    from optimum.exporters.onnx.model_configs import WhisperOnnxConfig
    from optimum.utils.input_generators import DummySeq2SeqPastKeyValuesGenerator

    from .compress import head_layout

    lay = head_layout(model)
    hd = int(model.config.d_model) // int(model.config.decoder_attention_heads)

    class PerLayerPastGenerator(DummySeq2SeqPastKeyValuesGenerator):
        def generate(self, input_name: str, framework: str = "pt", int_dtype: str = "int64", float_dtype: str = "fp32"):
            if input_name != "past_key_values":
                return super().generate(input_name, framework, int_dtype, float_dtype)
            t = lambda h, n: self.random_float_tensor((self.batch_size, h, n, hd), framework=framework, dtype=float_dtype)  # noqa: E731
            return [(t(d, self.sequence_length), t(d, self.sequence_length), t(c, self.encoder_sequence_length),
                     t(c, self.encoder_sequence_length)) for d, c in zip(lay["decoder"], lay["cross"])]

    class PrunedWhisperOnnxConfig(WhisperOnnxConfig):
        DUMMY_INPUT_GENERATOR_CLASSES = tuple(PerLayerPastGenerator if c is DummySeq2SeqPastKeyValuesGenerator else c
                                              for c in WhisperOnnxConfig.DUMMY_INPUT_GENERATOR_CLASSES)
        DUMMY_PKV_GENERATOR_CLASS = PerLayerPastGenerator

    base = PrunedWhisperOnnxConfig(model.config, task="automatic-speech-recognition", use_past=True)
    return {"encoder_model": base.with_behavior("encoder"),
            "decoder_model": base.with_behavior("decoder", use_past=True, use_past_in_inputs=False),
            "decoder_with_past_model": base.with_behavior("decoder", use_past=True, use_past_in_inputs=True)}


def _has_conv(path: Path) -> bool:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return any(n.op_type == "Conv" for n in m.graph.node)


def quantize_int8(onnx_dir: Path, per_channel: bool = False, suffix: str = "_quantized") -> list[Path]:
    """Dynamic INT8 quantization of MatMul/Gemm weights (onnxruntime.quantization.quantize_dynamic),
    the recipe transformers.js uses for its q8 files (`*_quantized.onnx`): per-tensor, no reduced
    range, QUInt8 weights for a graph with Conv (the encoder), QInt8 otherwise. Conv layers and the
    token embedding (Gather) are kept in float: they are small and quantizing them costs accuracy.
    EnableSubgraph reaches the MatMuls inside the merged decoder's If branches; MatMulConstBOnly keeps
    activation x activation products (attention scores) in float.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = []
    for name in ("encoder_model", "decoder_model_merged"):
        src = onnx_dir / f"{name}.onnx"
        dst = onnx_dir / f"{name}{suffix}.onnx"
        wt = QuantType.QUInt8 if _has_conv(src) else QuantType.QInt8
        quantize_dynamic(str(src), str(dst), per_channel=per_channel, reduce_range=False, weight_type=wt,
                         op_types_to_quantize=["MatMul", "Gemm"],
                         extra_options={"EnableSubgraph": True, "MatMulConstBOnly": True})
        out.append(dst)
        log.info("Quantized", file=dst.name, weight_type=str(wt), bytes=dst.stat().st_size)
    return out


def convert_fp16(onnx_dir: Path) -> list[Path]:
    """fp16 weights and activations, float32 inputs/outputs (`*_fp16.onnx`), via onnxruntime's
    float16 converter (which also converts the If-branches of the merged decoder)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out = []
    for name in ("encoder_model", "decoder_model_merged"):
        m = onnx.load(str(onnx_dir / f"{name}.onnx"))
        m16 = convert_float_to_float16(m, keep_io_types=True, disable_shape_infer=True)
        dst = onnx_dir / f"{name}_fp16.onnx"
        onnx.save(m16, str(dst))
        out.append(dst)
    return out


def quality_gate(base: dict[str, float], quant: dict[str, float], max_increase: float) -> list[str]:
    """Scenarios whose quantized WER exceeds the float WER by more than max_increase (absolute).

    Both WERs are capped at 1.0 first: insertions make a broken model's WER unbounded (a decoder that
    loops to its length limit scores 3 or 5 on a short sentence), and two broken models would differ by
    an arbitrary amount; a capped WER keeps the gate about what quantization loses."""
    return [s for s in base if s in quant and min(quant[s], 1.0) - min(base[s], 1.0) > max_increase + 1e-12]
