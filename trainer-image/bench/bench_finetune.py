"""Benchmark: fine-tune the embedded model on the shared domain corpora and measure.

Prints (and writes as JSON): finance and medical WER before/after fine-tuning (LoRA and
freeze-encoder), general WER before/after (forgetting), trainable parameter ratio, training
throughput (utterances/s), and INT8 vs fp32 ONNX size, CPU speed and WER. Evaluation uses
sentences held out of the domain corpora (split by sentence: never trained on) and held-out
general sentences. Goal (finance): WER <= 1/3 of the base model's, general WER <= +2 points.

  python bench/bench_finetune.py --size cpu --out results/bench-cpu.json
  python bench/bench_finetune.py --size gpu --out results/bench-gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from whisperops_trainer import evaluate, export, log, params, suites, synth  # noqa: E402
from whisperops_trainer.data import mix_replay  # noqa: E402
from whisperops_trainer.train import TrainConfig, interpolate, train  # noqa: E402

SIZES = {
    # sentences: domain training sentences used (of 1,200 per domain); renditions: voices per sentence
    "tiny": dict(sentences=24, renditions=1, general=16, eval_n=8, epochs=1, batch=8, onnx_n=4),
    "cpu": dict(sentences=300, renditions=1, general=150, eval_n=60, epochs=2, batch=16, onnx_n=40),
    "gpu": dict(sentences=1200, renditions=3, general=1500, eval_n=250, epochs=4, batch=64, onnx_n=250),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=SIZES, default="cpu")
    ap.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "models" / "tiny-whisper-synth"))
    ap.add_argument("--domains", default="finance,medical")
    ap.add_argument("--methods", default="lora,freezeEncoder")
    ap.add_argument("--lr-lora", type=float, default=2e-3)
    ap.add_argument("--lr-freezeEncoder", type=float, default=3e-4)
    ap.add_argument("--lora-targets", default="q_proj,v_proj")
    ap.add_argument("--epochs", type=float, default=None)
    ap.add_argument("--replay", type=float, default=0.2)
    ap.add_argument("--runs", default=None,
                    help="explicit runs DOMAIN:METHOD:LR:REPLAY[:EPOCHS],... (default: every domain x method)")
    ap.add_argument("--interpolate", default="", help="also evaluate WiSE-FT weight interpolations, e.g. 0.5,0.7")
    ap.add_argument("--eval-n", type=int, default=None)
    ap.add_argument("--general-words", action="store_true",
                    help="also evaluate random word sequences over the general vocabulary (never memorised)")
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--deadline", type=float, default=0, help="start no run after this many seconds")
    ap.add_argument("--work", default=None)
    ap.add_argument("--keep-models", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    sz = dict(SIZES[a.size])
    if a.epochs:
        sz["epochs"] = a.epochs
    if a.eval_n:
        sz["eval_n"] = a.eval_n
    import torch
    from transformers import AutoTokenizer, WhisperForConditionalGeneration

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(a.work or (suites.cache_dir().parent / f"bench-{a.size}"))
    work.mkdir(parents=True, exist_ok=True)
    workers = os.cpu_count() or 2
    res: dict = {"size": a.size, "config": sz, "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
                 "torch": torch.__version__, "lr": {"lora": a.lr_lora, "freezeEncoder": a.lr_freezeEncoder},
                 "loraTargets": a.lora_targets.split(","), "replayFraction": a.replay, "runs": {}}

    def save() -> None:
        if a.out:
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(res, indent=1))

    t0 = time.time()
    domains = a.domains.split(",")
    if a.runs:
        domains = sorted({r.split(":")[0] for r in a.runs.split(",")})
    log.set_stage("data")
    train_sets, eval_sets = {}, {}
    for d in domains:
        tr, _ = suites.domain_split(d)
        texts = random.Random(11).sample(tr, min(sz["sentences"], len(tr))) * sz["renditions"]
        train_sets[d] = synth.synthesize(texts, d, work / f"train-{d}", synth.SynthConfig(seed=101), workers=workers)
        eval_sets[d] = suites.eval_set(d, sz["eval_n"], workers=workers)
    gtr, _ = suites.general_split()
    general = synth.synthesize(random.Random(12).sample(gtr, sz["general"]), "general", work / "train-general",
                               synth.SynthConfig(seed=102), workers=workers)
    eval_sets["general"] = suites.eval_set("general", sz["eval_n"], workers=workers)
    if a.general_words:
        eval_sets["general-words"] = suites.eval_set("general-words", sz["eval_n"], workers=workers)
    res["dataSeconds"] = round(time.time() - t0, 1)
    res["data"] = {k: len(v) for k, v in train_sets.items()} | {"generalReplayPool": len(general)} | \
        {f"eval_{k}": len(v) for k, v in eval_sets.items()}

    tok = AutoTokenizer.from_pretrained(a.model)
    feats = {k: evaluate.features_for(a.model, v) for k, v in eval_sets.items()}

    def wer_of(model_dir: str) -> dict:
        m = WhisperForConditionalGeneration.from_pretrained(model_dir).to(dev)
        out = {}
        for k, v in eval_sets.items():
            sc, _ = evaluate.evaluate_torch(m, tok, model_dir, v, batch_size=64, device=dev, features=feats[k])
            out[k] = round(sc[k].wer, 4)
        return out

    log.set_stage("base")
    res["base"] = wer_of(a.model)
    save()

    runs = []
    if a.runs:
        for r in a.runs.split(","):
            f = r.split(":")
            runs.append((f[0], f[1], float(f[2]), float(f[3]), float(f[4]) if len(f) > 4 else sz["epochs"]))
    else:
        runs = [(d, m, getattr(a, f"lr_{m}"), a.replay, sz["epochs"]) for d in domains for m in a.methods.split(",")]
    for d, method, lr, replay, epochs in runs:
        if a.deadline and time.time() - t0 > a.deadline:
            log.warn("Deadline reached: skipping run", run=f"{d}-{method}")
            res.setdefault("skipped", []).append(f"{d}:{method}:{lr}:{replay}:{epochs}")
            continue
        name = f"{d}-{method}"
        if name in res["runs"]:
            name = f"{name}-lr{lr:g}-replay{replay:g}-ep{epochs:g}"
        log.set_stage(name)
        n = int(epochs * len(train_sets[d]) / (1 - replay))
        stage = mix_replay(train_sets[d], general, 1 - replay, n, random.Random(13))
        cfg = TrainConfig(method=method, batch_size=sz["batch"], learning_rate=lr,
                          target_modules=tuple(a.lora_targets.split(",")), seed=42, log_every=20,
                          num_workers=min(14, workers - 1) if dev == "cuda" else 0)
        out_dir = work / f"model-{name}"
        tr = train(a.model, [("main", stage)], cfg, str(out_dir))
        w = wer_of(str(out_dir))
        res["runs"][name] = {
            "lr": lr, "replay": replay, "epochs": epochs,
            "wer": w, "trainable": tr.trainable, "total": tr.total, "trainableRatio": round(tr.trainable / tr.total, 5),
            "uttPerSec": round(tr.utt_per_sec, 1), "steps": tr.steps, "samples": tr.samples_seen,
            "trainSeconds": round(tr.seconds, 1), "finalLoss": round(tr.final_loss, 4), "precision": tr.precision,
            "domainWerRatio": round(w[d] / res["base"][d], 3) if res["base"][d] else None,
            "generalWerDelta": round(w["general"] - res["base"]["general"], 4),
        }
        log.info("Benchmark run", run=name, **{f"wer_{k}": v for k, v in w.items()})
        for alpha in [float(x) for x in a.interpolate.split(",") if x]:
            idir = work / f"model-{name}-wise{alpha:g}"
            interpolate(a.model, str(out_dir), alpha, str(idir))
            wi = wer_of(str(idir))
            res["runs"][name].setdefault("interpolated", {})[f"{alpha:g}"] = {
                "wer": wi, "domainWerRatio": round(wi[d] / res["base"][d], 3),
                "generalWerDelta": round(wi["general"] - res["base"]["general"], 4)}
            log.info("Interpolated", run=name, alpha=alpha, **{f"wer_{k}": v for k, v in wi.items()})
            import shutil

            shutil.rmtree(idir, ignore_errors=True)
        save()
        if not a.no_onnx and "onnx" not in res:
            res["onnx"] = onnx_bench(out_dir, {k: eval_sets[k] for k in (d, "general")}, feats, tok, sz["onnx_n"])
            save()
        if not a.keep_models:
            import shutil

            shutil.rmtree(out_dir, ignore_errors=True)

    res["largeV2LoraR16"] = params.lora_on_meta(params.whisper_large_v2_config(), 16, 32, ["q_proj", "v_proj"])
    res["totalSeconds"] = round(time.time() - t0, 1)
    save()
    print_table(res)
    return 0


def onnx_bench(model_dir: Path, evals: dict, feats: dict, tok, n: int) -> dict:
    """fp32 vs INT8 ONNX of one fine-tuned model: file sizes, CPU latency per utterance (batch 1),
    WER on the first n utterances of each eval set."""
    from whisperops_trainer.onnx_infer import OnnxWhisper, transcribe

    log.set_stage("onnx")
    export.export_onnx(model_dir, model_dir)
    export.quantize_int8(model_dir / "onnx")
    threads = min(4, os.cpu_count() or 1)
    out: dict = {"model": model_dir.name, "ortThreads": threads}
    for label, suffix in (("fp32", ""), ("int8", "_quantized")):
        sess = OnnxWhisper(model_dir, suffix, threads=threads)
        size = sum((model_dir / "onnx" / f"{f}{suffix}.onnx").stat().st_size for f in ("encoder_model", "decoder_model_merged"))
        wer = {}
        t_total, n_utt = 0.0, 0
        for k, samples in evals.items():
            f = feats[k][:n]
            t = time.time()
            hyps = []
            for i in range(len(f)):
                hyps += transcribe(model_dir, f[i:i + 1], tok, session=sess, batch_size=1)
            t_total += time.time() - t
            n_utt += len(f)
            wer[k] = round(evaluate.score([s.text for s in samples[:n]], hyps).wer, 4)
        out[label] = {"bytes": size, "msPerUtterance": round(1000 * t_total / n_utt, 1), "wer": wer, "n": n_utt}
    return out


def print_table(res: dict) -> None:
    b = res["base"]
    print(f"\n== whisperops trainer benchmark ({res['size']}, {res['device']}) ==")
    print("base WER: " + ", ".join(f"{k} {v:.1%}" for k, v in b.items()))
    gw = "general-words" in b
    print(f"{'run':44s} {'domain WER':>18s} {'ratio':>6s} {'general WER':>18s} {'trainable':>16s} {'utt/s':>7s}")
    for name, r in res["runs"].items():
        d = name.split("-")[0]
        print(f"{name:44s} {b[d]:7.1%} -> {r['wer'][d]:6.1%} {r['domainWerRatio']:6.3f} "
              f"{b['general']:7.1%} -> {r['wer']['general']:6.1%} {r['trainable']:>9,d} ({r['trainableRatio']:.2%}) {r['uttPerSec']:7.1f}"
              + (f"  general-words {b['general-words']:.1%} -> {r['wer']['general-words']:.1%}" if gw else ""))
        for alpha, ri in r.get("interpolated", {}).items():
            print(f"{'  + WiSE-FT alpha ' + alpha:44s} {b[d]:7.1%} -> {ri['wer'][d]:6.1%} {ri['domainWerRatio']:6.3f} "
                  f"{b['general']:7.1%} -> {ri['wer']['general']:6.1%}"
                  + (f"  general-words {b['general-words']:.1%} -> {ri['wer']['general-words']:.1%}" if gw else ""))
    if "onnx" in res:
        o = res["onnx"]
        for k in ("fp32", "int8"):
            print(f"ONNX {k}: {o[k]['bytes'] / 1e6:6.1f} MB, {o[k]['msPerUtterance']:7.1f} ms/utt ({o['ortThreads']} threads), WER "
                  + ", ".join(f"{s} {w:.1%}" for s, w in o[k]["wer"].items()))
    lv = res["largeV2LoraR16"]
    print(f"whisper-large-v2 LoRA r=16 q_proj,v_proj: {lv['trainable']:,} trainable of {lv['total']:,} ({lv['trainableRatio']:.2%})")
    print(f"total {res['totalSeconds']} s")


if __name__ == "__main__":
    sys.exit(main())
