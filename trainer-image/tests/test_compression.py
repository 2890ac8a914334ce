"""spec.compression: the CRD's rules re-checked by the trainer, and each technique changing the model as claimed."""
from pathlib import Path

import numpy as np
import pytest

from whisperops_trainer import jobspec, pipeline

BASE = {"baseModel": {"uri": "file:///m"}, "dataset": {"uri": "file:///d.jsonl"}, "output": {"uri": "file:///o"}}


def _spec(**over):
    return {**BASE, **over}


def test_compression_defaults_follow_the_crd():
    spec = jobspec.validate_spec(_spec(method={"type": "full"}, compression={
        "distillation": {"decoderLayers": 2}, "headPruning": {}, "quantizationAware": {},
        "speakerRole": {"roles": ["clinician", "patient"]}}))
    c = spec["compression"]
    assert c["distillation"] == {"decoderLayers": 2, "temperature": 2, "klWeight": 0.5, "ceWeight": 0.5, "hiddenWeight": 0}
    assert c["headPruning"] == {"fraction": 0.4, "importanceSamples": 64, "selection": "gradient"}
    assert c["quantizationAware"] == {"calibrationSamples": 32}
    assert c["speakerRole"]["lossWeight"] == 0.3


@pytest.mark.parametrize("over,msg", [
    ({"compression": {"distillation": {"decoderLayers": 2}}}, "method.type must be full or freezeEncoder"),
    ({"method": {"type": "full"}, "compression": {"distillation": {"temperature": 3}}}, "needs a smaller student"),
    ({"method": {"type": "full"}, "compression": {"distillation": {"encoderLayers": 2, "klWeight": 0, "ceWeight": 0}}},
     "klWeight or ceWeight above 0"),
    ({"export": {"quantization": "none"}, "compression": {"quantizationAware": {}}}, "requires export.onnx: true and export.quantization int8"),
    ({"export": {"onnx": False}, "compression": {"quantizationAware": {}}}, "requires export.onnx: true and export.quantization int8"),
    ({"compression": {"speakerRole": {"roles": ["a", "b"], "voices": [{"voice": "en-us", "role": "c"}]}}}, "every role must be one of roles"),
    ({"compression": {"speakerRole": {"roles": ["a"]}}}, "too short"),
    ({"compression": {"headPruning": {"fraction": 0.95}}}, "maximum"),
    ({"compression": {"headPruning": {"fraction": 0}}}, "minimum"),
])
def test_impossible_combinations_are_invalid(over, msg):
    with pytest.raises(jobspec.InvalidJob, match=msg):
        jobspec.validate_spec(_spec(**over))


def test_distillation_without_a_smaller_student_is_the_recovery_of_a_head_pruned_model():
    spec = jobspec.validate_spec(_spec(method={"type": "full"}, compression={"distillation": {"temperature": 2},
                                                                             "headPruning": {"fraction": 0.4}}))
    assert spec["compression"]["distillation"]["klWeight"] == 0.5
    assert "encoderLayers" not in spec["compression"]["distillation"]


def test_a_technique_this_trainer_lacks_is_refused_not_skipped(monkeypatch):
    monkeypatch.setattr(pipeline, "IMPLEMENTED_COMPRESSION", ())
    spec = jobspec.validate_spec(_spec(compression={"headPruning": {}}))
    with pytest.raises(jobspec.InvalidJob, match="headPruning is not implemented"):
        pipeline.check_compression(spec)
    assert pipeline.check_compression(jobspec.validate_spec(_spec())) == []


# --- distillation -------------------------------------------------------------------------------

@pytest.mark.parametrize("n_teacher,n_student,want", [(4, 2, [0, 3]), (4, 4, [0, 1, 2, 3]), (12, 3, [0, 6, 11]),
                                                      (4, 1, [3]), (32, 4, [0, 10, 21, 31])])
def test_student_layers_spread_from_first_to_last(n_teacher, n_student, want):
    from whisperops_trainer.compress import spread

    assert spread(n_teacher, n_student) == want


def test_a_student_larger_than_its_teacher_is_refused():
    from whisperops_trainer.compress import StudentError, spread

    with pytest.raises(StudentError):
        spread(4, 5)


@pytest.fixture(scope="module")
def tiny_teacher(model_dir):
    import torch
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(str(model_dir), dtype=torch.float32).eval()


