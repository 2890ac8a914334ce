"""Quantization-aware training side by side in one run, on the embedded model: the same fine-tune
(full, synthesized general speech) trained twice by the real `run` command — plainly and with
spec.compression.quantizationAware — then measured on the same held-out speech (sentences never
trained on): WER per scenario of
  - plain fine-tune: ONNX fp32, post-training dynamic INT8 (the trainer's *_quantized.onnx), post-training
    *static* INT8 (the QAT module's QDQ writer with activation ranges calibrated on 32 general training sentences
    (not in the jobs' corpus),
    no fake-quant training: what QAT adds over calibration alone);
  - QAT fine-tune: ONNX fp32 (its own weights), the published static INT8 (QDQ), and post-training dynamic
    INT8 of the same fp32 weights;
plus ONNX sizes, CPU ms per utterance at batch 1 (greedy ONNX loop, interleaved), and whether transcripts
depend on the batch (each set decoded at batch 1 and at batch 8, transcripts compared).

  python bench/bench_qat.py [--utterances 240] [--epochs 2] [--n 40] [--seed 42] [--out results/qat-cpu.json]
  python bench/bench_qat.py --reuse /tmp/bench-qat-XXXX --n 200   # the same six models, more held-out speech

--reuse takes an earlier run's work directory (printed at its start) and measures its models again, without
training: a larger --n gives the comparison more words than one run's training budget allowed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "bench"))

from jobrun import BASE, BASE_REF, run_job  # noqa: E402
from whisperops_trainer import evaluate, qat, suites, synth  # noqa: E402
from whisperops_trainer.export import quantize_int8  # noqa: E402
from whisperops_trainer.onnx_infer import OnnxWhisper  # noqa: E402


def train(name: str, compression: dict, lr: float, a, work: Path, corpus: Path) -> tuple[Path, dict, float]:
    """One `run` job: full fine-tune of the embedded model on `corpus` (general sentences that are not in
    the evaluation sets), the gate opened (the bench measures the losses itself)."""
    spec = {
        "baseModel": BASE_REF,
        "dataset": {"scenario": "general",
                    "synthesize": {"corpusUri": f"file://{corpus}", "scenario": "general", "maxUtterances": a.utterances}},
        "method": {"type": "full"},
        "training": {"learningRate": lr, "batchSize": 16, "epochs": a.epochs, "seed": a.seed},
        "compression": compression,
        "export": {"onnx": True, "quantization": "int8", "maxWerIncrease": 1.0},
        "output": {"uri": f"file://{work}/out/{name}"},
    }
    result, secs = run_job(name, spec, work, eval_max=16)
    return work / "out" / name, result, secs


def ptq_static(model_dir: Path, out: Path, cal_samples) -> Path:
    """Static INT8 of model_dir without QAT: a copy whose *_quantized.onnx are QDQ graphs with activation
    ranges calibrated on cal_samples (the same MinMax calibration QAT starts from)."""
    import torch

    from whisperops_trainer.compress import load_whisper
    from whisperops_trainer.features import LogMel
    from whisperops_trainer.train import TrainConfig, _qat_calibrate, prompt_ids
    from transformers import AutoTokenizer

    shutil.copytree(model_dir, out)
    for f in (out / "onnx").glob("*_quantized.onnx"):
        f.unlink()
    model = load_whisper(model_dir)
    qat.prepare(model)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    max_label = int(model.config.max_target_positions) - len(prompt_ids(str(model_dir))) - 1
    cfg = TrainConfig(method="full", qat_calibration_samples=len(cal_samples))
    _qat_calibrate(model, [("calibration", cal_samples)], str(model_dir), tok, cfg, LogMel(str(model_dir), "cpu"), max_label,
                   torch.device("cpu"))
    qat.export_static_int8(out / "onnx", qat.activation_params(model))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--utterances", type=int, default=240)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scenarios", default="general,finance,medical")
    ap.add_argument("--seed", type=int, default=42, help="the jobs' training.seed (data draw, order, augmentation)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--reuse", default=None, help="an earlier run's work directory: measure its models again")
    a = ap.parse_args()
    from transformers import AutoTokenizer

    work = Path(a.reuse) if a.reuse else Path(tempfile.mkdtemp(prefix="bench-qat-"))
    print(f"work directory {work}", flush=True)
    res: dict = {"machine": "shared 2-core CPU, loaded by other engineers' tests", "utterances": a.utterances,
                 "epochs": a.epochs, "lr": a.lr, "n": a.n, "threads": a.threads, "seed": a.seed, "runs": {}}
    dirs: dict[str, Path] = {}
    if a.reuse:
        for name in ("plain", "qat"):
            r = json.loads((work / f"{name}.result").read_text())
            dirs[name] = work / "out" / name
            res["runs"][name] = {"result": r, "trainSeconds": r.get("durationSeconds"), "reused": str(work)}
            job = json.loads((work / f"{name}.json").read_text())["spec"]
            res["utterances"] = job["dataset"]["synthesize"]["maxUtterances"]
            res["epochs"], res["lr"] = job["training"]["epochs"], job["training"]["learningRate"]
        ptq, qat_dyn = work / "plain-ptq-static", work / "qat-dynamic"
    else:
        train_sents, _ = suites.general_split()  # the general evaluation sentences are never trained on
        corpus = work / "general-train.txt"
        corpus.write_text("\n".join(train_sents[32:]) + "\n")
        for name, comp in (("plain", {}), ("qat", {"quantizationAware": {"calibrationSamples": 32}})):
            d, r, secs = train(name, comp, a.lr, a, work, corpus)
            dirs[name] = d
            res["runs"][name] = {"result": r, "trainSeconds": round(secs, 1)}
            print(f"{name}: trained in {secs:.0f} s: quantization {r.get('quantization')} {r.get('compression')}", flush=True)
        # post-training static INT8 of the plain fine-tune, calibrated on 32 general *training* sentences
        cal = synth.synthesize(train_sents[:32], "general", work / "audio" / "calibration", synth.SynthConfig(seed=7), workers=2)
        ptq = ptq_static(dirs["plain"], work / "plain-ptq-static", cal)
        # post-training dynamic INT8 of the QAT run's own fp32 weights (the published *_quantized is static)
        qat_dyn = work / "qat-dynamic"
        shutil.copytree(dirs["qat"], qat_dyn)
        quantize_int8(qat_dyn / "onnx")
    variants = {
        ("plain", "fp32"): (dirs["plain"], ""), ("plain", "dynamic-int8"): (dirs["plain"], "_quantized"),
        ("plain", "ptq-static-int8"): (ptq, "_quantized"),
        ("qat", "fp32"): (dirs["qat"], ""), ("qat", "qat-static-int8"): (dirs["qat"], "_quantized"),
        ("qat", "dynamic-int8"): (qat_dyn, "_quantized"),
    }
    tok = AutoTokenizer.from_pretrained(str(BASE))
    sess = {k: OnnxWhisper(d, s, threads=a.threads) for k, (d, s) in variants.items()}
    out = {f"{m}/{v}": {"bytes": sum((d / "onnx" / f"{f}{s}.onnx").stat().st_size for f in ("encoder_model", "decoder_model_merged")),
                        "seconds": 0.0, "n": 0, "wer": {}, "batchChanged": 0}
           for (m, v), (d, s) in variants.items()}
    for scen in a.scenarios.split(","):
        samples = suites.eval_set(scen, a.n)
        feats = evaluate.features_for(str(BASE), samples)
        for s in sess.values():
            s.generate(feats[:1])  # warm-up
        hyps: dict = {k: [] for k in sess}
        for i in range(len(feats)):
            for k, s in sess.items():
                t = time.perf_counter()
                toks = s.generate(feats[i:i + 1])
                out[f"{k[0]}/{k[1]}"]["seconds"] += time.perf_counter() - t
                out[f"{k[0]}/{k[1]}"]["n"] += 1
                hyps[k] += tok.batch_decode(toks, skip_special_tokens=True)
        for k, s in sess.items():
            r = out[f"{k[0]}/{k[1]}"]
            r["wer"][scen] = round(evaluate.score([x.text for x in samples], hyps[k]).wer, 4)
            batched: list[str] = []
            for i in range(0, len(feats), 8):
                batched += tok.batch_decode(s.generate(feats[i:i + 8]), skip_special_tokens=True)
            r["batchChanged"] += sum(x.strip() != y.strip() for x, y in zip(hyps[k], batched))
        print(scen, {f"{k[0]}/{k[1]}": out[f"{k[0]}/{k[1]}"]["wer"][scen] for k in sess}, flush=True)
    for k, r in out.items():
        r["msPerUtterance"] = round(1000 * r.pop("seconds") / r["n"], 1)
        r["batchChanged"] = f"{r['batchChanged']}/{r['n']}"
    for m in ("plain", "qat"):
        fp = out[f"{m}/fp32"]["wer"]
        for k, r in out.items():
            if k.startswith(m + "/"):
                r["werLossVsFp32Points"] = {s: round(100 * (min(r["wer"][s], 1) - min(fp[s], 1)), 2) for s in fp}
    res["variants"] = out
    for k, r in out.items():
        print(k, json.dumps(r), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
