"""spec.compression.speakerRole: the role head (shape, pooling over audio frames only, joint loss), its
ONNX export, the role-labelled data, and a small job that publishes a model naming its head."""
import json
from pathlib import Path

import numpy as np
import pytest

from whisperops_trainer import roles


def test_valid_frames_follow_the_front_end_and_the_encoders_stride():
    # 10-s window of tiny-whisper-synth: 1000 mel frames, 500 encoder frames
    assert roles.encoder_valid_frames(160_000, 160, 500) == 500
    assert roles.encoder_valid_frames(200_000, 160, 500) == 500  # longer than the window: capped
    assert roles.encoder_valid_frames(80_000, 160, 500) == 251  # 501 mel frames → ceil(501 / 2)
    assert roles.encoder_valid_frames(0, 160, 500) == 1


def test_the_head_gives_one_logit_per_role_and_pools_only_over_audio_frames():
    import torch

    head = roles.make_head(256, 3, seed=1).eval()
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 500, 256, generator=g)
    valid = torch.tensor([500, 120])
    with torch.no_grad():
        out = head(h, valid)
        assert out.shape == (2, 3)
        # frames past valid_frames (the padding of the window) change nothing ...
        h2 = h.clone()
        h2[1, 120:] = 1000.0
        assert torch.allclose(head(h2, valid), out)
        # ... and the result is the head applied to the mean of the valid frames
        want = head.fc2(torch.nn.functional.gelu(head.fc1(h[1, :120].mean(0))))
        assert torch.allclose(out[1], want, atol=1e-5)
        # whereas a frame inside does
        h3 = h.clone()
        h3[1, 5] += 10.0
        assert not torch.allclose(head(h3, valid)[1], out[1])
    assert roles.head_params(head) == 256 * 64 + 64 + 64 * 3 + 3


def test_joint_loss_adds_the_weighted_role_ce_and_ignores_unlabelled_samples():
    import torch
    import torch.nn.functional as F

    asr = torch.tensor(2.0)
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [0.0, 4.0]])
    labels = torch.tensor([0, -100, 1])
    loss, ce = roles.joint_loss(asr, logits, labels, 0.3)
    want_ce = F.cross_entropy(logits[[0, 2]], torch.tensor([0, 1]))
    assert ce.item() == pytest.approx(want_ce.item(), rel=1e-6)
    assert loss.item() == pytest.approx(2.0 + 0.3 * want_ce.item(), rel=1e-6)
    # a batch without any role label (e.g. all replay samples) is the ASR loss alone
    loss2, ce2 = roles.joint_loss(asr, logits, torch.tensor([-100, -100, -100]), 0.3)
    assert loss2.item() == pytest.approx(2.0) and ce2.item() == 0.0


def test_the_exported_graph_computes_what_the_head_computes(tmp_path, model_dir):
    import shutil

    import onnx
    import onnxruntime as ort
    import torch

    shutil.copy2(model_dir / "config.json", tmp_path / "config.json")
    head = roles.make_head(256, 2, seed=3).eval()
    roles.save_head(head, ["clinician", "patient"], tmp_path)
    assert roles.roles_of(tmp_path) == ["clinician", "patient"]
    path = roles.export_onnx(tmp_path)
    assert path == tmp_path / "onnx" / "role_head.onnx"
    g = onnx.load(str(path)).graph
    assert [i.name for i in g.input] == ["last_hidden_state", "valid_frames"]
    assert [o.name for o in g.output] == ["role_logits"]
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    h = np.random.default_rng(0).standard_normal((3, 500, 256)).astype(np.float32)
    valid = np.array([500, 40, 251], dtype=np.int64)
    (got,) = s.run(None, {"last_hidden_state": h, "valid_frames": valid})
    with torch.no_grad():
        want = roles.load_head(tmp_path)(torch.from_numpy(h), torch.from_numpy(valid)).numpy()
    assert got.shape == (3, 2) and np.allclose(got, want, atol=1e-5)


def test_voices_split_into_training_and_held_out_by_dataset_synthesize_voices():
    spec = {"dataset": {"synthesize": {"voices": ["en-us+m1", "en-us+f1", "en-gb"]}},
            "compression": {"speakerRole": {"roles": ["clinician", "patient"], "voices": [
                {"voice": "en-us+m1", "role": "clinician"}, {"voice": "en-us+f1", "role": "patient"},
                {"voice": "en-029+m2", "role": "clinician"}, {"voice": "en-029+f2", "role": "patient"}]}}}
    train, held = roles.voice_split(spec)
    assert train == {"clinician": ["en-us+m1"], "patient": ["en-us+f1"]}
    assert held == {"clinician": ["en-029+m2"], "patient": ["en-029+f2"]}


