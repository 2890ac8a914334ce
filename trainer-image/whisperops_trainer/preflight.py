"""Preflight: before any data is prepared or any step trained, every URI of the spec is checked —
scheme supported, input readable (a ranged GET, a listing, a stat), output writable (a small probe
object written and deleted). A problem is invalid input (exit 2, not retried): the one-line message
names the field, the URI and the reason, and reaches FineTuneJob status through the termination
message."""

from __future__ import annotations

import json
import urllib.error
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import log, s3, uri
from .manifest import MANIFEST

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
PROBE_PREFIX = ".whisperops-preflight-"


class PreflightFailed(ValueError):
    """One or more URIs of the spec cannot be used; the message is one line."""


@dataclass(frozen=True)
class Target:
    field: str
    uri: str
    # model: a model artifact folder; file: one object; data: a manifest file, or a folder of *.jsonl
    # manifests when the URI ends in '/'; text-or-data: a text corpus or a manifest (or a folder of
    # them); folder: a folder of audio files; output: where the artifact is written
    kind: str


def targets(spec: dict[str, Any]) -> list[Target]:
    ds = spec.get("dataset", {})
    out = [Target("spec.baseModel.uri", spec["baseModel"]["uri"], "model")]
    if "uri" in ds:
        out.append(Target("spec.dataset.uri", ds["uri"], "data"))
    if ds.get("synthesize"):
        out.append(Target("spec.dataset.synthesize.corpusUri", ds["synthesize"]["corpusUri"], "file"))
    if ds.get("selection"):
        out.append(Target("spec.dataset.selection.referenceUri", ds["selection"]["referenceUri"], "file"))
    if ds.get("replay"):
        out.append(Target("spec.dataset.replay.uri", ds["replay"]["uri"], "text-or-data"))
    for i, e in enumerate(ds.get("evaluation", []) or []):
        out.append(Target(f"spec.dataset.evaluation[{i}].uri", e["uri"], "text-or-data"))
    noise = (spec.get("augmentation") or {}).get("noise") or {}
    if noise.get("sourceUri"):
        out.append(Target("spec.augmentation.noise.sourceUri", noise["sourceUri"], "folder"))
    teacher = ((spec.get("compression") or {}).get("distillation") or {}).get("teacherUri")
    if teacher:
        out.append(Target("spec.compression.distillation.teacherUri", teacher, "model"))
    out.append(Target("spec.output.uri", spec["output"]["uri"], "output"))
    return out


def _reason(e: BaseException) -> str:
    if isinstance(e, s3.S3Error):
        return str(e)
    if isinstance(e, FileNotFoundError):
        said = str(e.args[0]) if e.args else ""
        return said if said and "://" not in said and not said.startswith("/") else "not found"
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"unreachable ({e.reason})"
    if isinstance(e, (uri.UnsupportedUri, ValueError)):
        return str(e)
    return f"{type(e).__name__}: {e}"


def _pvc_mounted(u: str) -> str | None:
    if uri.scheme(u) != "pvc":
        return None
    claim = uri.pvc_claim(u)
    root = uri.pvc_root() / claim
    if not root.is_dir():
        return f"PersistentVolumeClaim {claim} is not mounted at {root}"
    return None


def _readable_file(u: str) -> None:
    sch = uri.scheme(u)
    if uri.is_local(u):
        p = uri.to_path(u)
        if not p.is_file():
            raise FileNotFoundError(u)
        with p.open("rb") as f:
            f.read(1)
    elif sch == "s3":
        s3.probe_read(u)
    elif sch in ("http", "https"):
        try:
            uri._http_open(u, "HEAD").close()
        except urllib.error.HTTPError as e:
            if e.code not in (403, 405, 501):  # some servers refuse HEAD: try a GET
                raise
            uri._http_open(u).close()
    else:
        raise uri.UnsupportedUri(f"unsupported URI scheme {sch}://")


