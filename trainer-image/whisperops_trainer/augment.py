"""Augmentation of the waveform: speed perturbation, gain and background noise at an SNR.
(SpecAugment works on batched log-mel features on the training device: features.spec_augment.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.signal import resample_poly

from . import audio


@dataclass
class AugmentConfig:
    speed: tuple[float, float] = (0.9, 1.1)
    snr_db: tuple[float, float] = (5.0, 15.0)
    noise_prob: float = 0.5
    noise_files: Sequence[str] = ()
    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 10
    gain: tuple[float, float] = (1.0, 1.0)


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Kaldi-style speed perturbation: play `factor` times faster (tempo and pitch), by resampling.
    Output length ~= len(x) / factor."""
    if abs(factor - 1.0) < 1e-3:
        return x
    down = int(round(100 * factor))
    return resample_poly(x, 100, down).astype(np.float32)


def colored_noise(n: int, rng: np.random.Generator, kind: str = "white") -> np.ndarray:
    w = rng.standard_normal(n).astype(np.float32)
    if kind == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec = spec / np.sqrt(f)  # 1/f power: pink
    return np.fft.irfft(spec, n).astype(np.float32)


def add_noise(x: np.ndarray, snr_db: float, noise: np.ndarray) -> np.ndarray:
    """Mix `noise` (tiled/cropped to len(x)) so that 10*log10(P_signal / P_noise) == snr_db."""
    if len(noise) < len(x):
        noise = np.tile(noise, int(np.ceil(len(x) / max(1, len(noise)))))
    noise = noise[: len(x)]
    ps = float(np.mean(x.astype(np.float64) ** 2))
    pn = float(np.mean(noise.astype(np.float64) ** 2))
    if ps == 0.0 or pn == 0.0:
        return x
    scale = np.sqrt(ps / (pn * 10 ** (snr_db / 10)))
    return (x + scale * noise).astype(np.float32)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    n = noisy.astype(np.float64) - clean.astype(np.float64)
    return float(10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(n ** 2)))


class WaveAugmenter:
    """Speed, gain and noise for one waveform, drawn from a config and a numpy Generator."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        self._noise = [audio.read_audio(p) for p in cfg.noise_files]

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.cfg
        if c.speed != (1.0, 1.0):
            x = speed_perturb(x, float(rng.uniform(*c.speed)))
        if c.gain != (1.0, 1.0):
            x = x * float(rng.uniform(*c.gain))
        if c.noise_prob > 0 and rng.random() < c.noise_prob:
            if self._noise:
                src = self._noise[int(rng.integers(len(self._noise)))]
                off = int(rng.integers(0, max(1, len(src) - len(x))))
                noise = src[off:off + len(x)]
            else:
                noise = colored_noise(len(x), rng, "pink" if rng.random() < 0.5 else "white")
            x = add_noise(x, float(rng.uniform(*c.snr_db)), noise)
        return np.clip(x, -1.0, 1.0).astype(np.float32)


def list_noise_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg"))
