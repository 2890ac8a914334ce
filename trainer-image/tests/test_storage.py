"""Storage: s3:// (against a real local S3 store, versitygw), pvc:// and file:// URIs, manifests
in folders, the base model downloaded and checked, the artifact published manifest-last, and the
preflight that turns every unusable URI into exit 2 with one line naming it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from whisperops_trainer import manifest, pipeline, preflight, s3, uri
from whisperops_trainer.data import DatasetError, read_manifests
from whisperops_trainer.jobspec import InvalidJob

PKG = Path(__file__).resolve().parents[1]
BASE_PREFIX = "models/tiny-whisper-synth/tiny-whisper-synth-1.0.0/"


def _put(store, key: str, body: bytes | str) -> None:
    store.client().put_object(Bucket=store.bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


@pytest.fixture(scope="session")
def base_in_s3(s3_store, model_dir):
    """The embedded model's HF files and manifest (not its ONNX exports) under BASE_PREFIX."""
    doc = json.loads((model_dir / manifest.MANIFEST).read_text())
    for rel in [f for f in doc["files"] if not f.startswith("onnx/")] + [manifest.MANIFEST]:
        _put(s3_store, BASE_PREFIX + rel, (model_dir / rel).read_bytes())
    return f"s3://{s3_store.bucket}/{BASE_PREFIX}"


@pytest.mark.parametrize("base,ref,want", [
    ("s3://b/feedback/agent-1/manifest.jsonl", "a/1.wav", "s3://b/feedback/agent-1/a/1.wav"),
    ("s3://b/feedback/agent-1/manifest.jsonl", "../shared/2.wav", "s3://b/feedback/shared/2.wav"),
    ("s3://b/m.jsonl", "x.wav", "s3://b/x.wav"),
    ("s3://b/f/m.jsonl", "s3://other/y.wav", "s3://other/y.wav"),
    ("pvc://data/sets/m.jsonl", "a.wav", "pvc://data/sets/a.wav"),
    ("https://h/sets/m.jsonl", "a.wav", "https://h/sets/a.wav"),
    ("file:///d/m.jsonl", "a.wav", "/d/a.wav"),
    ("/d/m.jsonl", "sub/a.wav", "/d/sub/a.wav"),
    ("s3://b/f/m.jsonl", "/abs/a.wav", "/abs/a.wav"),
])
def test_audio_paths_resolve_against_their_manifest(base, ref, want):
    assert uri.resolve_relative(base, ref) == want


def test_pvc_uris_map_to_the_claims_mount(monkeypatch, tmp_path):
    monkeypatch.setenv("WHISPEROPS_PVC_ROOT", str(tmp_path))
    assert uri.to_path("pvc://models/out/finance") == tmp_path / "models" / "out" / "finance"
    assert uri.is_local("pvc://models/x") and uri.pvc_claim("pvc://models/x") == "models"
    with pytest.raises(uri.UnsupportedUri):
        uri.to_path("pvc://models/../etc/passwd")
    with pytest.raises(uri.UnsupportedUri):
        uri.to_path("pvc:///no-claim")


def test_s3_settings_follow_the_aws_environment(monkeypatch):
    for k in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    assert s3.settings() == {"region": "us-east-1", "endpoint": None, "path_style": False}
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert s3.settings() == {"region": "eu-west-1", "endpoint": "http://127.0.0.1:9000", "path_style": True}
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9001")
    assert s3.settings() == {"region": "eu-central-1", "endpoint": "http://127.0.0.1:9001", "path_style": True}


