"""URIs of artifacts and datasets.

  file:// and plain paths   read and write (a path inside the container)
  pvc://CLAIM/PATH          read and write: PATH on the PersistentVolumeClaim CLAIM, which the operator
                            mounts at $WHISPEROPS_PVC_ROOT/CLAIM (default /mnt/whisperops/pvc/CLAIM),
                            read-only unless the claim holds spec.output.uri
  s3://BUCKET/KEY           read and write (s3.py: boto3, the standard AWS environment)
  http(s)://                read only (no listing: folders must be named file by file)

A URI ending in '/' is a folder. Missing objects raise FileNotFoundError everywhere; S3 access
problems raise s3.S3Error.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

from . import s3
from .manifest import sha256_file

DEFAULT_PVC_ROOT = "/mnt/whisperops/pvc"
READ_SCHEMES = ("", "file", "pvc", "s3", "http", "https")
WRITE_SCHEMES = ("", "file", "pvc", "s3")
DOWNLOAD_WORKERS = 8


class UnsupportedUri(ValueError):
    pass


class ChecksumMismatch(ValueError):
    pass


def scheme(uri: str) -> str:
    return urllib.parse.urlparse(uri).scheme


def pvc_root() -> Path:
    return Path(os.environ.get("WHISPEROPS_PVC_ROOT") or DEFAULT_PVC_ROOT)


def pvc_claim(uri: str) -> str:
    return urllib.parse.urlparse(uri).netloc


def to_path(uri: str) -> Path:
    """Local path of a file:// or pvc:// URI or a plain path.

    file:///p and file://localhost/p are the path p; a file:// URI naming another host (file://host/p),
    or without the // (file:p), is refused — as the CRD patterns and the edge agent refuse it
    (test/fixtures/file-uris.json holds the shared cases)."""
    p = urllib.parse.urlparse(uri)
    if p.scheme == "file":
        if not uri.startswith("file://") or p.netloc not in ("", "localhost") or not p.path.startswith("/"):
            raise UnsupportedUri(f"file:// URI must be file:///path or file://localhost/path (no other host): {uri}")
        return Path(urllib.parse.unquote(p.path))
    if p.scheme == "pvc":
        if not p.netloc:
            raise UnsupportedUri(f"pvc:// URI without a claim name: {uri}")
        rel = urllib.parse.unquote(p.path).lstrip("/")
        if ".." in Path(rel).parts:
            raise UnsupportedUri(f"pvc:// path leaves its claim: {uri}")
        return pvc_root() / p.netloc / rel
    if p.scheme == "":
        return Path(uri)
    raise UnsupportedUri(f"not a local URI: {uri}")


def is_local(uri: str) -> bool:
    return scheme(uri) in ("", "file", "pvc")


def is_folder(uri: str) -> bool:
    return uri.endswith("/")


def _http_open(uri: str, method: str = "GET"):
    req = urllib.request.Request(uri, method=method)
    try:
        return urllib.request.urlopen(req, timeout=60)  # noqa: S310 (scheme checked by the callers)
    except urllib.error.HTTPError as e:
        if e.code in (404, 410):
            raise FileNotFoundError(uri) from e
        raise


def read_bytes(uri: str) -> bytes:
    sch = scheme(uri)
    if is_local(uri):
        return to_path(uri).read_bytes()
    if sch in ("http", "https"):
        with _http_open(uri) as r:
            return r.read()
    if sch == "s3":
        try:
            return s3.read_bytes(uri)
        except FileNotFoundError as e:
            raise FileNotFoundError(uri) from e
    raise UnsupportedUri(f"unsupported URI scheme: {uri}")


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def join(folder: str, rel: str) -> str:
    """URI of `rel` (a relative path with '/') inside the folder URI `folder`."""
    if is_local(folder) and scheme(folder) == "":
        return str(Path(folder) / rel)
    return folder.rstrip("/") + "/" + rel.lstrip("/")


def resolve_relative(base: str, ref: str) -> str:
    """Resolve `ref` (a path or URI in a manifest) against the manifest's location `base`."""
    if scheme(ref) in ("file", "http", "https", "s3", "pvc") or os.path.isabs(ref):
        return ref
    sch = scheme(base)
    if sch in ("", "file"):
        return str(to_path(base).parent / ref)
    if sch in ("http", "https"):
        return urllib.parse.urljoin(base, ref)
    # s3:// and pvc:// (urljoin does not know them): the manifest's folder + ref, '..' resolved
    p = urllib.parse.urlparse(base)
    path = posixpath.normpath(posixpath.join(posixpath.dirname(p.path) or "/", ref))
    return f"{p.scheme}://{p.netloc}{path}"


