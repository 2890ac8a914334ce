"""The result the operator reads from the pod's termination message (at most 4 KiB)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_RESULT_FILE = "/dev/termination-log"
MAX_BYTES = 4096
KEYS = ("modelUri", "version", "sha256", "parentVersion", "wer", "baseWer", "trainableParams", "totalParams",
        "quantization", "durationSeconds", "compression")


def result_path() -> Path:
    return Path(os.environ.get("WHISPEROPS_RESULT_FILE") or DEFAULT_RESULT_FILE)


def encode(result: dict[str, Any]) -> bytes:
    """Compact JSON of exactly KEYS; WER values rounded to 4 decimals; scenarios dropped from both
    maps (longest names first) if it would exceed 4 KiB."""
    r = {k: result[k] for k in KEYS if k in result}
    for key in ("wer", "baseWer"):
        if key in r:
            r[key] = {s: round(float(v), 4) for s, v in sorted(r[key].items())}
    data = json.dumps(r, separators=(",", ":")).encode()
    while len(data) > MAX_BYTES and (r.get("wer") or r.get("baseWer")):
        names = sorted(set(r.get("wer", {})) | set(r.get("baseWer", {})), key=lambda s: (len(s), s))
        for key in ("wer", "baseWer"):
            r.get(key, {}).pop(names[-1], None)
        data = json.dumps(r, separators=(",", ":")).encode()
    if len(data) > MAX_BYTES:
        raise ValueError("result does not fit in 4 KiB")
    return data


def encode_failure(reason: str, message: str) -> bytes:
    data = json.dumps({"error": {"reason": reason, "message": message[:3000]}}, separators=(",", ":")).encode()
    return data[:MAX_BYTES]


def write(data: bytes, path: Path | None = None) -> None:
    p = path or result_path()
    try:
        p.write_bytes(data)
    except OSError:
        pass  # no termination log outside Kubernetes (e.g. a read-only /dev): the stdout log has it too
