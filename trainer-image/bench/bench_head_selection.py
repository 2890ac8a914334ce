"""Head selection before any recovery: which 40 % of the embedded model's 48 attention heads to remove,
chosen on the same synthesized training utterances by the one-pass gradient ranking
(compress.head_importance + heads_to_keep) and by greedy ablation (compress.heads_by_ablation), then
each pruned model's WER on held-out speech (never trained on) beside the unpruned model's.

  python bench/bench_head_selection.py [--samples 64] [--n 30] [--threads 1] [--out results/head-selection-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "bench"))

from jobrun import BASE  # noqa: E402
from whisperops_trainer import compress, evaluate, suites, synth  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--fraction", type=float, default=0.4)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(a.threads)
    pool, _ = suites.general_split()  # general sentences outside the held-out set
    texts = random.Random(5).sample(pool, a.samples)
    samples = synth.synthesize(texts, "general", suites.cache_dir() / "head-selection-train", synth.SynthConfig(seed=11))
    tok = AutoTokenizer.from_pretrained(str(BASE))
    batches = list(compress.utterance_batches(BASE, samples, 16))

    def fresh():
        m = compress.load_whisper(BASE)
        m.config.apply_spec_augment = False
        return m

    blocks = compress.attention_blocks(fresh())
    weights = [compress.KIND_WEIGHTS[k] for k, _, _ in blocks]
    res: dict = {"samples": len(samples), "fraction": a.fraction, "n": a.n, "threads": a.threads, "selections": {}}
    t0 = time.time()
    rounds: list[dict] = []
    keep_abl = compress.heads_by_ablation(fresh(), batches, a.fraction, weights,
                                          on_round=lambda n, loss: rounds.append({"removed": n, "lossBefore": round(loss, 4)}))
    res["selections"]["ablation"] = {"keep": keep_abl, "seconds": round(time.time() - t0, 1), "rounds": rounds}
    t0 = time.time()
    keep_grad = compress.heads_to_keep(compress.head_importance(fresh(), batches), a.fraction, weights)
    res["selections"]["gradient"] = {"keep": keep_grad, "seconds": round(time.time() - t0, 1)}
    ev = suites.eval_set("general", a.n)
    feats = evaluate.features_for(str(BASE), ev)
    for name, keep in (("unpruned", None), ("ablation", keep_abl), ("gradient", keep_grad)):
        m = fresh()
        if keep is not None:
            compress.prune_heads(m, keep)
        scores, _ = evaluate.evaluate_torch(m, tok, str(BASE), ev, features=feats, label=name)
        r = res["selections"].setdefault(name, {})
        r["layout"] = compress.head_layout(m)
        r["werGeneral"] = round(scores["general"].wer, 4)
        print(f"{name}: layout {r['layout']}, general WER {r['werGeneral']:.1%}", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
