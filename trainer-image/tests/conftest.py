import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PKG_ROOT = HERE.parent
REPO = PKG_ROOT.parent
sys.path.insert(0, str(PKG_ROOT))
MODEL_DIR = REPO / "models" / "tiny-whisper-synth"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return MODEL_DIR


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from whisperops_trainer import suites

    return suites.shared_data()


@pytest.fixture(scope="session")
def finance_eval():
    """16 held-out finance sentences spoken by espeak-ng (cached under $WHISPEROPS_CACHE/audio)."""
    from whisperops_trainer import suites

    return suites.eval_set("finance", 16)


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def _versitygw() -> Path | None:
    """The S3 gateway the cluster harness builds (test/cluster/versions.env), if it is built here."""
    cache = Path(os.environ.get("WHISPEROPS_CACHE") or Path.home() / ".cache" / "whisperops")
    version = "v1.8.0"
    env_file = REPO / "test" / "cluster" / "versions.env"
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            if line.startswith("VERSITYGW_VERSION="):
                version = line.split("=", 1)[1].strip()
    p = cache / "k8s" / f"versitygw-{version}" / "bin" / "versitygw"
    return p if p.is_file() else None


class S3Store:
    """A real S3 store on 127.0.0.1 (versitygw over a temp folder) and the AWS environment to reach it."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str):
        self.endpoint, self.access_key, self.secret_key, self.bucket = endpoint, access_key, secret_key, bucket

    def env(self, **over: str) -> dict[str, str]:
        e = {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
             "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}
        e.update(over)
        return e

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required"))

    def keys(self, prefix: str = "") -> list[str]:
        out = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        return sorted(o["Key"] for o in out)


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory):
    """versitygw on a free 127.0.0.1 port with one bucket; skipped where the harness has not built it."""
    import secrets
    import socket
    import subprocess
    import time
    import urllib.request

    binary = _versitygw()
    if binary is None:
        pytest.skip("versitygw is not built (bash scripts/setup/cluster.sh builds it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp("s3-data")
    access, secret = "WO" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ROOT_ACCESS_KEY": access, "ROOT_SECRET_KEY": secret}
    proc = subprocess.Popen([str(binary), "--port", f"127.0.0.1:{port}", "--region", "us-east-1", "--health", "/health",
                             "--quiet", "posix", str(data)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("versitygw did not start")
            time.sleep(0.1)
        store = S3Store(endpoint, access, secret, "trainer-test")
        store.client().create_bucket(Bucket=store.bucket)
        yield store
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture()
def s3_env(s3_store, monkeypatch):
    """The store's AWS environment in this process (boto3 reads it)."""
    for k in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    for k, v in s3_store.env().items():
        monkeypatch.setenv(k, v)
    return s3_store
