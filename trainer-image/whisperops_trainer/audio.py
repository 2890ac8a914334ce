"""Audio I/O and log-mel features. Audio is mono float32 at 16 kHz everywhere inside the trainer."""

from __future__ import annotations

import io
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE = 16000


def resample(x: np.ndarray, sr_from: int, sr_to: int = SAMPLE_RATE) -> np.ndarray:
    if sr_from == sr_to:
        return x.astype(np.float32, copy=False)
    g = gcd(sr_from, sr_to)
    return resample_poly(x, sr_to // g, sr_from // g).astype(np.float32)


def decode_wav_bytes(data: bytes) -> np.ndarray:
    x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return resample(x.mean(axis=1), int(sr))


def read_audio(path: str | Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(x.mean(axis=1), int(sr))


def write_wav(path: str | Path, x: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    sf.write(str(path), np.clip(x, -1.0, 1.0), sr, subtype="PCM_16")


@lru_cache(maxsize=4)
def feature_extractor(model_dir: str):  # -> WhisperFeatureExtractor
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor.from_pretrained(model_dir)


def log_mel(model_dir: str, audios: Sequence[np.ndarray]) -> np.ndarray:
    """[batch, n_mels, frames] float32, padded/truncated to the model's window (10 s for ours)."""
    fe = feature_extractor(model_dir)
    out = fe(list(audios), sampling_rate=SAMPLE_RATE, return_tensors="np")
    return out["input_features"].astype(np.float32)