@pytest.mark.skipif(not __import__("shutil").which("espeak-ng"), reason="espeak-ng is not installed")
def test_every_sentence_is_spoken_once_per_role_at_the_same_rate_and_pitch(tmp_path):
    texts = ["the patient is resting", "take one tablet twice a day", "how are you feeling today"]
    voices = {"clinician": ["en-us+m1", "en+m3"], "patient": ["en-us+f1", "en+f3"]}
    out = roles.synthesize_by_role(texts, "medical", tmp_path, voices, 7, (130, 200), (25, 75), workers=2)
    assert len(out) == 6
    by_role = {r: [s for s in out if s.role == r] for r in voices}
    for r, ss in by_role.items():
        assert sorted(s.text for s in ss) == sorted(texts)  # what is said does not tell the role
        assert all(s.voice in voices[r] for s in ss)
    # rate and pitch are drawn alike for both roles: only the voice differs
    key = lambda s: (s.text, s.wpm, s.pitch)  # noqa: E731
    assert sorted(map(key, by_role["clinician"])) == sorted(map(key, by_role["patient"]))


@pytest.mark.skipif(not __import__("shutil").which("espeak-ng"), reason="espeak-ng is not installed")
def test_roles_with_different_numbers_of_voices_still_get_the_same_rate_and_pitch(tmp_path):
    # 3 voices against 2: synth draws voice, rate and pitch from one seeded stream, and lists of different
    # lengths consume it differently (with seed 0 the rates and pitches would part after a few sentences)
    texts = [f"the patient has taken {n} tablets today" for n in ("one", "two", "three", "four", "five", "six", "seven", "eight")]
    voices = {"clinician": ["en-us+m1", "en+m3", "en-gb-scotland+m4"], "patient": ["en-us+f1", "en+f3"]}
    assert roles.same_length(voices) == {"clinician": voices["clinician"] * 2, "patient": voices["patient"] * 3}
    out = roles.synthesize_by_role(texts, "medical", tmp_path, voices, 0, (130, 200), (25, 75), workers=2)
    by_role = {r: [s for s in out if s.role == r] for r in voices}
    key = lambda s: (s.text, s.wpm, s.pitch)  # noqa: E731
    assert sorted(map(key, by_role["clinician"])) == sorted(map(key, by_role["patient"]))
    assert {s.voice for s in by_role["clinician"]} <= set(voices["clinician"])
    assert {s.voice for s in by_role["patient"]} <= set(voices["patient"])


@pytest.mark.skipif(not __import__("shutil").which("espeak-ng"), reason="espeak-ng is not installed")
def test_a_role_voice_whose_variant_espeak_ignores_is_refused(tmp_path):
    from whisperops_trainer.data import DatasetError

    # en-gb takes no variant (en-gb+f3 is en-gb's male voice); an unknown variant name falls back silently
    assert roles.ignored_variants(["en-gb+f3", "en+f3", "en-us+f3", "en-us+Adam", "en-us+adam", "en-us"]) == ["en-gb+f3", "en-us+Adam"]
    with pytest.raises(DatasetError, match="en-gb\\+f3"):
        roles.synthesize_by_role(["hello"], "medical", tmp_path, {"clinician": ["en-us+m1"], "patient": ["en-gb+f3"]}, 0,
                                 (130, 200), (25, 75), workers=1)
    assert not list(tmp_path.glob("*.wav"))


def test_manifest_samples_carry_their_role(tmp_path):
    from whisperops_trainer.data import read_manifest

    (tmp_path / "a.wav").write_bytes(b"")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"audio": "a.wav", "text": "hello", "scenario": "medical", "role": "patient"}) + "\n"
                 + json.dumps({"audio": "a.wav", "text": "hi", "scenario": "medical"}) + "\n")
    s = read_manifest(str(m))
    assert [x.role for x in s] == ["patient", None]
    assert s[0].to_json()["role"] == "patient" and "role" not in s[1].to_json()


