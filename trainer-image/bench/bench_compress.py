"""Compression side by side in one run: the embedded (uncompressed) model, a distilled student and a
head-pruned model (40 % of all attention heads: encoder self, decoder self, cross), each trained by the
real `run` command (spec.compression) on synthesized general speech, then measured on the same held-out
speech: parameters, attention heads, ONNX size (fp32 / INT8), CPU latency per utterance at batch 1 with
the agent's greedy decoding loop (onnx_infer; all models interleaved, so machine load hits them alike),
WER per scenario. --only picks the compressed models (distilled, distilled-hidden, pruned, pruned-kd; kd-self: pruned-kd's recovery without pruning); --work keeps the models for
scripts/bench-compressed-agent.ts.

  python bench/bench_compress.py [--only pruned] [--utterances 320] [--epochs 2] [--n 30] [--work DIR]
                                 [--selection gradient|ablation] [--kind-weights encoder=1,decoder=8,cross=1]
                                 [--hidden-weight 1.0] [--models NAME=DIR,...] [--out results/compress-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "bench"))

from jobrun import BASE, BASE_REF, run_job  # noqa: E402
from whisperops_trainer import evaluate, suites  # noqa: E402
from whisperops_trainer.compress import build_empty, count_params, head_layout  # noqa: E402
from whisperops_trainer.onnx_infer import OnnxWhisper  # noqa: E402


def train(name: str, compression: dict, method: str, lr: float, a, work: Path, base: dict | None = None,
          epochs: float | None = None, uid: str = "bench0000-0000") -> tuple[Path, dict, float]:
    """One `run` job on a.utterances synthesized general utterances; base (default: the embedded model) and
    epochs (default: a.epochs) for callers that chain jobs."""
    spec = {
        "baseModel": base or BASE_REF,
        "dataset": {"scenario": "general",
                    "synthesize": {"corpusUri": f"file://{suites.shared_data()}/general/general_corpus.txt",
                                   "scenario": "general", "maxUtterances": a.utterances}},
        "method": {"type": method},
        "training": {"learningRate": lr, "batchSize": 16, "epochs": a.epochs if epochs is None else epochs, "seed": 42},
        "compression": compression,
        "export": {"onnx": True, "quantization": "int8", "maxWerIncrease": 1.0},  # the bench measures the loss itself
        "output": {"uri": f"file://{work}/out/{name}"},
    }
    result, secs = run_job(name, spec, work, eval_max=16, uid=uid)
    return work / "out" / name, result, secs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--utterances", type=int, default=320)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scenarios", default="general,finance,medical")
    ap.add_argument("--only", default="distilled,pruned")
    ap.add_argument("--prune-lr", type=float, default=1e-4)
    ap.add_argument("--importance-samples", type=int, default=64)
    ap.add_argument("--selection", default="gradient", help="headPruning.selection: gradient | ablation")
    ap.add_argument("--kind-weights", default=None, help="headPruning.kindWeights, e.g. encoder=1,decoder=8,cross=1")
    ap.add_argument("--hidden-weight", type=float, default=1.0, help="distillation.hiddenWeight of the distilled-hidden run")
    ap.add_argument("--prune-hidden-weight", type=float, default=0.0, help="distillation.hiddenWeight of the pruned-kd run")
    ap.add_argument("--prune-kl-weight", type=float, default=0.5, help="distillation.klWeight of the pruned-kd run")
    ap.add_argument("--prune-ce-weight", type=float, default=0.5, help="distillation.ceWeight of the pruned-kd run")
    ap.add_argument("--models", default=None,
                    help="NAME=DIR,...: measure these already trained models beside the uncompressed one instead of training (--only is ignored)")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from transformers import AutoTokenizer

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench-compress-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work: {work}", flush=True)
    models: dict[str, Path] = {"uncompressed": BASE}
    res: dict = {"machine": "shared 2-core CPU, loaded by other engineers' tests", "utterances": a.utterances,
                 "epochs": a.epochs, "n": a.n, "threads": a.threads, "models": {}}
    prune = {"fraction": 0.4, "importanceSamples": a.importance_samples, "selection": a.selection}
    if a.kind_weights:
        prune["kindWeights"] = {k: float(v) for k, v in (kv.split("=") for kv in a.kind_weights.split(","))}
    runs = {
        "distilled": ({"distillation": {"encoderLayers": 2, "decoderLayers": 2, "ffnDim": 512}}, "full", 3e-4),
        # the same student with the hidden-state term (each student layer against the teacher state it replaces)
        "distilled-hidden": ({"distillation": {"encoderLayers": 2, "decoderLayers": 2, "ffnDim": 512,
                                               "hiddenWeight": a.hidden_weight}}, "full", 3e-4),
        "pruned": ({"headPruning": prune}, "full", a.prune_lr),
        # the same pruning, recovered by distillation from the unpruned model (KL on soft logits + CE)
        "pruned-kd": ({"headPruning": prune,
                       "distillation": {"temperature": 2.0, "klWeight": a.prune_kl_weight, "ceWeight": a.prune_ce_weight,
                                        "hiddenWeight": a.prune_hidden_weight}}, "full", a.prune_lr),
        # pruned-kd's recovery without the pruning: a "student" with all of the model's encoder layers is
        # the teacher itself, so this measures what the recovery fine-tune alone does to WER
        "kd-self": ({"distillation": {"encoderLayers": int(build_empty(BASE, meta=True).config.encoder_layers),
                                      "temperature": 2.0, "klWeight": a.prune_kl_weight,
                                      "ceWeight": a.prune_ce_weight}}, "full", a.prune_lr),
    }
    runs = {k: v for k, v in runs.items() if k in a.only.split(",")} if not a.models else {}
    for name, d in (kv.split("=", 1) for kv in (a.models.split(",") if a.models else [])):
        models[name] = Path(d)
        res["models"][name] = {"dir": d}
    for name, (comp, method, lr) in runs.items():
        d, r, secs = train(name, comp, method, lr, a, work)
        models[name] = d
        res["models"][name] = {"result": r, "trainSeconds": round(secs, 1)}
        print(f"{name}: trained in {secs:.0f} s: {r.get('compression')}", flush=True)
    res["models"].setdefault("uncompressed", {})
    tok = AutoTokenizer.from_pretrained(str(BASE))
    variants = {"fp32": "", "int8": "_quantized"}
    sess = {(m, v): OnnxWhisper(d, s, threads=a.threads) for m, d in models.items() for v, s in variants.items()}
    for m, d in models.items():
        r = res["models"][m]
        r["params"] = count_params(d)
        r["heads"] = head_layout(build_empty(d, meta=True))
        r["bytes"] = {v: sum((d / "onnx" / f"{f}{s}.onnx").stat().st_size for f in ("encoder_model", "decoder_model_merged"))
                      for v, s in variants.items()}
        r["seconds"] = {v: 0.0 for v in variants}
        r["n"] = 0
        r["wer"] = {v: {} for v in variants}
    for scen in a.scenarios.split(","):
        samples = suites.eval_set(scen, a.n)
        feats = evaluate.features_for(str(BASE), samples)
        hyps = {k: [] for k in sess}
        for k in sess:
            sess[k].generate(feats[:1])  # warm-up
        for i in range(len(feats)):
            for (m, v), s in sess.items():
                t = time.perf_counter()
                toks = s.generate(feats[i:i + 1])
                res["models"][m]["seconds"][v] += time.perf_counter() - t
                hyps[(m, v)] += tok.batch_decode(toks, skip_special_tokens=True)
            for m in models:
                res["models"][m]["n"] += 1
        for (m, v), h in hyps.items():
            res["models"][m]["wer"][v][scen] = round(evaluate.score([x.text for x in samples], h).wer, 4)
    for m, r in res["models"].items():
        r["msPerUtterance"] = {v: round(1000 * r["seconds"][v] / r["n"], 1) for v in variants}
        print(f"{m}: {r['params']:,} params, heads {r['heads']}, fp32 {r['bytes']['fp32'] / 1e6:.1f} MB / INT8 {r['bytes']['int8'] / 1e6:.1f} MB, "
              f"ms/utt {r['msPerUtterance']}, WER {r['wer']}", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