def test_student_is_smaller_and_initialised_from_the_teachers_layers(tiny_teacher):
    import torch

    from whisperops_trainer import params
    from whisperops_trainer.compress import make_student

    t = tiny_teacher
    student, plan = make_student(t, encoder_layers=2, decoder_layers=2, ffn_dim=512)
    assert plan.encoder_layers == [0, 3] and plan.decoder_layers == [0, 3] and plan.ffn_dim == 512
    c = student.config
    assert (c.encoder_layers, c.decoder_layers, c.encoder_ffn_dim, c.decoder_ffn_dim) == (2, 2, 512, 512)
    n_t, n_s = params.count(t)[1], params.count(student)[1]
    d, f = t.config.d_model, 512
    # each removed layer and each removed FFN neuron is accounted for, nothing else changes
    enc_layer = sum(p.numel() for p in t.model.encoder.layers[0].parameters())
    dec_layer = sum(p.numel() for p in t.model.decoder.layers[0].parameters())
    ffn_cut = (t.config.encoder_ffn_dim - f) * (2 * d + 1)  # fc1 rows + biases, fc2 columns
    assert n_s == n_t - 2 * enc_layer - 2 * dec_layer - 4 * ffn_cut
    assert n_s <= 0.5 * n_t
    # attention weights are the teacher's layers 0 and 3; FFN neurons a subset of the teacher's
    for si, ti in enumerate(plan.decoder_layers):
        s_l, t_l = student.model.decoder.layers[si], t.model.decoder.layers[ti]
        assert torch.equal(s_l.self_attn.q_proj.weight, t_l.self_attn.q_proj.weight)
        assert torch.equal(s_l.encoder_attn.out_proj.weight, t_l.encoder_attn.out_proj.weight)
        rows = {tuple(r.tolist()[:8]) for r in t_l.fc1.weight}
        assert all(tuple(r.tolist()[:8]) in rows for r in s_l.fc1.weight)
    assert torch.equal(student.model.decoder.embed_tokens.weight, t.model.decoder.embed_tokens.weight)
    assert student.proj_out.weight.data_ptr() == student.model.decoder.embed_tokens.weight.data_ptr()


