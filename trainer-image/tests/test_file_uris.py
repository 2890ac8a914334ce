"""file:// URIs mean the same to the trainer as to the API server's patterns and the edge agent:
the shared cases of test/fixtures/file-uris.json (also read by api/file-uri.test.ts). A refused one
fails the preflight: invalid input, exit 2, not retried."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from whisperops_trainer import preflight, uri
from whisperops_trainer.data import DatasetError, read_manifest

CASES = json.loads((Path(__file__).resolve().parents[2] / "test" / "fixtures" / "file-uris.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["uri"] for c in CASES])
def test_file_uri_means_the_shared_path_or_is_refused(case):
    if case["path"] is None:
        with pytest.raises(uri.UnsupportedUri):
            uri.to_path(case["uri"])
    else:
        # pathlib drops a trailing '/', the folder-ness lives in the URI
        assert uri.to_path(case["uri"]) == Path(case["path"])


def test_a_file_uri_with_a_host_fails_the_preflight_for_input_and_output(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "m.jsonl").write_text("")
    good = {"baseModel": {"uri": f"file://localhost{tmp_path}/model"}, "dataset": {"uri": f"file://{tmp_path}/m.jsonl"},
            "output": {"uri": f"file://{tmp_path}/out/"}}
    assert len(preflight.run(good)) == 3
    bad = {**good, "baseModel": {"uri": f"file://trainer-host{tmp_path}/model"}, "output": {"uri": f"file://other-host{tmp_path}/out/"}}
    with pytest.raises(preflight.PreflightFailed) as err:
        preflight.run(bad)
    msg = str(err.value)
    assert f"spec.baseModel.uri file://trainer-host{tmp_path}/model: file:// URI must be file:///path or file://localhost/path" in msg
    assert f"spec.output.uri file://other-host{tmp_path}/out/: file:// URI must be file:///path or file://localhost/path" in msg
    assert not (tmp_path / "out").exists() and not Path("other-host").exists()


@pytest.mark.parametrize("audio,why", [
    ("gs://bucket/a.wav", "unsupported URI scheme gs://"),
    ("ftp://host/a.wav", "unsupported URI scheme ftp://"),
    ("file://other-host/data/a.wav", "file:// URI must be file:///path or file://localhost/path"),
])
def test_a_manifest_line_with_an_unusable_audio_uri_is_invalid_input(tmp_path, audio, why):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"audio": "ok.wav", "text": "fine", "scenario": "s"}) + "\n"
                 + json.dumps({"audio": audio, "text": "bad", "scenario": "s"}) + "\n")
    with pytest.raises(DatasetError) as err:  # DatasetError: the run exits 2 (InvalidInput), not retried
        read_manifest(f"file://{m}")
    assert f"m.jsonl:2: audio {audio}: {why}" in str(err.value)


def test_manifest_audio_paths_and_supported_uris_still_resolve(tmp_path):
    m = tmp_path / "m.jsonl"
    lines = [{"audio": "a.wav", "text": "x", "scenario": "s"}, {"audio": "file://localhost/data/b.wav", "text": "y", "scenario": "s"},
             {"audio": "s3://bucket/c.wav", "text": "z", "scenario": "s"}, {"audio": "/abs/d.wav", "text": "w", "scenario": "s"}]
    m.write_text("".join(json.dumps(x) + "\n" for x in lines))
    got = [smp.audio for smp in read_manifest(f"file://{m}")]
    assert got[0].endswith("/a.wav") and got[1] == "file://localhost/data/b.wav" and got[2] == "s3://bucket/c.wav" and got[3] == "/abs/d.wav"
