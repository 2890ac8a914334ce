"""The project's standard synthetic data: domain corpora split by sentence, and evaluation sets
spoken by espeak-ng. Used by the embedded-model export, the tests and the benchmark."""

from __future__ import annotations

import os
import random
import zlib
from pathlib import Path

from . import synth
from .data import Sample, split_sentences

EVAL_SEED = 20261126
SPLIT_SEED = 7
EVAL_FRACTION = 0.2


def shared_data() -> Path:
    env = os.environ.get("WHISPEROPS_SHARED_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    # The repository's own copy (data/) first: the project runs without ../shared.
    for up in here.parents:
        if (up / "data" / "domain").is_dir() and (up / "data" / "general").is_dir():
            return up / "data"
    for up in here.parents:
        cand = up.parent / "shared" / "data"
        if cand.is_dir():
            return cand
        cand = up / "shared" / "data"
        if cand.is_dir():
            return cand
    raise FileNotFoundError("data/ (or shared/data) not found; set WHISPEROPS_SHARED_DATA")


def cache_dir() -> Path:
    d = Path(os.environ.get("WHISPEROPS_CACHE", str(Path.home() / ".cache" / "whisperops"))) / "audio"
    d.mkdir(parents=True, exist_ok=True)
    return d


def corpus(name: str) -> list[str]:
    """'finance' | 'medical' (domain corpora) | 'general'."""
    d = shared_data()
    path = d / "general" / "general_corpus.txt" if name == "general" else d / "domain" / f"{name}_corpus.txt"
    return synth.dedupe(synth.read_corpus(path))


def domain_split(name: str) -> tuple[list[str], list[str]]:
    """(train sentences, held-out eval sentences) of a domain corpus, split by sentence."""
    return split_sentences(corpus(name), EVAL_FRACTION, SPLIT_SEED)


def general_split(n_eval: int = 1000) -> tuple[list[str], list[str]]:
    """General sentences: a fixed eval subset (regression check) and the rest (replay pool)."""
    sents = sorted(set(corpus("general")))
    rng = random.Random(SPLIT_SEED)
    rng.shuffle(sents)
    return sents[n_eval:], sents[:n_eval]


def word_sequences(n: int, seed: int, lo: int = 5, hi: int = 10) -> list[str]:
    """n random word sequences over the general corpus vocabulary: general speech that the base model
    cannot have memorised (every general corpus sentence was in its pre-training)."""
    vocab = sorted({w for s in corpus("general") for w in s.split()})
    rng = random.Random(seed)
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def eval_set(scenario: str, n: int, seed: int = EVAL_SEED, workers: int = 2) -> list[Sample]:
    """n held-out sentences of a scenario spoken with the training voices at random speeds/pitches.
    'general-words' is random word sequences over the general vocabulary (see word_sequences)."""
    if scenario == "general-words":
        texts = word_sequences(n, seed)
        cfg = synth.SynthConfig(seed=seed + 7)
        return synth.synthesize(texts, scenario, cache_dir() / f"eval-{scenario}", cfg, workers=workers)
    if scenario == "general":
        _, pool = general_split()
    else:
        _, pool = domain_split(scenario)
    rng = random.Random(seed)
    texts = rng.sample(pool, min(n, len(pool)))
    cfg = synth.SynthConfig(seed=seed + zlib.crc32(scenario.encode()) % 1000)
    return synth.synthesize(texts, scenario, cache_dir() / f"eval-{scenario}", cfg, workers=workers)
