"""How far from the teacher a distillation student starts: students of the embedded model cut by
compress.make_student (layers by spread(), FFN neurons by weight norm) and the same shapes with the FFN
neurons chosen by activation instead (make_student's ffn_activation) (mean |fc2 input| over 64 training utterances × ||fc2 column||, as
Minitron ranks width), each measured before any training: teacher-forced loss on those 64 utterances
and greedy WER on held-out general speech.

  python bench/bench_student_init.py [--n 40] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "bench"))

from jobrun import BASE  # noqa: E402
from whisperops_trainer import compress, evaluate, suites, synth  # noqa: E402

SHAPES = [(2, 2, 512), (3, 2, 512), (4, 2, 384), (4, 2, 512), (4, 4, 256), (4, 1, None)]


def main() -> int:
    import torch
    from transformers import AutoTokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(BASE))
    teacher = compress.load_whisper(BASE, dtype=torch.float32).eval()
    train_sents, _ = suites.general_split()  # the general evaluation sentences are not among these
    cal = synth.synthesize(train_sents[:64], "general", suites.cache_dir() / "probe-student-init", synth.SynthConfig(seed=11), workers=2)
    batches = list(compress.utterance_batches(BASE, cal, 16))
    ev = suites.eval_set("general", a.n)
    feats = evaluate.features_for(str(BASE), ev)

    def tf_loss(m) -> float:
        m.eval()
        with torch.no_grad():
            return sum(float(m(input_features=f, decoder_input_ids=d, labels=l).loss) for f, d, l in batches) / len(batches)

    def wer(m) -> float:
        return evaluate.score([x.text for x in ev], evaluate.transcribe_torch(m, tok, feats)).wer

    # mean |activation| of every FFN neuron of the teacher (the input of fc2), per layer
    sums: dict[str, tuple] = {}
    hooks = []
    for side in ("encoder", "decoder"):
        for i, layer in enumerate(getattr(teacher.model, side).layers):
            def hook(_mod, args, key=f"model.{side}.layers.{i}."):
                x = args[0].detach().abs().reshape(-1, args[0].shape[-1])
                s, n = sums.get(key, (0, 0))
                sums[key] = (s + x.sum(0), n + x.shape[0])
            hooks.append(layer.fc2.register_forward_pre_hook(hook))
    teacher_loss = tf_loss(teacher)
    for h in hooks:
        h.remove()
    activation = {k: v / n for k, (v, n) in sums.items()}

    total = sum(p.numel() for p in teacher.parameters())
    res: dict = {"utterancesLoss": len(cal), "nWer": a.n, "teacher": {"params": total, "loss": round(teacher_loss, 3), "wer": round(wer(teacher), 4)}, "students": []}
    print("teacher", res["teacher"], flush=True)
    for e, d, f in SHAPES:
        for sel in ("weight-norm", "activation") if f is not None else ("weight-norm",):
            student, plan = compress.make_student(teacher, e, d, f, activation if sel == "activation" else None)
            n = sum(p.numel() for p in student.parameters())
            row = {"shape": plan.to_json(), "ffnSelection": sel, "params": n, "fraction": round(n / total, 3),
                   "loss": round(tf_loss(student), 3), "wer": round(wer(student), 4)}
            res["students"].append(row)
            print(json.dumps(row), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