def list_files(folder: str, suffixes: Iterable[str] = ()) -> list[str]:
    """URIs of the files under a folder URI (recursively, sorted) whose names end with one of `suffixes`
    (case-insensitive; all files when empty). A missing local folder raises FileNotFoundError."""
    suf = tuple(s.lower() for s in suffixes)
    keep = (lambda name: name.lower().endswith(suf)) if suf else (lambda name: True)
    sch = scheme(folder)
    if is_local(folder):
        root = to_path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"folder not found: {folder}")
        return [str(p) if sch == "" else join(folder, p.relative_to(root).as_posix())
                for p in sorted(root.rglob("*")) if p.is_file() and keep(p.name)]
    if sch == "s3":
        bucket, key = s3.parse(folder)
        return [s3.uri_of(bucket, k) for k, _ in s3.list_keys(folder)
                if not k.endswith("/") and keep(k.rsplit("/", 1)[-1])]
    if sch in ("http", "https"):
        raise UnsupportedUri(f"an http(s) folder cannot be listed: {folder} (use s3:// or pvc://)")
    raise UnsupportedUri(f"unsupported URI scheme: {folder}")


def download(uri: str, dest: Path) -> int:
    """Copy the file at `uri` to `dest` (streamed; written under a temporary name, then renamed)."""
    sch = scheme(uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if sch == "s3":
        try:
            return s3.download(uri, dest)
        except FileNotFoundError as e:
            raise FileNotFoundError(uri) from e
    tmp = dest.with_name(dest.name + ".part")
    if is_local(uri):
        shutil.copyfile(to_path(uri), tmp)
    elif sch in ("http", "https"):
        with _http_open(uri) as r, tmp.open("wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    else:
        raise UnsupportedUri(f"unsupported URI scheme: {uri}")
    tmp.replace(dest)
    return dest.stat().st_size


def download_many(pairs: list[tuple[str, Path]], workers: int = DOWNLOAD_WORKERS) -> int:
    """Download (uri, dest) pairs concurrently; returns the bytes fetched. The first failure is raised."""
    if not pairs:
        return 0
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pairs)))) as pool:
        return sum(pool.map(lambda p: download(p[0], p[1]), pairs))


def fetch_dir(uri: str, dest: Path, files: dict[str, dict[str, Any]] | list[str]) -> Path:
    """Make a model folder available locally. Local URIs are used in place; remote folders are
    downloaded file by file (`files`: relative paths, or {path: {sha256, bytes}} from a model
    manifest — then every file is checked and ChecksumMismatch raised on a difference)."""
    if is_local(uri):
        p = to_path(uri)
        if not p.is_dir():
            raise FileNotFoundError(f"model folder not found: {uri}")
        return p
    dest.mkdir(parents=True, exist_ok=True)
    rels = list(files)
    download_many([(join(uri, rel), dest / rel) for rel in rels])
    if isinstance(files, dict):
        for rel, meta in files.items():
            got = dest / rel
            if "bytes" in meta and got.stat().st_size != int(meta["bytes"]):
                raise ChecksumMismatch(f"{join(uri, rel)}: {got.stat().st_size} bytes, the manifest says {meta['bytes']}")
            if "sha256" in meta and sha256_file(got) != meta["sha256"]:
                raise ChecksumMismatch(f"{join(uri, rel)}: sha256 differs from the model manifest")
    return dest


def _publish_local(src: Path, uri: str) -> Path:
    dst = to_path(uri.rstrip("/") if uri != "/" else uri)
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
    return dst


def publish_dir(src: Path, uri: str, manifest_name: str = "model-manifest.json") -> tuple[str, int]:
    """Copy a finished artifact folder to `uri`; returns (the artifact's URI, bytes written).

    file:// and pvc://: copied to a sibling `<name>.partial` folder, then renamed into place.
    s3://: an existing manifest is deleted first (no reader sees an old manifest over new files), every
    other file is uploaded, the manifest last — a reader that finds the manifest finds every file."""
    sch = scheme(uri)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    if sch in ("", "file"):
        return "file://" + str(_publish_local(src, uri).resolve()), size
    if sch == "pvc":
        _publish_local(src, uri)
        return uri.rstrip("/"), size
    if sch == "s3":
        folder = uri if uri.endswith("/") else uri + "/"
        try:
            s3.delete(join(folder, manifest_name))
        except FileNotFoundError:
            pass
        rest = [p for p in files if p.relative_to(src).as_posix() != manifest_name]
        with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
            list(pool.map(lambda p: s3.upload(p, join(folder, p.relative_to(src).as_posix())), rest))
        if (src / manifest_name).is_file():
            s3.upload(src / manifest_name, join(folder, manifest_name))
        return folder, size
    raise UnsupportedUri(f"output URI scheme not supported for writing: {uri} (use s3://, pvc:// or file://)")
