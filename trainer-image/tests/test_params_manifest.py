import json

import pytest

from whisperops_trainer import manifest, params
from whisperops_trainer.train import TrainConfig, apply_method


def test_whisper_large_v2_lora_counts_on_meta_device():
    r16 = params.lora_on_meta(params.whisper_large_v2_config(), 16, 32, ["q_proj", "v_proj"])
    # q_proj and v_proj of encoder self-attention, decoder self- and cross-attention: 3 x 32 x 2 = 192
    assert r16["adaptedModules"] == 192
    assert r16["trainable"] == 192 * 16 * (1280 + 1280) == 7_864_320  # not the "about 3 M" of a guide
    assert r16["baseTotal"] == 1_543_304_960
    r32 = params.lora_on_meta(params.whisper_large_v2_config(), 32, 64, ["q_proj", "v_proj"])
    assert (r32["trainable"], r32["total"]) == (15_728_640, 1_559_033_600)  # peft's int8-asr guide


@pytest.mark.parametrize("method,trainable", [("lora", 196_608), ("freezeEncoder", 4_503_040), ("full", 7_920_128)])  # full: all but the fixed sinusoidal encoder positions
def test_methods_train_the_right_parameters(model_dir, method, trainable):
    from transformers import WhisperForConditionalGeneration

    m = apply_method(WhisperForConditionalGeneration.from_pretrained(str(model_dir)), TrainConfig(method=method))
    t, total = params.count(m)
    assert t == trainable
    assert total == 8_048_128 + (196_608 if method == "lora" else 0)  # tied embedding counted once


def test_manifest_hashes_every_file_and_detects_tampering(tmp_path):
    (tmp_path / "onnx").mkdir()
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "onnx" / "encoder_model.onnx").write_bytes(b"enc")
    sha = manifest.write_manifest(tmp_path, name="m", version="v2", parent_version="v1", quantization="none",
                                  metrics={"wer": {"finance": 0.1}})
    doc = json.loads((tmp_path / manifest.MANIFEST).read_text())
    assert set(doc["files"]) == {"config.json", "onnx/encoder_model.onnx"}
    assert doc["onnx"] == {"encoder": "onnx/encoder_model.onnx"} and doc["parentVersion"] == "v1"
    assert sha == manifest.sha256_file(tmp_path / manifest.MANIFEST)
    assert manifest.verify(tmp_path) == []
    (tmp_path / "onnx" / "encoder_model.onnx").write_bytes(b"evil")
    assert manifest.verify(tmp_path) == ["onnx/encoder_model.onnx"]


def test_committed_base_model_matches_its_manifest(model_dir):
    doc = json.loads((model_dir / manifest.MANIFEST).read_text())
    assert doc["version"] == "tiny-whisper-synth-1.0.0" and doc["parentVersion"] is None
    assert doc["quantization"] == "int8"
    assert {"encoder", "decoder", "encoderQuantized", "decoderQuantized"} <= set(doc["onnx"])
    assert {"finance", "medical", "general"} <= set(doc["metrics"]["wer"])
    assert manifest.verify(model_dir) == []


def test_wise_ft_interpolation_is_linear_in_the_weights(model_dir, tmp_path):
    import torch
    from transformers import WhisperForConditionalGeneration

    from whisperops_trainer.export import copy_hf_side_files
    from whisperops_trainer.train import interpolate

    base = WhisperForConditionalGeneration.from_pretrained(str(model_dir))
    tuned = WhisperForConditionalGeneration.from_pretrained(str(model_dir))
    with torch.no_grad():
        tuned.model.decoder.layers[0].fc1.weight.add_(1.0)
    (tmp_path / "tuned").mkdir()
    tuned.save_pretrained(str(tmp_path / "tuned"))
    copy_hf_side_files(model_dir, tmp_path / "tuned")
    for alpha in (0.0, 0.6, 1.0):
        interpolate(str(model_dir), str(tmp_path / "tuned"), alpha, str(tmp_path / f"w{alpha}"))
        m = WhisperForConditionalGeneration.from_pretrained(str(tmp_path / f"w{alpha}"))
        diff = m.model.decoder.layers[0].fc1.weight - base.model.decoder.layers[0].fc1.weight
        assert torch.allclose(diff, torch.full_like(diff, alpha), atol=1e-5)
        assert torch.equal(m.model.encoder.conv1.weight, base.model.encoder.conv1.weight)
        assert (tmp_path / f"w{alpha}" / "tokenizer.json").is_file()