def test_s3_read_list_and_download(s3_env, tmp_path):
    b = s3_env.bucket
    _put(s3_env, "rw/a.txt", "alpha\n")
    _put(s3_env, "rw/sub/b.WAV", b"RIFF")
    _put(s3_env, "rw/sub/deeper/c.wav", b"RIFF2")
    _put(s3_env, "rwx/not-under.wav", b"x")
    assert uri.read_text(f"s3://{b}/rw/a.txt") == "alpha\n"
    assert uri.list_files(f"s3://{b}/rw/", (".wav",)) == [f"s3://{b}/rw/sub/b.WAV", f"s3://{b}/rw/sub/deeper/c.wav"]
    assert uri.list_files(f"s3://{b}/rw") == [f"s3://{b}/rw/a.txt", f"s3://{b}/rw/sub/b.WAV", f"s3://{b}/rw/sub/deeper/c.wav"]
    assert uri.download(f"s3://{b}/rw/sub/deeper/c.wav", tmp_path / "c.wav") == 5
    assert (tmp_path / "c.wav").read_bytes() == b"RIFF2" and not (tmp_path / "c.wav.part").exists()
    with pytest.raises(FileNotFoundError):
        uri.read_bytes(f"s3://{b}/rw/missing.txt")
    with pytest.raises(FileNotFoundError):
        uri.download(f"s3://{b}/rw/missing.txt", tmp_path / "m")
    with pytest.raises(s3.S3Error) as err:
        uri.read_bytes("s3://no-such-bucket-here/x")
    assert err.value.kind == "no-bucket"


def test_a_folder_uri_reads_every_manifest_under_it(s3_env):
    b = s3_env.bucket
    _put(s3_env, "feedback/agent-a/2026-01-01.jsonl",
         json.dumps({"audio": "clips/1.wav", "text": "buy the bond", "scenario": "finance", "requestId": "r1",
                     "model_version": "v1"}) + "\n" + json.dumps({"audio": "clips/2.wav", "text": "sell"}) + "\n")
    _put(s3_env, "feedback/agent-b/deep/x.jsonl", json.dumps({"audio": "3.wav", "text": "hold", "scenario": "finance"}) + "\n")
    _put(s3_env, "feedback/agent-b/empty.jsonl", "")
    _put(s3_env, "feedback/agent-b/notes.txt", "not a manifest")
    got = read_manifests(f"s3://{b}/feedback/", "general")
    assert [(s.audio, s.text, s.scenario) for s in got] == [
        (f"s3://{b}/feedback/agent-a/clips/1.wav", "buy the bond", "finance"),
        (f"s3://{b}/feedback/agent-a/clips/2.wav", "sell", "general"),
        (f"s3://{b}/feedback/agent-b/deep/3.wav", "hold", "finance"),
    ]
    assert read_manifests(f"s3://{b}/no-feedback-yet/", "finance") == []
    _put(s3_env, "broken/m.jsonl", "{not json\n")
    with pytest.raises(DatasetError, match=r"broken/m.jsonl:1: not JSON"):
        read_manifests(f"s3://{b}/broken/")


def test_a_local_folder_of_manifests(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "m.jsonl").write_text(json.dumps({"audio": "x.wav", "text": "t", "scenario": "s"}) + "\n")
    got = read_manifests(f"file://{tmp_path}/", "s")
    assert [s.audio for s in got] == [str(tmp_path / "a" / "x.wav")]
    with pytest.raises(DatasetError, match="folder not found"):
        read_manifests(f"file://{tmp_path}/none/")


def test_the_base_model_is_downloaded_and_checked(s3_env, base_in_s3, model_dir, tmp_path):
    sha = manifest.sha256_file(model_dir / manifest.MANIFEST)
    d, version = pipeline.base_model({"baseModel": {"uri": base_in_s3, "sha256": sha}}, tmp_path)
    assert version == "tiny-whisper-synth-1.0.0"
    assert (d / "model.safetensors").read_bytes() == (model_dir / "model.safetensors").read_bytes()
    assert not (d / "onnx").exists()
    assert manifest.sha256_file(d / manifest.MANIFEST) == sha
    with pytest.raises(InvalidJob, match="does not match spec.baseModel.sha256"):
        pipeline.base_model({"baseModel": {"uri": base_in_s3, "sha256": "0" * 64}}, tmp_path / "x")
    with pytest.raises(InvalidJob, match="base model not found"):
        pipeline.base_model({"baseModel": {"uri": f"s3://{s3_env.bucket}/models/none/"}}, tmp_path / "y")