def test_student_ffn_neurons_follow_the_given_activations(tiny_teacher):
    """With ffn_activation the neurons kept are those of largest activation × ||fc2 column||, not weight norm."""
    import torch

    from whisperops_trainer.compress import ffn_keep, make_student

    t = tiny_teacher
    width = t.config.encoder_ffn_dim
    # the neurons weight norm would drop, made the most active: exactly they must be kept
    act = {}
    for side in ("encoder", "decoder"):
        for i, layer in enumerate(getattr(t.model, side).layers):
            by_norm = set(ffn_keep(layer.fc1.weight, layer.fc2.weight, width // 2).tolist())
            a = torch.full((width,), 1e-6)
            a[[j for j in range(width) if j not in by_norm]] = 1e6
            act[f"model.{side}.layers.{i}."] = a
    student, plan = make_student(t, encoder_layers=2, decoder_layers=2, ffn_dim=width // 2, ffn_activation=act)
    for si, ti in enumerate(plan.decoder_layers):
        t_l, s_l = t.model.decoder.layers[ti], student.model.decoder.layers[si]
        dropped = [j for j in range(width) if act[f"model.decoder.layers.{ti}."][j] > 1]
        assert torch.equal(s_l.fc1.weight, t_l.fc1.weight[dropped])
        assert torch.equal(s_l.fc1.bias, t_l.fc1.bias[dropped])
        assert torch.equal(s_l.fc2.weight, t_l.fc2.weight[:, dropped])


def test_a_layer_only_student_computes_what_the_teachers_layers_compute(tiny_teacher):
    """A student with every layer (nothing cut) is the teacher: same logits."""
    import torch

    from whisperops_trainer.compress import make_student

    student, _ = make_student(tiny_teacher, encoder_layers=4, decoder_layers=4)
    student.eval()
    x = torch.randn(1, 80, 1000, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[1000, 1001, 5, 6]])
    with torch.no_grad():
        a = tiny_teacher(input_features=x, decoder_input_ids=ids).logits
        b = student(input_features=x, decoder_input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_distillation_loss_is_ce_when_the_student_matches_the_teacher_and_grows_with_kl():
    import torch

    from whisperops_trainer.compress import distillation_loss

    g = torch.Generator().manual_seed(1)
    t = torch.randn(2, 5, 11, generator=g)
    labels = torch.tensor([[-100, 1, 2, 3, -100], [-100, 4, 5, -100, -100]])
    ce = torch.tensor(1.5)
    loss, kl = distillation_loss(t.clone(), t, labels, ce, 2.0, 0.5, 0.5)
    assert kl.item() == pytest.approx(0.0, abs=1e-6) and loss.item() == pytest.approx(0.75)
    s = torch.randn(2, 5, 11, generator=g)
    loss2, kl2 = distillation_loss(s, t, labels, ce, 2.0, 0.5, 0.5)
    assert kl2.item() > 0 and loss2.item() == pytest.approx(0.75 + 0.5 * 4 * kl2.item(), rel=1e-5)
    # only the label positions count: changing a masked position changes nothing
    s2 = s.clone()
    s2[0, 0] += 100
    assert distillation_loss(s2, t, labels, ce, 2.0, 0.5, 0.5)[1].item() == pytest.approx(kl2.item(), rel=1e-6)


def test_hidden_state_pairs_match_each_student_layer_with_the_teacher_layer_it_came_from():
    from whisperops_trainer.compress import layer_pairs

    # hidden_states index k is layer k's input; the last index is the final (layer-normed) output. Student
    # layer 0 (teacher layer 0) stands in for teacher layers 0-2, so it should hand student layer 1
    # (teacher layer 3) what teacher layer 3 gets: teacher index 3
    assert layer_pairs(4, 2) == [(1, 3), (2, 4)]
    assert layer_pairs(4, 4) == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert layer_pairs(4, 1) == [(1, 4)]
    assert layer_pairs(12, 3) == [(1, 6), (2, 11), (3, 12)]


def test_hidden_state_loss_is_zero_for_the_teacher_itself_and_counts_the_cut_layers(tiny_teacher):
    import torch

    from whisperops_trainer.compress import hidden_state_loss, make_student

    x, ids, labels = _toy_batch()
    with torch.no_grad():
        t_out = tiny_teacher(input_features=x, decoder_input_ids=ids, output_hidden_states=True)
        same, _ = make_student(tiny_teacher, encoder_layers=4, decoder_layers=4)
        s_out = same.eval()(input_features=x, decoder_input_ids=ids, output_hidden_states=True)
        assert hidden_state_loss(s_out, t_out, labels).item() == pytest.approx(0.0, abs=1e-8)
        # a 2 / 2 student: its layer 0 (the teacher's layer 0) does not yet compute what layers 0-2 do
        small, _ = make_student(tiny_teacher, encoder_layers=2, decoder_layers=2)
        small_out = small.eval()(input_features=x, decoder_input_ids=ids, output_hidden_states=True)
        cut = hidden_state_loss(small_out, t_out, labels).item()
        assert cut > 0.01
        # only the decoder's label positions count: a change at a masked position (labels -100) changes nothing
        dec = list(small_out.decoder_hidden_states)
        dec[-1] = dec[-1].clone()
        dec[-1][:, 0] += 100.0
        moved = type(small_out)(decoder_hidden_states=tuple(dec), encoder_hidden_states=small_out.encoder_hidden_states)
        assert hidden_state_loss(moved, t_out, labels).item() == pytest.approx(cut, rel=1e-6)
        dec[-1][:, 1] += 1.0
        moved = type(small_out)(decoder_hidden_states=tuple(dec), encoder_hidden_states=small_out.encoder_hidden_states)
        assert hidden_state_loss(moved, t_out, labels).item() > cut
    # and it is differentiable towards the teacher: one SGD step on it lowers it
    small.train()
    opt = torch.optim.SGD(small.parameters(), lr=0.05)
    loss = hidden_state_loss(small(input_features=x, decoder_input_ids=ids, output_hidden_states=True), t_out, labels)
    loss.backward()
    opt.step()
    with torch.no_grad():
        small.eval()
        after = hidden_state_loss(small(input_features=x, decoder_input_ids=ids, output_hidden_states=True), t_out, labels)
    assert after.item() < loss.item()


@pytest.mark.parametrize("change,hidden,msg", [
    ({"vocab_size": 2000}, 0.0, "teacher's vocabulary \\(2000\\) is not the base model's \\(1008\\)"),
    ({"d_model": 384}, 1.0, "hiddenWeight: matches hidden states, so the teacher's width \\(d_model 384\\)"),
])
def test_a_teacher_the_student_cannot_learn_from_is_refused(tmp_path, model_dir, change, hidden, msg):
    import json
    import shutil

    from whisperops_trainer.train import TrainConfig

    teacher = tmp_path / "teacher"
    shutil.copytree(model_dir, teacher, ignore=shutil.ignore_patterns("onnx"))
    cfg = json.loads((teacher / "config.json").read_text())
    (teacher / "config.json").write_text(json.dumps({**cfg, **change}))
    spec = jobspec.validate_spec(_spec(method={"type": "full"}, compression={"distillation": {
        "teacherUri": f"file://{teacher}", "decoderLayers": 2, "hiddenWeight": hidden}}))
    with pytest.raises(jobspec.InvalidJob, match=msg):
        pipeline.prepare_distillation(spec, model_dir, tmp_path / "work", TrainConfig())
    # the same teacher width with hidden states matched is fine (the student is cut, cfg points at the teacher)
    if "d_model" in change:
        (teacher / "config.json").write_text(json.dumps(cfg))
        c = TrainConfig()
        pipeline.prepare_distillation(spec, model_dir, tmp_path / "work", c)
        assert c.distill_hidden_weight == 1.0 and c.teacher_dir.endswith("teacher")


def _distill_job(tmp_path, shared_data, model_dir, max_wer_increase):
    spec = {
        "baseModel": {"uri": f"file://{model_dir}", "version": "tiny-whisper-synth-1.0.0"},
        "dataset": {"scenario": "general",
                    "synthesize": {"corpusUri": f"file://{shared_data}/general/general_corpus.txt", "scenario": "general",
                                   "maxUtterances": 24}},
        "method": {"type": "full"},
        "training": {"learningRate": 0.0003, "batchSize": 8, "maxSteps": 3, "seed": 42},
        "compression": {"distillation": {"encoderLayers": 2, "decoderLayers": 2, "ffnDim": 512}},
        "export": {"onnx": True, "quantization": "int8", "maxWerIncrease": max_wer_increase},
        "output": {"uri": f"file://{tmp_path}/out/student"},
    }
    return _write_job(tmp_path, "student", "5a1e2d3c-aaaa-bbbb-cccc-000000000000", spec)


def _write_job(tmp_path, name, uid, spec):
    """The FineTuneJob file a job test runs: `spec` under metadata speech/`name`."""
    import json

    job = {"apiVersion": "whisperops.dev/v1alpha1", "kind": "FineTuneJob",
           "metadata": {"name": name, "namespace": "speech", "uid": uid}, "spec": spec}
    f = tmp_path / "finetunejob.json"
    f.write_text(json.dumps(job))
    return f


def _run(job_file, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, WHISPEROPS_JOB_FILE=str(job_file), WHISPEROPS_RESULT_FILE=str(tmp_path / "termination-log"),
               WHISPEROPS_WORK_DIR=str(tmp_path / "work"), WHISPEROPS_EVAL_MAX="6",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    p = subprocess.run([sys.executable, "-m", "whisperops_trainer", "run"], capture_output=True, text=True, env=env,
                       timeout=1200)
    return p, json.loads((tmp_path / "termination-log").read_text())


def test_a_distillation_job_publishes_a_smaller_student_the_onnx_decoder_serves(tmp_path, shared_data, model_dir):
    import json

    import onnx

    from whisperops_trainer import manifest
    from whisperops_trainer.compress import count_params

    f = _distill_job(tmp_path, shared_data, model_dir, 1.0)
    job = json.loads(f.read_text())
    job["spec"]["compression"]["distillation"]["hiddenWeight"] = 1.0
    f.write_text(json.dumps(job))
    p, res = _run(f, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:] + p.stdout[-3000:]
    c = res["compression"]
    assert c["techniques"] == ["distillation"]
    # the hidden-state term is in the loss: logged beside it, above 0 for a student with cut layers
    lines = [json.loads(x) for x in (p.stdout + p.stderr).splitlines() if x.startswith("{")]
    assert [x["hidden_weight"] for x in lines if x.get("msg") == "Distilling"] == [1.0]
    hidden = [x["hidden_loss"] for x in lines if x.get("msg") == "Training"]
    assert hidden and all(h > 0 for h in hidden)
    assert c["paramsBefore"] == count_params(model_dir) and c["paramsAfter"] == res["totalParams"]
    assert c["paramsAfter"] <= 0.5 * c["paramsBefore"]
    assert set(c["referenceWer"]) == set(res["wer"]) == {"general"} and c["referenceWer"] == res["baseWer"]
    out = tmp_path / "out" / "student"
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["encoder_layers"], cfg["decoder_layers"], cfg["encoder_ffn_dim"]) == (2, 2, 512)
    man = json.loads((out / manifest.MANIFEST).read_text())
    assert man["training"]["compression"]["student"] == {"encoderLayers": [0, 3], "decoderLayers": [0, 3], "ffnDim": 512}
    assert {"encoder", "decoder", "encoderQuantized", "decoderQuantized"} <= set(man["onnx"])
    dec = onnx.load(str(out / "onnx" / "decoder_model_merged.onnx"), load_external_data=False)
    past = sorted({i.name.split(".")[1] for i in dec.graph.input if i.name.startswith("past_key_values.")})
    assert past == ["0", "1"]
    # smaller on disk than the teacher's graphs
    for name in ("encoder_model.onnx", "decoder_model_merged.onnx", "decoder_model_merged_quantized.onnx"):
        assert (out / "onnx" / name).stat().st_size < 0.6 * (model_dir / "onnx" / name).stat().st_size
    # the INT8 graphs decode with the agent's greedy loop (onnx_infer), the way the agent serves them
    from transformers import AutoTokenizer

    from whisperops_trainer import evaluate, suites
    from whisperops_trainer.onnx_infer import transcribe

    samples = suites.eval_set("general", 2)
    hyps = transcribe(out, evaluate.features_for(str(out), samples), AutoTokenizer.from_pretrained(str(out)), suffix="_quantized")
    assert len(hyps) == 2 and all(isinstance(h, str) for h in hyps)


def test_a_student_losing_more_than_the_allowed_wer_is_not_published(tmp_path, shared_data, model_dir):
    p, res = _run(_distill_job(tmp_path, shared_data, model_dir, 0.0), tmp_path)
    assert p.returncode == 3, p.stderr[-3000:]
    assert res["error"]["reason"] == "QualityGateFailed"
    assert "compressed (distillation) model WER rises more than 0.0" in res["error"]["message"]
    assert not (tmp_path / "out" / "student").exists()


# --- head pruning -------------------------------------------------------------------------------

def _toy_batch():
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 80, 1000, generator=g)
    ids = torch.tensor([[1000, 1001, 5, 6], [1000, 1001, 7, 8]])
    labels = torch.tensor([[-100, 5, 6, 0], [-100, 7, 8, 0]])
    return x, ids, labels


def test_heads_to_keep_removes_the_least_important_fraction_and_leaves_every_layer_a_head():
    import torch

    from whisperops_trainer.compress import heads_to_keep

    imp = [torch.tensor([0.1, 0.9, 0.2, 0.8]), torch.tensor([0.01, 0.02, 0.03, 0.04]), torch.tensor([0.5, 0.6, 0.7, 0.95])]
    keep = heads_to_keep(imp, 0.5)  # 6 of 12
    assert sum(len(k) for k in keep) == 6
    assert keep[1] == [3]  # the weakest layer keeps its best head, nothing less
    assert keep[0] == [1, 3] and keep[2] == [1, 2, 3]
    # a weight > 1 on a block makes its heads count more: block 0's heads stay, block 2 pays instead
    keep = heads_to_keep(imp, 0.5, [10.0, 1.0, 1.0])
    assert keep == [[0, 1, 2, 3], [3], [3]]


# (kind, heads removed per layer) — layer l of the kind loses the heads listed; every layer keeps one
_CUTS = {
    "encoder": [[0], [1, 2], [], [0, 1, 3]],
    "decoder": [[3], [], [0, 2], [1, 2, 3]],
    "cross": [[0, 1, 2], [2], [1], []],
}


def _block(m, kind, layer):
    return (m.model.encoder.layers[layer].self_attn if kind == "encoder" else
            m.model.decoder.layers[layer].self_attn if kind == "decoder" else m.model.decoder.layers[layer].encoder_attn)


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
def test_pruned_heads_are_gone_from_the_matrices_and_the_model_computes_what_masking_them_would(tiny_teacher, kind):
    import copy

    import torch

    from whisperops_trainer import params
    from whisperops_trainer.compress import HEADS_KEY, attention_blocks, head_layout, prune_heads

    m = copy.deepcopy(tiny_teacher)
    x, ids, labels = _toy_batch()
    cuts = _CUTS[kind]
    keep = [[h for h in range(4) if not (k == kind and h in cuts[li])] for k, li, _ in attention_blocks(m)]
    masked = copy.deepcopy(m)
    with torch.no_grad():  # the reference: the removed heads' outputs zeroed (a mask before out_proj)
        for li, cut in enumerate(cuts):
            a = _block(masked, kind, li)
            for h in cut:
                a.out_proj.weight[:, h * a.head_dim:(h + 1) * a.head_dim] = 0
        want = masked(input_features=x, decoder_input_ids=ids).logits
        assert not torch.allclose(want, m(input_features=x, decoder_input_ids=ids).logits, atol=1e-3)  # the cut matters
    n0 = params.count(m)[1]
    prune_heads(m, keep)
    lay = head_layout(m)
    assert lay[kind] == [4 - len(c) for c in cuts]
    assert all(lay[k] == [4] * 4 for k in lay if k != kind)
    assert getattr(m.config, HEADS_KEY) == lay
    d, hd = m.config.d_model, 64
    for li, cut in enumerate(cuts):
        a = _block(m, kind, li)
        n = 4 - len(cut)
        assert a.num_heads == n and a.q_proj.weight.shape == (n * hd, d) and a.k_proj.weight.shape == (n * hd, d)
        assert a.v_proj.weight.shape == (n * hd, d) and a.out_proj.weight.shape == (d, n * hd)
    # q, v (weights + biases), k (weights), out_proj (weights) of each removed head, nothing else
    removed = sum(len(c) for c in cuts)
    assert params.count(m)[1] == n0 - removed * (4 * hd * d + 2 * hd)
    with torch.no_grad():
        got = m(input_features=x, decoder_input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    # decoding step by step with the KV cache (the exported graphs' way) gives the same logits
    with torch.no_grad():
        first = m(input_features=x, decoder_input_ids=ids[:, :2], use_cache=True)
        nxt = m(encoder_outputs=(first.encoder_last_hidden_state,), decoder_input_ids=ids[:, 2:3],
                past_key_values=first.past_key_values, use_cache=True)
    assert torch.allclose(nxt.logits[:, -1], want[:, 2], atol=1e-4)


def test_importance_covers_every_head_of_every_kind_and_a_blocks_last_head_stays(tiny_teacher):
    import copy

    from whisperops_trainer.compress import attention_blocks, head_importance, heads_to_keep, prune_heads

    m = copy.deepcopy(tiny_teacher)
    imp = head_importance(m, [_toy_batch()])
    assert [k for k, _, _ in attention_blocks(m)] == ["encoder"] * 4 + ["decoder"] * 4 + ["cross"] * 4
    assert [len(s) for s in imp] == [4] * 12 and all(float(s.min()) >= 0 and float(s.max()) > 0 for s in imp)
    keep = heads_to_keep(imp, 0.4)
    assert sum(map(len, keep)) == 48 - 19 and min(map(len, keep)) >= 1
    keep = heads_to_keep(imp, 0.9)  # more than the blocks can give: each keeps exactly one
    assert [len(k) for k in keep] == [1] * 12
    with pytest.raises(ValueError, match="at least one head"):
        prune_heads(m, [[]] + [[0, 1, 2, 3]] * 11)


def test_ablation_removes_the_heads_whose_structural_removal_costs_least_round_by_round(tiny_teacher):
    """heads_by_ablation masks heads (and reuses the encoder output for decoder-side candidates); its
    choices must be those a brute force over structurally pruned copies makes: round 1 the head whose
    removal gives the lowest loss, round 2 the best second head with the first one gone."""
    import copy

    import torch

    from whisperops_trainer.compress import attention_blocks, heads_by_ablation, prune_heads

    batch = _toy_batch()
    blocks = attention_blocks(tiny_teacher)

    def loss_without(gone: set[tuple[int, int]]) -> float:
        m = copy.deepcopy(tiny_teacher)
        prune_heads(m, [[h for h in range(4) if (bi, h) not in gone] for bi in range(len(blocks))])
        with torch.no_grad():
            return float(m(input_features=batch[0], decoder_input_ids=batch[1], labels=batch[2]).loss)

    gone: set[tuple[int, int]] = set()
    rises = []
    for _ in range(2):
        now = loss_without(gone)
        rise = {(bi, h): loss_without(gone | {(bi, h)}) - now for bi in range(len(blocks)) for h in range(4) if (bi, h) not in gone}
        rises.append(rise)
        gone.add(min(rise, key=rise.get))
    removed = lambda keep: {(bi, h) for bi, k in enumerate(keep) for h in range(4) if h not in k}  # noqa: E731
    assert removed(heads_by_ablation(copy.deepcopy(tiny_teacher), [batch], 2 / 48, round_size=1)) == gone
    # a kind's weight scales its heads' rises (÷ for a fall): weighting the first choice's block 100× moves the choice
    w = [100.0 if bi == min(rises[0], key=rises[0].get)[0] else 1.0 for bi in range(len(blocks))]
    weighted = {k: r * w[k[0]] if r > 0 else r / w[k[0]] for k, r in rises[0].items()}
    assert min(weighted, key=weighted.get) != min(rises[0], key=rises[0].get)
    assert removed(heads_by_ablation(copy.deepcopy(tiny_teacher), [batch], 1 / 48, w, round_size=1)) == {min(weighted, key=weighted.get)}
    # a fraction above what the blocks can give leaves each block exactly one head
    rounds = []
    keep = heads_by_ablation(copy.deepcopy(tiny_teacher), [batch], 0.9, round_size=16, on_round=lambda n, loss: rounds.append(n))
    assert [len(k) for k in keep] == [1] * 12 and rounds == [16, 32, 36]


def test_a_pruned_layout_survives_save_and_load_and_a_legacy_encoder_layout_still_loads(tiny_teacher, tmp_path):
    import copy
    import json

    import torch

    from whisperops_trainer import params
    from whisperops_trainer.compress import (HEADS_KEY, LEGACY_HEADS_KEY, attention_blocks, count_params, head_layout,
                                             load_whisper, make_student, prune_heads)
    from whisperops_trainer.export import copy_hf_side_files

    m = copy.deepcopy(tiny_teacher)
    cuts = {k: v for k, v in _CUTS.items()}
    prune_heads(m, [[h for h in range(4) if h not in cuts[k][li]] for k, li, _ in attention_blocks(m)])
    x, ids, _ = _toy_batch()
    with torch.no_grad():
        want = m(input_features=x, decoder_input_ids=ids).logits
    m.save_pretrained(str(tmp_path / "p"), safe_serialization=True)
    copy_hf_side_files(Path(str(tiny_teacher.name_or_path)), tmp_path / "p")
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    assert cfg[HEADS_KEY] == {k: [4 - len(c) for c in v] for k, v in _CUTS.items()} and LEGACY_HEADS_KEY not in cfg
    again = load_whisper(tmp_path / "p")
    assert head_layout(again) == head_layout(m) and count_params(tmp_path / "p") == params.count(m)[1]
    with torch.no_grad():
        assert torch.allclose(again(input_features=x, decoder_input_ids=ids).logits, want, atol=1e-6)
    # a student cut from a pruned model takes its layers' layouts
    student, plan = make_student(again, encoder_layers=2, decoder_layers=2)
    assert head_layout(student) == {k: [4 - len(v[i]) for i in (0, 3)] for k, v in _CUTS.items()}
    # a model pruned before (encoder heads only, the legacy key) loads with uniform decoder heads
    legacy = copy.deepcopy(tiny_teacher)
    prune_heads(legacy, [[h for h in range(4) if not (k == "encoder" and h in _CUTS["encoder"][li])]
                         for k, li, _ in attention_blocks(legacy)])
    delattr(legacy.config, HEADS_KEY)
    setattr(legacy.config, LEGACY_HEADS_KEY, [3, 2, 4, 1])
    legacy.save_pretrained(str(tmp_path / "l"), safe_serialization=True)
    assert head_layout(load_whisper(tmp_path / "l")) == {"encoder": [3, 2, 4, 1], "decoder": [4] * 4, "cross": [4] * 4}


def test_a_head_pruning_job_publishes_smaller_graphs_with_per_layer_decoder_caches(tmp_path, shared_data, model_dir):
    import json

    import onnx

    from whisperops_trainer import manifest

    f = _distill_job(tmp_path, shared_data, model_dir, 1.0)
    job = json.loads(f.read_text())
    job["spec"]["compression"] = {"headPruning": {"fraction": 0.4, "importanceSamples": 8, "selection": "ablation",
                                                  "kindWeights": {"decoder": 8}}}
    job["spec"]["method"] = {"type": "freezeEncoder"}
    f.write_text(json.dumps(job))
    p, res = _run(f, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:] + p.stdout[-3000:]
    c = res["compression"]
    assert c["techniques"] == ["headPruning"] and (c["headsBefore"], c["headsAfter"]) == (48, 29)
    assert c["paramsAfter"] == c["paramsBefore"] - 19 * (4 * 64 * 256 + 2 * 64)
    out = tmp_path / "out" / "student"
    cfg = json.loads((out / "config.json").read_text())
    lay = cfg["whisperops_attention_heads"]
    assert sum(sum(v) for v in lay.values()) == 29 and min(min(v) for v in lay.values()) >= 1
    man = json.loads((out / manifest.MANIFEST).read_text())
    comp = man["training"]["compression"]
    assert comp["headLayout"] == lay and {k: [len(x) for x in v] for k, v in comp["headsKept"].items()} == lay
    # chosen by greedy ablation: 19 heads in rounds of 4 (4, 8, 12, 16, 19), the loss measured before each
    sel = comp["headSelection"]
    assert sel["selection"] == "ablation" and len(sel["lossByRound"]) == 5 and all(x > 0 for x in sel["lossByRound"])
    assert sel["kindWeights"] == {"encoder": 1, "decoder": 8, "cross": 1}  # the CRD's defaults fill the others
    # the merged decoder (fp32 and INT8) declares each layer's own past/present head counts
    for name in ("decoder_model_merged.onnx", "decoder_model_merged_quantized.onnx"):
        dec = onnx.load(str(out / "onnx" / name), load_external_data=False)
        dims = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
                for v in list(dec.graph.input) + list(dec.graph.output)}
        for layer in range(4):
            for kv in ("key", "value"):
                assert dims[f"past_key_values.{layer}.decoder.{kv}"][1:] == [lay["decoder"][layer], "past_decoder_sequence_length", 64]
                assert dims[f"past_key_values.{layer}.encoder.{kv}"][1:] == [lay["cross"][layer], "encoder_sequence_length", 64]
                assert dims[f"present.{layer}.decoder.{kv}"][1] == lay["decoder"][layer]
                assert dims[f"present.{layer}.encoder.{kv}"][1] == lay["cross"][layer]
    n = lambda g: sum(int(np.prod(t.dims)) for t in g.graph.initializer)  # noqa: E731
    for name in ("encoder_model.onnx", "decoder_model_merged.onnx"):
        assert n(onnx.load(str(out / "onnx" / name))) < n(onnx.load(str(model_dir / "onnx" / name)))
    for name in ("encoder_model_quantized.onnx", "decoder_model_merged_quantized.onnx"):
        assert (out / "onnx" / name).stat().st_size < (model_dir / "onnx" / name).stat().st_size
    # the graphs decode with the agent's greedy loop (onnx_infer sizes each layer's cache from the graph)
    # and give what the PyTorch model gives
    import torch
    from transformers import AutoTokenizer

    from whisperops_trainer import evaluate, suites
    from whisperops_trainer.compress import load_whisper
    from whisperops_trainer.onnx_infer import OnnxWhisper, transcribe

    samples = suites.eval_set("general", 2)
    feats = evaluate.features_for(str(out), samples)
    tok = AutoTokenizer.from_pretrained(str(out))
    hyps = transcribe(out, feats, tok, suffix="_quantized")
    assert len(hyps) == 2 and all(isinstance(h, str) for h in hyps)
    sess = OnnxWhisper(out)
    assert {n: h for n, h in sess.pkv_heads.items() if ".decoder.key" in n} == {
        f"past_key_values.{layer}.decoder.key": lay["decoder"][layer] for layer in range(4)}
    onnx_tokens = sess.generate(feats)
    model = load_whisper(out).eval()
    with torch.no_grad():
        prompt = torch.tensor([sess.prompt] * 2)
        ids = prompt
        for _ in range(max(len(t) for t in onnx_tokens) + 1):
            logits = model(input_features=torch.from_numpy(feats), decoder_input_ids=ids).logits[:, -1]
            logits[:, sess.suppress] = -float("inf")
            if ids.shape[1] == prompt.shape[1] and sess.begin_suppress:
                logits[:, sess.begin_suppress] = -float("inf")
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    for b in range(2):
        gen = ids[b, prompt.shape[1]:].tolist()
        gen = gen[:gen.index(sess.eos)] if sess.eos in gen else gen
        assert gen[:len(onnx_tokens[b])] == onnx_tokens[b]


def test_a_head_pruning_job_can_recover_by_distillation_from_the_unpruned_model(tmp_path, shared_data, model_dir):
    import json

    from whisperops_trainer import manifest

    f = _distill_job(tmp_path, shared_data, model_dir, 1.0)
    job = json.loads(f.read_text())
    job["spec"]["compression"] = {"headPruning": {"fraction": 0.4, "importanceSamples": 8},
                                  "distillation": {"temperature": 2.0, "klWeight": 0.5, "ceWeight": 0.5}}
    f.write_text(json.dumps(job))
    p, res = _run(f, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:] + p.stdout[-3000:]
    c = res["compression"]
    assert c["techniques"] == ["distillation", "headPruning"] and (c["headsBefore"], c["headsAfter"]) == (48, 29)
    # the student is the whole model (no layer or width cut), pruned; the teacher the unpruned base
    assert c["paramsAfter"] == c["paramsBefore"] - 19 * (4 * 64 * 256 + 2 * 64)
    out = tmp_path / "out" / "student"
    man = json.loads((out / manifest.MANIFEST).read_text())
    assert man["training"]["compression"]["student"] == {"encoderLayers": [0, 1, 2, 3], "decoderLayers": [0, 1, 2, 3], "ffnDim": 1024}
    assert sum(sum(v) for v in json.loads((out / "config.json").read_text())["whisperops_attention_heads"].values()) == 29
    # trained against the unpruned base as teacher (the KL term in the loss)
    log = p.stdout + p.stderr
    distilling = [json.loads(line) for line in log.splitlines() if '"msg": "Distilling"' in line]
    assert len(distilling) == 1 and distilling[0]["teacher_params"] == c["paramsBefore"] and distilling[0]["kl_weight"] == 0.5
