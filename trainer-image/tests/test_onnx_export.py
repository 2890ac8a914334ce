"""The ONNX graphs (committed embedded model, and a fresh export by the exporter) transcribe like
PyTorch's generate; the merged decoder has optimum's interface; INT8 is smaller and gated."""

import shutil

import numpy as np
import onnxruntime as ort
import pytest

from whisperops_trainer import evaluate, export
from whisperops_trainer.onnx_infer import OnnxWhisper, transcribe


@pytest.fixture(scope="module")
def feats(model_dir, finance_eval):
    return evaluate.features_for(str(model_dir), finance_eval[:8])


@pytest.fixture(scope="module")
def torch_hyps(model_dir, tokenizer, feats):
    from transformers import WhisperForConditionalGeneration

    m = WhisperForConditionalGeneration.from_pretrained(str(model_dir))
    return evaluate.transcribe_torch(m, tokenizer, feats, batch_size=8)


def test_committed_fp32_onnx_transcribes_like_pytorch(model_dir, tokenizer, feats, torch_hyps):
    onnx_hyps = transcribe(model_dir, feats, tokenizer, batch_size=4)
    assert all(h.strip() for h in torch_hyps)
    assert onnx_hyps == torch_hyps


def test_committed_int8_onnx_is_close_to_fp32(model_dir, tokenizer, feats, finance_eval, torch_hyps):
    q = transcribe(model_dir, feats, tokenizer, suffix="_quantized")
    refs = [s.text for s in finance_eval[:8]]
    assert evaluate.score(refs, q).wer <= evaluate.score(refs, torch_hyps).wer + 0.05


def test_merged_decoder_has_optimums_interface(model_dir):
    s = ort.InferenceSession(str(model_dir / "onnx" / "decoder_model_merged.onnx"), providers=["CPUExecutionProvider"])
    ins = {i.name: i for i in s.get_inputs()}
    outs = [o.name for o in s.get_outputs()]
    assert {"input_ids", "encoder_hidden_states", "use_cache_branch"} <= set(ins)
    assert ins["use_cache_branch"].type == "tensor(bool)"
    for layer in range(4):
        for kind in ("decoder", "encoder"):
            for kv in ("key", "value"):
                assert f"past_key_values.{layer}.{kind}.{kv}" in ins
                assert f"present.{layer}.{kind}.{kv}" in outs
    assert outs[0] == "logits"
    enc = ort.InferenceSession(str(model_dir / "onnx" / "encoder_model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in enc.get_inputs()] == ["input_features"]
    assert enc.get_inputs()[0].shape[1:] == [80, 1000]


def test_exporter_writes_the_layout_and_int8_is_smaller(model_dir, tmp_path, tokenizer, feats, torch_hyps):
    d = tmp_path / "m"
    shutil.copytree(model_dir, d, ignore=shutil.ignore_patterns("onnx", "model-manifest.json"))
    export.export_onnx(d, d)
    export.quantize_int8(d / "onnx")
    names = sorted(p.name for p in (d / "onnx").iterdir())
    assert names == ["decoder_model_merged.onnx", "decoder_model_merged_quantized.onnx", "encoder_model.onnx",
                     "encoder_model_quantized.onnx"]
    for base in ("encoder_model", "decoder_model_merged"):
        fp32 = (d / "onnx" / f"{base}.onnx").stat().st_size
        q = (d / "onnx" / f"{base}_quantized.onnx").stat().st_size
        assert q < 0.45 * fp32
    assert transcribe(d, feats[:4], tokenizer) == torch_hyps[:4]


def test_onnx_decoding_stops_at_eos_and_respects_max_length(model_dir):
    m = OnnxWhisper(model_dir)
    silence = np.full((2, 80, 1000), -0.5, dtype=np.float32)
    toks = m.generate(silence)
    assert all(0 not in t and len(t) <= m.max_length - len(m.prompt) for t in toks)


@pytest.mark.parametrize("base,quant,limit,failed", [
    ({"finance": 0.10, "general": 0.20}, {"finance": 0.11, "general": 0.20}, 0.02, []),
    ({"finance": 0.10, "general": 0.20}, {"finance": 0.13, "general": 0.20}, 0.02, ["finance"]),
    ({"finance": 0.10}, {"finance": 0.12}, 0.02, []),
    ({"finance": 0.10}, {"finance": 0.09}, 0.0, []),
    # WERs capped at 1.0: two broken models differ by nothing the gate is about...
    ({"medical": 1.5}, {"medical": 3.0}, 0.05, []),
    ({"medical": 0.7}, {"medical": 1.9}, 1.0, []),
    # ...while a quantized model that breaks a working one still fails.
    ({"medical": 0.3}, {"medical": 1.8}, 0.05, ["medical"]),
    ({"medical": 0.3}, {"medical": 1.8}, 0.69, ["medical"]),
])
def test_quality_gate(base, quant, limit, failed):
    assert export.quality_gate(base, quant, limit) == failed