def test_a_damaged_file_of_the_base_model_is_refused(s3_env, model_dir, tmp_path):
    prefix = "models/damaged/"
    doc = json.loads((model_dir / manifest.MANIFEST).read_text())
    for rel in [f for f in doc["files"] if not f.startswith("onnx/")] + [manifest.MANIFEST]:
        body = (model_dir / rel).read_bytes()
        _put(s3_env, prefix + rel, body.replace(b"whisper", b"WHISPER") if rel == "config.json" else body)
    with pytest.raises(InvalidJob, match=r"base model damaged: .*config.json: sha256 differs"):
        pipeline.base_model({"baseModel": {"uri": f"s3://{s3_env.bucket}/{prefix}"}}, tmp_path)


def _artifact(tmp_path: Path) -> Path:
    src = tmp_path / "model"
    (src / "onnx").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "onnx" / "encoder_model.onnx").write_bytes(b"\0" * 1000)
    manifest.write_manifest(src, name="m", version="m-1", parent_version=None, quantization="none", metrics={})
    return src


def test_s3_publish_writes_every_file_then_the_manifest(s3_env, tmp_path, monkeypatch):
    b = s3_env.bucket
    _put(s3_env, "out/m/model-manifest.json", "{\"old\": true}")  # a previous attempt's manifest
    src = _artifact(tmp_path)
    order: list[str] = []
    real_upload, real_delete = s3.upload, s3.delete

    def upload(path, u):
        order.append("put " + u.rsplit("/out/m/", 1)[1])
        return real_upload(path, u)

    def delete(u):
        order.append("delete " + u.rsplit("/out/m/", 1)[1])
        return real_delete(u)

    monkeypatch.setattr(s3, "upload", upload)
    monkeypatch.setattr(s3, "delete", delete)
    got, size = uri.publish_dir(src, f"s3://{b}/out/m")
    assert got == f"s3://{b}/out/m/"
    assert size == sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert order[0] == "delete model-manifest.json" and order[-1] == "put model-manifest.json"
    assert sorted(order[1:-1]) == ["put config.json", "put onnx/encoder_model.onnx"]
    assert s3_env.keys("out/m/") == ["out/m/config.json", "out/m/model-manifest.json", "out/m/onnx/encoder_model.onnx"]
    assert uri.read_bytes(f"{got}model-manifest.json") == (src / manifest.MANIFEST).read_bytes()


