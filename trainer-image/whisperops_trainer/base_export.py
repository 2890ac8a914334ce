"""Export the embedded base model (models/tiny-whisper-synth) to ONNX fp32 + INT8, verify that the
ONNX graphs transcribe like PyTorch, measure WER per scenario and write model-manifest.json."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import evaluate, export, log, manifest, suites
from .onnx_infer import OnnxWhisper, texts_equal, transcribe


def run(model_dir: Path, version: str, n_per_scenario: int, scenarios: list[str], check_n: int = 24) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer, WhisperForConditionalGeneration

    log.set_stage("export")
    export.export_onnx(model_dir, model_dir)
    export.quantize_int8(model_dir / "onnx")

    log.set_stage("evaluate")
    samples = []
    for s in scenarios:
        samples += suites.eval_set(s, n_per_scenario)
    feats = evaluate.features_for(str(model_dir), samples)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration.from_pretrained(str(model_dir))
    t0 = time.time()
    pt_hyps = evaluate.transcribe_torch(model, tok, feats, batch_size=16)
    pt_secs = time.time() - t0
    results: dict[str, Any] = {"torch": {"seconds": pt_secs}}
    hyps: dict[str, list[str]] = {"torch": pt_hyps}
    for label, suffix in (("onnx-fp32", ""), ("onnx-int8", "_quantized")):
        sess = OnnxWhisper(model_dir, suffix)
        t0 = time.time()
        hyps[label] = transcribe(model_dir, feats, tok, batch_size=16, session=sess)
        results[label] = {"seconds": time.time() - t0}
    for label, h in hyps.items():
        results[label]["scores"] = {k: v.to_json() for k, v in evaluate.score_by_scenario(samples, h).items()}
    diff = texts_equal(pt_hyps, hyps["onnx-fp32"])
    results["mismatchTorchVsOnnxFp32"] = len(diff)
    results["mismatchExamples"] = [(pt_hyps[i], hyps["onnx-fp32"][i]) for i in diff[:5]]
    results["n"] = len(samples)
    log.info("ONNX vs PyTorch transcripts", n=len(samples), mismatches=len(diff))

    sizes = {p.name: p.stat().st_size for p in sorted((model_dir / "onnx").glob("*.onnx"))}
    metrics = {
        "wer": {k: v["wer"] for k, v in results["onnx-fp32"]["scores"].items()},
        "cer": {k: v["cer"] for k, v in results["onnx-fp32"]["scores"].items()},
        "werQuantized": {k: v["wer"] for k, v in results["onnx-int8"]["scores"].items()},
        "cerQuantized": {k: v["cer"] for k, v in results["onnx-int8"]["scores"].items()},
        "evaluation": {
            "utterancesPerScenario": {k: v["n"] for k, v in results["onnx-fp32"]["scores"].items()},
            "decoding": "greedy, prompt <|startoftranscript|><|en|><|transcribe|><|notimestamps|>",
            "normalization": "whisperops-basic-v1 (lower-case, a-z0-9 and inner apostrophes, single spaces)",
            "data": "espeak-ng 1.51, training voices with random variants, 130-200 wpm, pitch 25-75; "
                    "held-out sentences of the domain corpora (split by sentence) and of the general corpus",
        },
    }
    sha = manifest.write_manifest(model_dir, name=model_dir.name, version=version, parent_version=None,
                                  quantization="int8", metrics=metrics,
                                  extra={"onnxBytes": sizes, "exporter": "optimum-onnx 0.1.0 (optimum 2.1.0)"})
    results["manifestSha256"] = sha
    results["sizes"] = sizes
    return results
