"""Gradual head pruning, run as a chain of real FineTuneJobs: each step prunes part of the heads (ablation
selection) from the previous step's model and recovers by distillation from the *unpruned* base model
(`distillation.teacherUri`), on the same synthesized data as bench_compress.py's pruned-kd run. The
steps' head counts add up to the one-shot cut (19 of 48 by default: 10, then 9), and the steps share
its training budget (epochs split evenly). Measure the final model afterwards with
`bench_compress.py --models gradual=<work>/out/step<K> --n 150`.

  python bench/bench_gradual_prune.py [--steps 10,9] [--utterances 1920] [--epochs 2] [--work DIR] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "bench"))

from bench_compress import train  # noqa: E402
from jobrun import BASE, BASE_REF  # noqa: E402
from whisperops_trainer.compress import build_empty, head_layout  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", default="10,9", help="heads removed at each step")
    ap.add_argument("--utterances", type=int, default=1920)
    ap.add_argument("--epochs", type=float, default=2, help="training epochs of all steps together")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--kind-weights", default="encoder=1,decoder=8,cross=1")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench-gradual-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work: {work}", flush=True)
    cuts = [int(x) for x in a.steps.split(",")]
    kw = {k: float(v) for k, v in (x.split("=") for x in a.kind_weights.split(","))}
    res: dict = {"steps": cuts, "utterances": a.utterances, "epochs": a.epochs, "lr": a.lr, "kindWeights": kw, "runs": []}
    model_ref, heads = dict(BASE_REF), sum(sum(v) for v in head_layout(build_empty(BASE, meta=True)).values())
    for i, cut in enumerate(cuts, 1):
        name = f"step{i}"
        comp = {"headPruning": {"fraction": cut / heads, "importanceSamples": 64, "selection": "ablation", "kindWeights": kw},
                "distillation": {"teacherUri": f"file://{BASE}", "temperature": 2.0, "klWeight": 0.5, "ceWeight": 0.5}}
        _, r, secs = train(name, comp, "full", a.lr, a, work, base=model_ref, epochs=a.epochs / len(cuts),
                           uid=f"bench-gradual-{i}")
        c = r["compression"]
        print(f"{name}: {c['headsBefore']} → {c['headsAfter']} heads in {secs:.0f} s", flush=True)
        res["runs"].append({"name": name, "result": r, "seconds": round(secs, 1)})
        heads = c["headsAfter"]
        model_ref = {"uri": f"file://{work}/out/{name}", "version": r["version"]}
    res["final"] = str(work / "out" / f"step{len(cuts)}")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