def _listable_folder(u: str, suffixes: tuple[str, ...]) -> list[str]:
    if uri.is_local(u) and not uri.to_path(u).is_dir():
        raise FileNotFoundError(u)
    return uri.list_files(u if u.endswith("/") else u + "/", suffixes)


def _check_model(u: str) -> None:
    if uri.is_local(u):
        p = uri.to_path(u)
        if not p.is_dir():
            raise FileNotFoundError(u)
        if not (p / "config.json").is_file():
            raise ValueError("the model folder has no config.json")
        return
    if uri.scheme(u) not in ("s3", "http", "https"):
        raise uri.UnsupportedUri(f"unsupported URI scheme {uri.scheme(u)}://")
    man = uri.join(u if u.endswith("/") else u + "/", MANIFEST)
    try:
        doc = json.loads(uri.read_bytes(man))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no {MANIFEST} in the model folder") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{MANIFEST} is not JSON") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict) or "config.json" not in doc["files"]:
        raise ValueError(f"{MANIFEST} lists no files (or no config.json)")


def _check_output(u: str) -> None:
    sch = uri.scheme(u)
    if sch not in uri.WRITE_SCHEMES:
        if sch in ("http", "https"):
            raise uri.UnsupportedUri("http(s) is read-only: write the model to s3://, pvc:// or file://")
        raise uri.UnsupportedUri(f"unsupported URI scheme {sch}://")
    probe = PROBE_PREFIX + uuid.uuid4().hex[:12]
    if uri.is_local(u):
        dst = uri.to_path(u.rstrip("/") or "/")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            p = dst.parent / probe
            p.write_bytes(b"whisperops preflight\n")
            p.unlink()
        except PermissionError as e:
            raise PermissionError(f"cannot write to {dst.parent}") from e
        except OSError as e:
            raise ValueError(f"not writable: {e.strerror or e}") from e
        return
    folder = u if u.endswith("/") else u + "/"
    target = uri.join(folder, probe)
    try:
        s3.put_bytes(target, b"whisperops preflight\n")
    except s3.S3Error as e:
        raise s3.S3Error(e.kind, f"not writable: {e}") from e
    try:
        s3.delete(target)
    except (s3.S3Error, FileNotFoundError) as e:
        # written is what matters; a store that lets the trainer write but not delete keeps the probe
        log.warn("Preflight probe not deleted", uri=target, error=str(e))


def check(t: Target) -> str | None:
    """The problem with one target, or None."""
    sch = uri.scheme(t.uri)
    if sch not in uri.READ_SCHEMES:
        return f"unsupported URI scheme {sch}:// (file://, pvc://, s3:// and http(s):// are)"
    try:
        mounted = _pvc_mounted(t.uri)
        if mounted:
            return mounted
        if t.kind == "model":
            _check_model(t.uri)
        elif t.kind == "output":
            _check_output(t.uri)
        elif t.kind == "folder":
            if not _listable_folder(t.uri, AUDIO_SUFFIXES):
                return f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in the folder"
        elif t.kind in ("data", "text-or-data") and uri.is_folder(t.uri):
            _listable_folder(t.uri, (".jsonl",))  # an empty folder is no data, not an error
        else:
            _readable_file(t.uri)
    except Exception as e:  # noqa: BLE001 — every failure becomes the one-line reason
        return _reason(e)
    return None


def run(spec: dict[str, Any]) -> list[str]:
    """Checks every target (concurrently); raises PreflightFailed naming each problem."""
    ts = targets(spec)
    with ThreadPoolExecutor(max_workers=min(8, len(ts))) as pool:
        problems = list(pool.map(check, ts))
    bad = [f"{t.field} {t.uri}: {p}" for t, p in zip(ts, problems) if p]
    if bad:
        raise PreflightFailed("preflight: " + "; ".join(bad))
    schemes = sorted({uri.scheme(t.uri) or "file" for t in ts})
    log.info("Preflight passed", uris=len(ts), schemes=schemes,
             s3_endpoint=s3.settings()["endpoint"] if "s3" in schemes else None)
    return [t.uri for t in ts]
