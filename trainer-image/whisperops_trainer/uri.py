"""URIs of artifacts and datasets: file:// and plain paths (read/write), http(s):// (read)."""

from __future__ import annotations

import os
import shutil
import urllib.parse
import urllib.request
from pathlib import Path


class UnsupportedUri(ValueError):
    pass


def to_path(uri: str) -> Path:
    """Local path of a file:// URI or a plain path."""
    p = urllib.parse.urlparse(uri)
    if p.scheme == "file":
        return Path(urllib.parse.unquote(p.netloc + p.path) if p.netloc not in ("", "localhost") else urllib.parse.unquote(p.path))
    if p.scheme == "":
        return Path(uri)
    raise UnsupportedUri(f"not a local URI: {uri}")


def is_local(uri: str) -> bool:
    return urllib.parse.urlparse(uri).scheme in ("", "file")


def read_bytes(uri: str) -> bytes:
    if is_local(uri):
        return to_path(uri).read_bytes()
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri, timeout=60) as r:  # noqa: S310 (scheme checked)
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise FileNotFoundError(uri) from e
            raise
    raise UnsupportedUri(f"unsupported URI scheme: {uri}")


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def resolve_relative(base: str, ref: str) -> str:
    """Resolve `ref` (a path or URI in a manifest) against the manifest's location `base`."""
    if urllib.parse.urlparse(ref).scheme in ("file", "http", "https") or os.path.isabs(ref):
        return ref
    if is_local(base):
        return str(to_path(base).parent / ref)
    return urllib.parse.urljoin(base, ref)


def fetch_dir(uri: str, dest: Path, files: list[str]) -> Path:
    """Make a model folder available locally. Local URIs are used in place; http(s) folders are
    downloaded file by file (`files` relative to the folder)."""
    if is_local(uri):
        p = to_path(uri)
        if not p.is_dir():
            raise FileNotFoundError(f"model folder not found: {uri}")
        return p
    dest.mkdir(parents=True, exist_ok=True)
    base = uri.rstrip("/") + "/"
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read_bytes(urllib.parse.urljoin(base, rel)))
    return dest


def publish_dir(src: Path, uri: str) -> str:
    """Copy a finished artifact folder to `uri` (file:// only), atomically via a sibling temp dir."""
    if not is_local(uri):
        raise UnsupportedUri(f"output URI scheme not supported for writing: {uri} (use file://)")
    dst = to_path(uri)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    for p in [tmp, *tmp.rglob("*")]:  # readable by the agents that fetch it (safetensors writes 0600)
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    if dst.exists():
        old = dst.with_name(dst.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        dst.rename(old)
        tmp.rename(dst)
        shutil.rmtree(old)
    else:
        tmp.rename(dst)
    return "file://" + str(dst.resolve())
