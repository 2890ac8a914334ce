"""fp32 vs INT8 ONNX of a model folder (default: the embedded model): file sizes, CPU latency per
utterance at batch 1 (the two variants interleaved, so machine load hits both alike), WER.

  python bench/bench_onnx.py [--model DIR] [--n 40] [--threads 2] [--out results/onnx.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from whisperops_trainer import evaluate, suites  # noqa: E402
from whisperops_trainer.onnx_infer import OnnxWhisper  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "models" / "tiny-whisper-synth"))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scenarios", default="finance,general")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from transformers import AutoTokenizer

    d = Path(a.model)
    tok = AutoTokenizer.from_pretrained(str(d))
    variants = {"fp32": "", "int8": "_quantized"}
    sess = {k: OnnxWhisper(d, s, threads=a.threads) for k, s in variants.items()}
    res: dict = {"model": d.name, "threads": a.threads}
    for k, s in variants.items():
        res[k] = {"bytes": sum((d / "onnx" / f"{f}{s}.onnx").stat().st_size for f in ("encoder_model", "decoder_model_merged")),
                  "seconds": 0.0, "n": 0, "wer": {}}
    for scen in a.scenarios.split(","):
        samples = suites.eval_set(scen, a.n)
        feats = evaluate.features_for(str(d), samples)
        hyps: dict = {k: [] for k in variants}
        for k in variants:  # warm-up
            sess[k].generate(feats[:1])
        for i in range(len(feats)):
            for k in variants:
                t = time.perf_counter()
                toks = sess[k].generate(feats[i:i + 1])
                res[k]["seconds"] += time.perf_counter() - t
                res[k]["n"] += 1
                hyps[k] += tok.batch_decode(toks, skip_special_tokens=True)
        for k in variants:
            res[k]["wer"][scen] = round(evaluate.score([x.text for x in samples], hyps[k]).wer, 4)
    for k in variants:
        res[k]["msPerUtterance"] = round(1000 * res[k]["seconds"] / res[k]["n"], 1)
        print(f"{k}: {res[k]['bytes'] / 1e6:.1f} MB, {res[k]['msPerUtterance']} ms/utt (batch 1, {a.threads} threads), "
              f"WER {res[k]['wer']}")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
