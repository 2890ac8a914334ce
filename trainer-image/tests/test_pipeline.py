"""The operator contract end to end: job file -> JSON-line logs -> artifact at output.uri ->
result JSON (<= 4 KiB) -> exit code. Includes the short CPU fine-tune on finance speech."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from whisperops_trainer import manifest, pipeline
from whisperops_trainer.export import QualityGateFailed

PKG = Path(__file__).resolve().parents[1]


def _job(tmp_path, shared_data, model_dir, **spec_over):
    spec = {
        "baseModel": {"uri": f"file://{model_dir}", "version": "tiny-whisper-synth-1.0.0"},
        "dataset": {
            "scenario": "finance",
            "synthesize": {"corpusUri": f"file://{shared_data}/domain/finance_corpus.txt", "scenario": "finance",
                           "maxUtterances": 64},
            "selection": {"referenceUri": f"file://{shared_data}/domain/finance_terms.txt", "topK": 600},
            "replay": {"uri": f"file://{shared_data}/general/general_corpus.txt", "fraction": 0.2},
        },
        "method": {"type": "freezeEncoder"},
        "training": {"learningRate": 0.0003, "batchSize": 8, "maxSteps": 10, "seed": 42},
        "export": {"onnx": True, "quantization": "int8", "maxWerIncrease": 0.1},
        "output": {"uri": f"file://{tmp_path}/out/finance-ft"},
    }
    spec.update(spec_over)
    job = {"apiVersion": "whisperops.dev/v1alpha1", "kind": "FineTuneJob",
           "metadata": {"name": "finance-ft", "namespace": "speech", "uid": "0f1e2d3c-aaaa-bbbb-cccc-000000000000",
                        "generation": 1},
           "spec": spec}
    f = tmp_path / "finetunejob.json"
    f.write_text(json.dumps(job))
    return f


def _run_cli(job_file, tmp_path, extra_env=None):
    env = dict(os.environ, WHISPEROPS_JOB_FILE=str(job_file), WHISPEROPS_RESULT_FILE=str(tmp_path / "termination-log"),
               WHISPEROPS_WORK_DIR=str(tmp_path / "work"), WHISPEROPS_EVAL_MAX="16", PYTHONPATH=str(PKG))
    env.update(extra_env or {})
    p = subprocess.run([sys.executable, "-m", "whisperops_trainer", "run"], capture_output=True, text=True, env=env,
                       timeout=900)
    logs = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    return p, logs


def test_short_cpu_finetune_on_finance_lowers_finance_wer(tmp_path, shared_data, model_dir):
    p, logs = _run_cli(_job(tmp_path, shared_data, model_dir), tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    # every stdout line is a JSON log record
    assert all(ln.startswith("{") for ln in p.stdout.splitlines() if ln.strip())
    assert all({"ts", "level", "msg", "stage"} <= set(r) for r in logs)
    assert any(r["msg"] == "Training" and "loss" in r and "step" in r for r in logs)
    raw = (tmp_path / "termination-log").read_bytes()
    assert len(raw) <= 4096
    res = json.loads(raw)
    assert set(res) == {"modelUri", "version", "sha256", "parentVersion", "wer", "baseWer", "trainableParams",
                        "totalParams", "quantization", "durationSeconds"}
    assert res["wer"]["finance"] < res["baseWer"]["finance"]
    assert res["wer"]["general"] <= res["baseWer"]["general"] + 0.10
    assert res["parentVersion"] == "tiny-whisper-synth-1.0.0" and res["version"] == "finance-ft-0f1e2d3c"
    assert res["quantization"] == "int8" and res["trainableParams"] == 4_503_040
    out = Path(res["modelUri"].removeprefix("file://"))
    assert out == tmp_path / "out" / "finance-ft"
    for f in ("config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
              "tokenizer_config.json", "model.safetensors", "onnx/encoder_model.onnx",
              "onnx/decoder_model_merged.onnx", "onnx/encoder_model_quantized.onnx",
              "onnx/decoder_model_merged_quantized.onnx"):
        assert (out / f).is_file(), f
    assert manifest.sha256_file(out / manifest.MANIFEST) == res["sha256"]
    assert manifest.verify(out) == []
    doc = json.loads((out / manifest.MANIFEST).read_text())
    assert doc["parentVersion"] == "tiny-whisper-synth-1.0.0" and doc["metrics"]["wer"] == res["wer"]
    assert set(doc["metrics"]["werQuantized"]) == {"finance", "general"}


def test_invalid_spec_exits_2_with_a_reason(tmp_path, shared_data, model_dir):
    job = _job(tmp_path, shared_data, model_dir, method={"type": "qlora"})
    p, logs = _run_cli(job, tmp_path)
    assert p.returncode == 2
    assert json.loads((tmp_path / "termination-log").read_text())["error"]["reason"] == "InvalidInput"
    assert any(r["level"] == "error" and "qlora" in r["error"] for r in logs)


def test_missing_dataset_exits_2(tmp_path, shared_data, model_dir):
    job = _job(tmp_path, shared_data, model_dir, dataset={"scenario": "finance", "uri": f"file://{tmp_path}/none.jsonl"})
    p, _ = _run_cli(job, tmp_path)
    assert p.returncode == 2
    assert "not found" in json.loads((tmp_path / "termination-log").read_text())["error"]["message"]


def test_base_model_sha_mismatch_exits_2(tmp_path, shared_data, model_dir):
    job = _job(tmp_path, shared_data, model_dir,
               baseModel={"uri": f"file://{model_dir}", "sha256": "0" * 64})
    p, _ = _run_cli(job, tmp_path)
    assert p.returncode == 2
    assert "sha256" in json.loads((tmp_path / "termination-log").read_text())["error"]["message"]


@pytest.mark.parametrize("exc,code,reason", [
    (QualityGateFailed("int8 WER +0.05"), 3, "QualityGateFailed"),
    (RuntimeError("CUDA out of memory"), 1, "Error"),
])
def test_failures_map_to_exit_codes(tmp_path, shared_data, model_dir, monkeypatch, exc, code, reason):
    def boom(job):
        raise exc

    monkeypatch.setattr(pipeline, "run_job", boom)
    monkeypatch.setenv("WHISPEROPS_RESULT_FILE", str(tmp_path / "r"))
    assert pipeline.run(str(_job(tmp_path, shared_data, model_dir))) == code
    assert json.loads((tmp_path / "r").read_text())["error"]["reason"] == reason
