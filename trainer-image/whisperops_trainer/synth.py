"""Speech synthesis with espeak-ng (voices, speeds and pitches as in the base model's recipe).

`espeak-ng -v VOICE+VARIANT -s WPM -p PITCH -w out.wav "text"` writes 22,050 Hz audio; it is resampled
to 16 kHz. Output is deterministic for (text, voice, speed, pitch), so files are cached by that key.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import audio, log
from .data import Sample

TRAIN_VOICES = ["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan"]
HELDOUT_VOICES = ["en-029", "en-gb-x-gbcwmd"]
VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5",
            "+klatt", "+klatt2", "+klatt3"]


class SynthError(RuntimeError):
    pass


@dataclass(frozen=True)
class Voice:
    voice: str
    wpm: int
    pitch: int

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.voice}|{self.wpm}|{self.pitch}|{text}".encode()).hexdigest()[:24]


@dataclass
class SynthConfig:
    voices: Sequence[str] = field(default_factory=lambda: list(TRAIN_VOICES))
    variants: Sequence[str] = field(default_factory=lambda: list(VARIANTS))
    wpm: tuple[float, float] = (130, 200)
    pitch: tuple[float, float] = (25, 75)
    seed: int = 0


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def pick_voices(n: int, cfg: SynthConfig) -> list[Voice]:
    rng = random.Random(cfg.seed)
    out = []
    for _ in range(n):
        v = rng.choice(list(cfg.voices))
        variant = rng.choice(list(cfg.variants))
        v += "" if "+" in v else variant  # a voice that names its variant (en-us+f2) keeps it
        out.append(Voice(v, int(round(rng.uniform(*cfg.wpm))), int(round(rng.uniform(*cfg.pitch)))))
    return out


def speak(text: str, voice: Voice) -> np.ndarray:
    """One utterance as 16 kHz float32."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        cmd = ["espeak-ng", "-v", voice.voice, "-s", str(voice.wpm), "-p", str(voice.pitch), "-w", f.name, text]
        r = subprocess.run(cmd, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise SynthError(f"espeak-ng failed ({r.returncode}): {r.stderr.decode(errors='replace')[:200]}")
        return audio.read_audio(f.name)


def synthesize(
    texts: Sequence[str],
    scenario: str,
    out_dir: str | Path,
    cfg: SynthConfig,
    workers: int = 2,
    max_seconds: float = 9.8,
) -> list[Sample]:
    """Speak every text with a random voice/speed/pitch; write wavs into out_dir; return samples.

    Utterances longer than `max_seconds` (the model's 10 s window) are dropped and logged.
    """
    if not espeak_available():
        raise SynthError("espeak-ng is not installed")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    voices = pick_voices(len(texts), cfg)

    def one(i: int) -> Sample | None:
        text, v = texts[i], voices[i]
        path = out / f"{v.key(text)}.wav"
        if not path.exists():
            x = speak(text, v)
            if len(x) > max_seconds * audio.SAMPLE_RATE:
                return None
            tmp = path.with_suffix(".tmp.wav")
            audio.write_wav(tmp, x)
            tmp.replace(path)
        return Sample(audio=str(path), text=text, scenario=scenario, voice=v.voice, wpm=v.wpm, pitch=v.pitch)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        res = list(ex.map(one, range(len(texts))))
    samples = [s for s in res if s is not None]
    dropped = len(res) - len(samples)
    log.info("Synthesized speech", scenario=scenario, utterances=len(samples), dropped_too_long=dropped,
             dir=str(out))
    return samples


def read_corpus(path: str | Path) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip()]


def dedupe(texts: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for t in texts:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out