def test_pvc_publish_is_a_rename_into_place(tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPEROPS_PVC_ROOT", str(tmp_path / "mnt"))
    (tmp_path / "mnt" / "models").mkdir(parents=True)
    got, _ = uri.publish_dir(_artifact(tmp_path), "pvc://models/runs/m")
    assert got == "pvc://models/runs/m"
    out = tmp_path / "mnt" / "models" / "runs" / "m"
    assert manifest.verify(out) == [] and not (tmp_path / "mnt" / "models" / "runs" / "m.partial").exists()


def _spec(**over):
    spec = {"baseModel": {"uri": "file:///nowhere"}, "dataset": {"synthesize": {"corpusUri": "file:///nowhere.txt", "scenario": "x"}},
            "output": {"uri": "file:///nowhere-out"}}
    spec.update(over)
    return spec


def test_preflight_passes_readable_inputs_and_a_writable_output(s3_env, base_in_s3, tmp_path):
    b = s3_env.bucket
    _put(s3_env, "corpora/finance.txt", "buy the bond\n")
    _put(s3_env, "noise/cafe.wav", b"RIFF")
    spec = _spec(baseModel={"uri": base_in_s3},
                 dataset={"uri": f"s3://{b}/nothing-yet/", "synthesize": {"corpusUri": f"s3://{b}/corpora/finance.txt", "scenario": "finance"},
                          "replay": {"uri": f"s3://{b}/corpora/finance.txt"},
                          "evaluation": [{"scenario": "finance", "uri": f"s3://{b}/corpora/finance.txt"}]},
                 augmentation={"noise": {"sourceUri": f"s3://{b}/noise"}},
                 output={"uri": f"s3://{b}/out/preflight-ok/"})
    assert len(preflight.run(spec)) == 7
    assert s3_env.keys("out/preflight-ok/") == []  # the probe object was deleted


@pytest.mark.parametrize("what,env,expect", [
    ("a wrong secret", {"AWS_SECRET_ACCESS_KEY": "wrong" * 8}, r"access denied: SignatureDoesNotMatch"),
    ("an unknown access key", {"AWS_ACCESS_KEY_ID": "WONOSUCHKEY000000000"}, r"access denied: XAdminUserNotFound"),
    ("a store that is not there", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, r"object store unreachable at http://127\.0\.0\.1:9"),
])
def test_preflight_names_the_uri_and_why_on_bad_credentials_or_no_store(s3_env, base_in_s3, monkeypatch, what, env, expect):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    spec = _spec(baseModel={"uri": base_in_s3}, output={"uri": f"s3://{s3_env.bucket}/out/x/"})
    with pytest.raises(preflight.PreflightFailed) as err:
        preflight.run(spec)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("preflight: spec.baseModel.uri s3://")
    assert f"spec.output.uri s3://{s3_env.bucket}/out/x/: not writable: " in msg
    import re
    assert re.search(expect, msg), msg
    assert s3_env.secret_key not in msg


def test_preflight_problems_one_by_one(s3_env, base_in_s3, tmp_path, monkeypatch):
    b = s3_env.bucket
    monkeypatch.setenv("WHISPEROPS_PVC_ROOT", str(tmp_path / "mnt"))
    (tmp_path / "empty-noise").mkdir()
    cases = [
        ({"baseModel": {"uri": f"s3://{b}/models/none/"}}, f"spec.baseModel.uri s3://{b}/models/none/: no model-manifest.json"),
        ({"dataset": {"uri": f"s3://{b}/none.jsonl"}}, f"spec.dataset.uri s3://{b}/none.jsonl: no such object"),
        ({"dataset": {"uri": "gs://b/m.jsonl"}}, "spec.dataset.uri gs://b/m.jsonl: unsupported URI scheme gs://"),
        ({"output": {"uri": "https://h/models/x"}}, "spec.output.uri https://h/models/x: http(s) is read-only"),
        ({"output": {"uri": "pvc://models/x"}}, f"spec.output.uri pvc://models/x: PersistentVolumeClaim models is not mounted at {tmp_path}/mnt/models"),
        ({"output": {"uri": f"s3://no-such-bucket-{os.getpid()}/x/"}}, "not writable: bucket does not exist"),
        ({"augmentation": {"noise": {"sourceUri": f"file://{tmp_path}/empty-noise"}}}, "no audio files (.wav, .flac, .ogg) in the folder"),
        ({"augmentation": {"noise": {"sourceUri": "https://h/noise/"}}}, "an http(s) folder cannot be listed"),
    ]
    good = {"baseModel": {"uri": base_in_s3}, "dataset": {"uri": f"s3://{b}/nothing-yet/"}, "output": {"uri": f"file://{tmp_path}/out/m"}}
    preflight.run(good)
    for over, expect in cases:
        with pytest.raises(preflight.PreflightFailed) as err:
            preflight.run({**good, **over})
        assert expect in str(err.value), (over, str(err.value))


def test_run_exits_2_at_preflight_before_any_training(s3_store, base_in_s3, tmp_path):
    job = {"apiVersion": "whisperops.dev/v1alpha1", "kind": "FineTuneJob",
           "metadata": {"name": "pf", "namespace": "speech", "uid": "0f1e2d3c-aaaa-bbbb-cccc-000000000001", "generation": 1},
           "spec": {"baseModel": {"uri": base_in_s3},
                    "dataset": {"synthesize": {"corpusUri": f"s3://{s3_store.bucket}/corpora/none.txt", "scenario": "finance"}},
                    "output": {"uri": f"s3://{s3_store.bucket}/out/pf/"}}}
    f = tmp_path / "job.json"
    f.write_text(json.dumps(job))
    env = dict(os.environ, **s3_store.env(AWS_SECRET_ACCESS_KEY="not-the-secret-at-all"), WHISPEROPS_JOB_FILE=str(f),
               WHISPEROPS_RESULT_FILE=str(tmp_path / "term"), WHISPEROPS_WORK_DIR=str(tmp_path / "work"), PYTHONPATH=str(PKG))
    p = subprocess.run([sys.executable, "-m", "whisperops_trainer", "run"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    err = json.loads((tmp_path / "term").read_text())["error"]
    assert err["reason"] == "PreflightFailed"
    assert err["message"].startswith(f"preflight: spec.baseModel.uri {base_in_s3}: access denied: SignatureDoesNotMatch")
    logs = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert [r["stage"] for r in logs if r["level"] == "error"] == ["preflight"]
    assert not any(r["stage"] in ("data", "train") for r in logs)
    assert not (tmp_path / "work").exists()
    # the CLI's own preflight command says the same on stderr
    p2 = subprocess.run([sys.executable, "-m", "whisperops_trainer", "preflight", "--job", str(f)], capture_output=True,
                        text=True, env=env, timeout=300)
    assert p2.returncode == 2 and "SignatureDoesNotMatch" in p2.stderr


def test_a_small_run_reads_everything_from_s3_and_publishes_there(s3_env, base_in_s3, shared_data, tmp_path):
    """The smallest real run: 4 synthesized utterances, 1 step, no ONNX; base model, corpus and
    output on S3, the artifact intact there and the result pointing at it."""
    b = s3_env.bucket
    lines = (shared_data / "domain" / "finance_corpus.txt").read_text().splitlines()[:6]
    _put(s3_env, "corpora/finance-6.txt", "\n".join(lines) + "\n")
    job = {"apiVersion": "whisperops.dev/v1alpha1", "kind": "FineTuneJob",
           "metadata": {"name": "s3-run", "namespace": "speech", "uid": "0f1e2d3c-aaaa-bbbb-cccc-000000000002", "generation": 1},
           "spec": {"baseModel": {"uri": base_in_s3, "version": "tiny-whisper-synth-1.0.0"},
                    "dataset": {"scenario": "finance",
                                "synthesize": {"corpusUri": f"s3://{b}/corpora/finance-6.txt", "scenario": "finance", "maxUtterances": 4}},
                    "method": {"type": "freezeEncoder"},
                    "training": {"learningRate": 0.0003, "batchSize": 2, "maxSteps": 1},
                    "export": {"onnx": False},
                    "output": {"uri": f"s3://{b}/out/s3-run/"}}}
    f = tmp_path / "job.json"
    f.write_text(json.dumps(job))
    env = dict(os.environ, **s3_env.env(), WHISPEROPS_JOB_FILE=str(f), WHISPEROPS_RESULT_FILE=str(tmp_path / "term"),
               WHISPEROPS_WORK_DIR=str(tmp_path / "work"), WHISPEROPS_EVAL_MAX="2", PYTHONPATH=str(PKG))
    p = subprocess.run([sys.executable, "-m", "whisperops_trainer", "run"], capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads((tmp_path / "term").read_text())
    assert res["modelUri"] == f"s3://{b}/out/s3-run/" and res["version"] == "s3-run-0f1e2d3c"
    keys = s3_env.keys("out/s3-run/")
    assert "out/s3-run/model-manifest.json" in keys and "out/s3-run/model.safetensors" in keys
    got = tmp_path / "got"
    for k in keys:
        uri.download(f"s3://{b}/{k}", got / k.removeprefix("out/s3-run/"))
    assert manifest.sha256_file(got / manifest.MANIFEST) == res["sha256"]
    assert manifest.verify(got) == []
    logs = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert any(r["msg"] == "Preflight passed" for r in logs)
    assert any(r["msg"] == "Downloaded base model" and r["bytes"] > 30_000_000 for r in logs)
    assert any(r["msg"] == "Published model" and r["bytes"] > 30_000_000 for r in logs)
