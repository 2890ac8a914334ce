"""Speaker-role head, measured in one run: the embedded model fine-tuned by the real `run` command twice on
the same role-labelled speech — with spec.compression.speakerRole and without — then the held-out set the
agent bench (scripts/bench-role-agent.ts) sends through the real agent.

Task: clinician and patient. Every training sentence is spoken once per role (same rate and pitch for
both; only the voice differs) by one of 16 voices per role — 6 accents × 12 espeak-ng variants per role
(male variants → clinician, female → patient; each variant in one or two accents), so that the role is
learnt across accents and variants rather than voice by voice (--voices 3: the earlier 3 voices per
role). Held out: voices of other accents *and* other variants (en-029, en-gb-x-rp × m2/m6 | f2/f4),
speaking medical sentences never trained on. Against forgetting: WiSE-FT with the base
(--base-interpolation, default 0.6) and optional general replay (--replay-fraction) from general sentences
that are not in the general evaluation set. The gate is the trainer's default unless --max-wer-increase.
Writes OUT/heldout-roles.jsonl (audio, text, role) and OUT/summary.json.

  python bench/bench_roles.py [--sentences 120] [--epochs 4] [--n 40] [--voices 16] [--base-interpolation 0.6] [--replay-fraction 0] [--out /tmp/bench-roles]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "bench"))

from jobrun import BASE, BASE_REF, run_job  # noqa: E402

from whisperops_trainer import roles, suites  # noqa: E402
from whisperops_trainer.compress import count_params  # noqa: E402
from whisperops_trainer.data import write_manifest  # noqa: E402

ROLES = ["clinician", "patient"]
HELD = {"clinician": ["en-029+m2", "en-gb-x-rp+m6"], "patient": ["en-029+f2", "en-gb-x-rp+f4"]}
# the earlier 3 voices per role, en-gb's two (ignored variants: one male voice for both roles) as en
TRAIN_3 = {"clinician": ["en-us+m1", "en+m3", "en-gb-scotland+m5"], "patient": ["en-us+f1", "en+f3", "en-gb-scotland+f5"]}
# training accents and variants: none of the held-out ones (en-029, en-gb-x-rp; m2, m6, f2, f4). British English
# is "en" (gmw/en): espeak-ng ignores variants on "en-gb" (en-gb+f3 is its male voice; roles.ignored_variants).
# Variant names are espeak-ng's file names (voices/!v): an unknown one ("Adam" for "adam") is ignored too.
ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-us-nyc", "en-gb-x-gbcwmd"]
VARIANTS = {"clinician": ["m1", "m3", "m4", "m5", "m7", "m8", "adam", "Andy", "david", "max", "john", "paul"],
            "patient": ["f1", "f3", "f5", "Annie", "steph", "grandma", "Alicia", "Andrea", "aunty", "belinda", "anika", "steph2"]}


def training_voices(n: int) -> dict[str, list[str]]:
    """n distinct accent+variant voices per role: variant i % 12 in accent (i + i // 12) % 6, so every
    variant and every accent is used (n ≥ 12). 16 per role fit dataset.synthesize.voices (at most 32)."""
    if n == 3:
        return TRAIN_3
    return {r: [f"{ACCENTS[(i + i // len(vs)) % len(ACCENTS)]}+{vs[i % len(vs)]}" for i in range(n)] for r, vs in VARIANTS.items()}


def train(name: str, spec_extra: dict, a, work: Path, data: dict) -> tuple[dict, float]:
    spec = {
        "baseModel": BASE_REF,
        "dataset": {"scenario": "medical", "uri": f"file://{data['train']}",
                    "evaluation": [{"scenario": "medical", "uri": f"file://{data['medical']}"},
                                   {"scenario": "general", "uri": f"file://{data['general']}"}],
                    **({"replay": {"uri": f"file://{data['replay']}", "fraction": a.replay_fraction}} if a.replay_fraction > 0 else {})},
        "method": {"type": "lora"},
        "training": {"batchSize": 16, "epochs": a.epochs, "seed": 42, "baseInterpolation": a.base_interpolation},
        "export": {"onnx": True, "quantization": "int8",
                   **({"maxWerIncrease": a.max_wer_increase} if a.max_wer_increase is not None else {})},
        "output": {"uri": f"file://{work}/out/{name}"},
        **spec_extra,
    }
    return run_job(name, spec, work, eval_max=a.n, uid="be0c4000-0000")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=120, help="training sentences (each spoken once per role)")
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--voices", type=int, default=16, help="training voices per role (3: the earlier set)")
    ap.add_argument("--replay-fraction", type=float, default=0.0, help="general replay per batch (0: none)")
    ap.add_argument("--base-interpolation", type=float, default=0.6, help="training.baseInterpolation (WiSE-FT; 1: none)")
    ap.add_argument("--max-wer-increase", type=float, default=None, help="the gate (default: the trainer's, 0.02)")
    ap.add_argument("--n", type=int, default=40, help="held-out sentences per evaluation set")
    ap.add_argument("--loss-weight", type=float, default=0.5)
    ap.add_argument("--out", default="/tmp/bench-roles")
    a = ap.parse_args()
    work = Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    shared = suites.shared_data()
    med = sorted({ln.strip() for ln in (shared / "domain" / "medical_corpus.txt").read_text().splitlines() if ln.strip()})
    random.Random(5).shuffle(med)
    held_sents, train_sents = med[: a.n], med[a.n: a.n + a.sentences]
    gen = [ln.strip() for ln in (shared / "general" / "general_corpus.txt").read_text().splitlines() if ln.strip()]
    random.Random(6).shuffle(gen)
    (work / "medical-heldout.txt").write_text("\n".join(held_sents) + "\n")
    (work / "general-heldout.txt").write_text("\n".join(gen[: a.n]) + "\n")
    (work / "general-replay.txt").write_text("\n".join(gen[a.n:]) + "\n")  # never the evaluation sentences
    train_voices = training_voices(a.voices)
    t0 = time.time()
    train_set = roles.synthesize_by_role(train_sents, "medical", work / "audio" / "train", train_voices, 42, (130, 200), (25, 75), workers=2)
    write_manifest(work / "train.jsonl", train_set)  # samples carry their "role": the manifest path of the trainer
    held = roles.synthesize_by_role(held_sents, "medical", work / "audio" / "heldout", HELD, 43, (130, 200), (25, 75), workers=2)
    write_manifest(work / "heldout-roles.jsonl", held)
    print(f"synthesized {len(train_set)} training and {len(held)} held-out utterances in {time.time() - t0:.0f} s", flush=True)
    data = {"train": work / "train.jsonl", "medical": work / "medical-heldout.txt", "general": work / "general-heldout.txt",
            "replay": work / "general-replay.txt"}
    voices = [{"voice": v, "role": r} for r, vs in HELD.items() for v in vs]
    res_role, s_role = train("with-head", {"compression": {"speakerRole": {"roles": ROLES, "voices": voices, "lossWeight": a.loss_weight}}},
                               a, work, data)
    print(f"with head: {s_role:.0f} s, roleAccuracy {res_role['compression'].get('roleAccuracy')}, wer {res_role['wer']}", flush=True)
    res_plain, s_plain = train("without-head", {}, a, work, data)
    print(f"without head: {s_plain:.0f} s, wer {res_plain['wer']}", flush=True)
    out_role = work / "out" / "with-head"
    man = json.loads((out_role / "model-manifest.json").read_text())
    summary = {
        "trainVoices": train_voices, "heldoutVoices": HELD, "trainUtterances": len(train_set), "heldoutUtterances": len(held),
        "sentences": a.sentences, "epochs": a.epochs, "lossWeight": a.loss_weight, "replayFraction": a.replay_fraction,
        "baseInterpolation": a.base_interpolation,
        "maxWerIncrease": a.max_wer_increase, "load": os.getloadavg(),
        "withHead": {"dir": str(out_role), "seconds": round(s_role), "result": res_role,
                     "speakerRole": man["training"]["compression"]["speakerRole"],
                     "params": count_params(out_role), "roleHeadOnnxBytes": (out_role / roles.ONNX_FILE).stat().st_size},
        "withoutHead": {"dir": str(work / "out" / "without-head"), "seconds": round(s_plain), "result": res_plain},
        "base": {"dir": str(BASE), "wer": res_plain["baseWer"]},
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("trainUtterances", "heldoutUtterances")}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
