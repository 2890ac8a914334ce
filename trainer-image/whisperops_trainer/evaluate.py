"""Evaluation: greedy transcription (PyTorch or ONNX) and WER/CER per scenario.

WER and CER are corpus-level (total edits / total reference words or characters, jiwer) over text
normalised by `textnorm.normalize` (see trainer-image/README.md, "WER").
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import jiwer
import numpy as np

from . import audio, log
from .data import Sample
from .textnorm import normalize


@dataclass
class Score:
    wer: float
    cer: float
    n: int
    words: int

    def to_json(self) -> dict:
        return {"wer": round(self.wer, 4), "cer": round(self.cer, 4), "n": self.n, "words": self.words}


def score(refs: Sequence[str], hyps: Sequence[str]) -> Score:
    r = [normalize(x) for x in refs]
    h = [normalize(x) for x in hyps]
    keep = [i for i, x in enumerate(r) if x]
    if not keep:
        raise ValueError("no non-empty reference")
    r = [r[i] for i in keep]
    h = [h[i] for i in keep]
    w = jiwer.process_words(r, h)
    c = jiwer.process_characters(r, h)
    return Score(wer=float(w.wer), cer=float(c.cer), n=len(r), words=sum(len(x.split()) for x in r))


def score_by_scenario(samples: Sequence[Sample], hyps: Sequence[str]) -> dict[str, Score]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        groups[s.scenario].append(i)
    return {k: score([samples[i].text for i in idx], [hyps[i] for i in idx]) for k, idx in sorted(groups.items())}


def features_for(model_dir: str, samples: Sequence[Sample]) -> np.ndarray:
    return audio.log_mel(model_dir, [audio.read_audio(s.audio) for s in samples])


def transcribe_torch(model, tokenizer, features: np.ndarray, batch_size: int = 32, device: str = "cpu",
                     dtype=None) -> list[str]:
    import torch

    model.eval()
    out: list[str] = []
    with torch.inference_mode():
        for i in range(0, len(features), batch_size):
            x = torch.from_numpy(features[i:i + batch_size]).to(device)
            if dtype is not None:
                x = x.to(dtype)
            ids = model.generate(input_features=x, language="en", task="transcribe", do_sample=False, num_beams=1)
            out.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))
    return out


def evaluate_torch(model, tokenizer, model_dir: str, samples: Sequence[Sample], batch_size: int = 32,
                   device: str = "cpu", dtype=None, label: str = "model",
                   features: np.ndarray | None = None) -> tuple[dict[str, Score], list[str]]:
    t0 = time.time()
    feats = features if features is not None else features_for(model_dir, samples)
    hyps = transcribe_torch(model, tokenizer, feats, batch_size, device, dtype)
    scores = score_by_scenario(samples, hyps)
    log.info("Evaluated", model=label, seconds=time.time() - t0,
             **{f"wer_{k}": v.wer for k, v in scores.items()})
    return scores, hyps
