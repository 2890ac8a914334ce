"""s3:// URIs with boto3: read, list, download, upload, delete, and S3 errors said in one line.

Settings come from the standard AWS environment, as the edge agent reads them (a FineTuneJob's
spec.artifactCredentials Secret reaches the trainer container as environment variables):
AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1; AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, for an
S3-compatible store — addressed path-style then, since such stores rarely serve bucket sub-domains;
AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else boto3's default chain (web
identity, instance role). Secrets never appear in messages: only error codes and URIs do.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

DEFAULT_REGION = "us-east-1"
# 64 MiB parts: a 6 GB whisper-large safetensors file is about 100 parts, the tiny model's files one each.
PART_BYTES = 64 * 1024 * 1024

_lock = threading.Lock()
_client: Any = None
_client_env: tuple[str, ...] | None = None

# S3 error codes that mean "these credentials may not do this" (versitygw answers an unknown access
# key with 404 XAdminUserNotFound where AWS answers 403 InvalidAccessKeyId).
DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "XAdminUserNotFound",
          "InvalidToken", "ExpiredToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
          "InvalidSecurity", "RequestTimeTooSkewed", "Unauthorized"}
MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Error(Exception):
    """An S3 request failed for a reason other than a missing object (denied, unreachable, no bucket).
    `kind` is one of: denied, unreachable, no-bucket, no-credentials, error."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _env(name: str) -> str | None:
    v = os.environ.get(name)
    return v if v else None


def settings() -> dict[str, Any]:
    """Region, endpoint and addressing style the environment asks for (credentials are boto3's)."""
    endpoint = _env("AWS_ENDPOINT_URL_S3") or _env("AWS_ENDPOINT_URL")
    return {"region": _env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or DEFAULT_REGION,
            "endpoint": endpoint, "path_style": endpoint is not None}


def client() -> Any:
    """One boto3 S3 client per process (clients are thread-safe), made anew if the AWS environment changes."""
    global _client, _client_env
    keys = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    env = tuple(os.environ.get(k, "") for k in keys)
    with _lock:
        if _client is None or env != _client_env:
            import boto3
            from botocore.config import Config

            s = settings()
            cfg = Config(
                region_name=s["region"],
                signature_version="s3v4",
                s3={"addressing_style": "path" if s["path_style"] else "auto"},
                # few quick retries: an unreachable store is reported at preflight within seconds
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=16,
                # botocore >= 1.36 adds CRC checksums (aws-chunked trailers) to every upload by default;
                # several S3-compatible stores refuse those. Artifacts carry their own sha256 in the manifest.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            _client = boto3.session.Session().client("s3", endpoint_url=s["endpoint"], config=cfg)
            _client_env = env
        return _client


def parse(uri: str) -> tuple[str, str]:
    """s3://bucket/key → (bucket, key); the key keeps a trailing '/' (a folder)."""
    p = urllib.parse.urlparse(uri)
    if p.scheme != "s3" or not p.netloc:
        raise ValueError(f"not an s3://bucket/key URI: {uri}")
    return p.netloc, urllib.parse.unquote(p.path.lstrip("/"))


def folder_key(key: str) -> str:
    return key if key == "" or key.endswith("/") else key + "/"


def describe(err: BaseException) -> S3Error | FileNotFoundError:
    """A boto3/botocore exception as S3Error (kind + one-line reason) or FileNotFoundError."""
    from botocore import exceptions as bx

    if isinstance(err, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return S3Error("no-credentials", "no S3 credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset: "
                                         "spec.artifactCredentials.secretRef names the Secret that holds them)")
    if isinstance(err, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError,
                        bx.ReadTimeoutError, bx.ProxyConnectionError)):
        where = settings()["endpoint"] or "AWS S3"
        return S3Error("unreachable", f"object store unreachable at {where} ({type(err).__name__})")
    if isinstance(err, bx.ClientError):
        e = err.response.get("Error", {}) if hasattr(err, "response") else {}
        code = str(e.get("Code") or "")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") if hasattr(err, "response") else None
        detail = f"{code} (HTTP {status})" if status else code
        if code == "NoSuchBucket":
            return S3Error("no-bucket", f"bucket does not exist ({detail})")
        if code in DENIED or status == 403:
            return S3Error("denied", f"access denied: {detail} — check the credentials and the bucket policy")
        if code in MISSING:
            return FileNotFoundError(f"no such object ({detail})")
        return S3Error("error", f"S3 error {detail}")
    if isinstance(err, bx.BotoCoreError):
        return S3Error("error", f"{type(err).__name__}: {err}")
    return S3Error("error", f"{type(err).__name__}: {err}")


def _call(fn, *args: Any, **kwargs: Any) -> Any:
    from botocore import exceptions as bx

    try:
        return fn(*args, **kwargs)
    except (bx.BotoCoreError, bx.ClientError) as e:
        raise describe(e) from e


def read_bytes(uri: str) -> bytes:
    bucket, key = parse(uri)
    r = _call(client().get_object, Bucket=bucket, Key=key)
    with r["Body"] as body:
        return body.read()


def probe_read(uri: str) -> None:
    """Readable? A one-byte ranged GET (GetObject permission only; GET errors carry a code, HEAD's do not)."""
    from botocore import exceptions as bx

    bucket, key = parse(uri)
    try:
        r = client().get_object(Bucket=bucket, Key=key, Range="bytes=0-0")
        r["Body"].close()
    except bx.ClientError as e:
        if e.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty object exists
            return
        raise describe(e) from e
    except bx.BotoCoreError as e:
        raise describe(e) from e


def list_keys(uri: str) -> Iterator[tuple[str, int]]:
    """(key, size) of every object under the folder URI (recursively), in key order."""
    bucket, key = parse(uri)
    prefix = folder_key(key)
    token: str | None = None
    while True:
        kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kw["ContinuationToken"] = token
        page = _call(client().list_objects_v2, **kw)
        for o in page.get("Contents", []) or []:
            yield o["Key"], int(o.get("Size", 0))
        if not page.get("IsTruncated"):
            return
        token = page.get("NextContinuationToken")


def uri_of(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=4)


def download(uri: str, dest: Path) -> int:
    """Object → file (multipart for large objects), written to a temporary name then renamed."""
    bucket, key = parse(uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    _call(client().download_file, bucket, key, str(tmp), Config=_transfer_config())
    tmp.replace(dest)
    return dest.stat().st_size


def upload(path: Path, uri: str) -> int:
    bucket, key = parse(uri)
    _call(client().upload_file, str(path), bucket, key, Config=_transfer_config())
    return path.stat().st_size


def put_bytes(uri: str, data: bytes) -> None:
    bucket, key = parse(uri)
    _call(client().put_object, Bucket=bucket, Key=key, Body=data)


def delete(uri: str) -> None:
    bucket, key = parse(uri)
    _call(client().delete_object, Bucket=bucket, Key=key)
