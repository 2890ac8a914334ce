"""Writes log-mel-fixture.json: WhisperFeatureExtractor (transformers) output for a deterministic test
signal, so the agent's front end is checked against the reference without Python at test time.
Run: python make-log-mel-fixture.py MODEL_DIR  (needs numpy + transformers)."""
import json, math, sys
import numpy as np
from transformers import WhisperFeatureExtractor

fe = WhisperFeatureExtractor.from_pretrained(sys.argv[1])
sr = 16000
n = int(1.5 * sr)
t = np.arange(n) / sr
# a chirp plus two tones and a decaying click train: energy across the whole mel range
x = 0.3 * np.sin(2 * math.pi * (200 * t + 1500 * t * t)) + 0.2 * np.sin(2 * math.pi * 440 * t) + 0.05 * np.sin(2 * math.pi * 6000 * t)
x[:: 800] += 0.5
x = x.astype(np.float32)
f = fe(x, sampling_rate=sr, return_tensors="np").input_features[0]
rows = list(range(0, 80, 7))
frames = list(range(0, 160))
json.dump({
    "signal": "0.3 sin(2π(200t + 1500t²)) + 0.2 sin(2π·440t) + 0.05 sin(2π·6000t), +0.5 every 800 samples, 1.5 s at 16 kHz, float32",
    "shape": list(f.shape),
    "rows": rows,
    "frames": frames,
    "values": [[round(float(f[r, c]), 6) for c in frames] for r in rows],
    "padded_value": float(f[0, 999]),
}, open("log-mel-fixture.json", "w"))