def _role_job(tmp_path, shared_data, model_dir, max_wer_increase=1.0):
    spec = {
        "baseModel": {"uri": f"file://{model_dir}", "version": "tiny-whisper-synth-1.0.0"},
        "dataset": {"scenario": "general",
                    "synthesize": {"corpusUri": f"file://{shared_data}/general/general_corpus.txt", "scenario": "general",
                                   "maxUtterances": 12, "voices": ["en-us+m1", "en+m3", "en-us+f1", "en+f3"]}},
        "method": {"type": "lora"},
        "training": {"batchSize": 8, "maxSteps": 3, "seed": 42},
        "compression": {"speakerRole": {"roles": ["clinician", "patient"], "lossWeight": 0.5, "voices": [
            {"voice": "en-us+m1", "role": "clinician"}, {"voice": "en+m3", "role": "clinician"},
            {"voice": "en-us+f1", "role": "patient"}, {"voice": "en+f3", "role": "patient"},
            {"voice": "en-029+m2", "role": "clinician"}, {"voice": "en-029+f2", "role": "patient"}]}},
        "export": {"onnx": True, "quantization": "int8", "maxWerIncrease": max_wer_increase},
        "output": {"uri": f"file://{tmp_path}/out/roles"},
    }
    from test_compression import _write_job

    return _write_job(tmp_path, "roles", "70e5a1e2-aaaa-bbbb-cccc-000000000000", spec)


def test_a_speaker_role_job_publishes_a_model_whose_manifest_names_its_head(tmp_path, shared_data, model_dir):
    import onnx
    import onnxruntime as ort

    from whisperops_trainer import manifest
    from test_compression import _run

    p, res = _run(_role_job(tmp_path, shared_data, model_dir), tmp_path)
    assert p.returncode == 0, p.stderr[-3000:] + p.stdout[-3000:]
    c = res["compression"]
    assert c["techniques"] == ["speakerRole"]
    assert 0.0 <= c["roleAccuracy"] <= 1.0
    # the published model: the base's weights (LoRA merged) and the head's
    assert c["paramsAfter"] == c["paramsBefore"] + 256 * 64 + 64 + 64 * 2 + 2
    out = tmp_path / "out" / "roles"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg[roles.ROLES_KEY] == ["clinician", "patient"]
    man = json.loads((out / manifest.MANIFEST).read_text())
    assert man["onnx"]["roleHead"] == "onnx/role_head.onnx" and "onnx/role_head.onnx" in man["files"]
    assert "role_head.safetensors" in man["files"]
    sr = man["training"]["compression"]["speakerRole"]
    assert sr["roles"] == ["clinician", "patient"] and sr["head"] == "onnx/role_head.onnx"
    assert sr["headParams"] == 256 * 64 + 64 + 64 * 2 + 2
    assert sr["heldoutVoices"] == {"clinician": ["en-029+m2"], "patient": ["en-029+f2"]}
    assert 0 < sr["n"] <= 6 and sr["n"] % 2 == 0  # 3 held-out sentences (WHISPEROPS_EVAL_MAX 6 / 2 roles), once per role
    assert man["training"]["compression"]["roleAccuracy"] == c["roleAccuracy"]
    # the ASR graphs are the usual ones; the head runs on the encoder's output
    assert {"encoder", "decoder", "encoderQuantized", "decoderQuantized"} <= set(man["onnx"])
    enc = ort.InferenceSession(str(out / "onnx" / "encoder_model_quantized.onnx"), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(out / "onnx" / "role_head.onnx"), providers=["CPUExecutionProvider"])
    feats = np.zeros((1, 80, 1000), dtype=np.float32)
    (h,) = enc.run(["last_hidden_state"], {"input_features": feats})
    (logits,) = head.run(None, {"last_hidden_state": h, "valid_frames": np.array([100], dtype=np.int64)})
    assert logits.shape == (1, 2)
    assert [o.name for o in onnx.load(str(out / "onnx" / "encoder_model.onnx"), load_external_data=False).graph.output] == ["last_hidden_state"]


def test_a_role_job_without_role_labelled_samples_is_invalid(tmp_path, shared_data, model_dir):
    f = _role_job(tmp_path, shared_data, model_dir)
    job = json.loads(f.read_text())
    job["spec"]["compression"]["speakerRole"]["voices"] = [{"voice": "en-029+m2", "role": "clinician"}]
    f.write_text(json.dumps(job))
    from test_compression import _run

    p, res = _run(f, tmp_path)
    assert p.returncode == 2, p.stderr[-3000:]
    assert "no role-labelled training samples" in res["error"]["message"]
    assert not (tmp_path / "out" / "roles").exists()
