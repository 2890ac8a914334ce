"""model-manifest.json: version, parent, sha256 and size of every file, quantization, metrics."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

MANIFEST = "model-manifest.json"
SCHEMA_VERSION = 1


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_table(model_dir: Path) -> dict[str, dict[str, Any]]:
    """{relative posix path: {sha256, bytes}} for every file under model_dir except the manifest."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(model_dir.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not p.name.startswith("."):
            rel = p.relative_to(model_dir).as_posix()
            out[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out


def write_manifest(model_dir: Path, *, name: str, version: str, parent_version: str | None,
                   quantization: str, metrics: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """Write model-manifest.json; return its sha256 (the artifact's identity for the operator)."""
    files = file_table(model_dir)
    onnx: dict[str, str] = {}
    for key, fname in (("encoder", "onnx/encoder_model.onnx"), ("decoder", "onnx/decoder_model_merged.onnx"),
                       ("encoderQuantized", "onnx/encoder_model_quantized.onnx"),
                       ("decoderQuantized", "onnx/decoder_model_merged_quantized.onnx"),
                       ("encoderFp16", "onnx/encoder_model_fp16.onnx"),
                       ("decoderFp16", "onnx/decoder_model_merged_fp16.onnx"),
                       ("roleHead", "onnx/role_head.onnx")):
        if fname in files:
            onnx[key] = fname
    doc: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "parentVersion": parent_version,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "format": "hf-whisper+onnx",
        "quantization": quantization,
        "onnx": onnx,
        "metrics": metrics,
        "files": files,
    }
    if extra:
        doc.update(extra)
    data = (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode()
    (model_dir / MANIFEST).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def verify(model_dir: Path) -> list[str]:
    """Files whose sha256 or presence does not match the manifest (empty list = intact)."""
    doc = json.loads((model_dir / MANIFEST).read_text())
    bad = []
    for rel, meta in doc["files"].items():
        p = model_dir / rel
        if not p.is_file() or sha256_file(p) != meta["sha256"]:
            bad.append(rel)
    return bad
