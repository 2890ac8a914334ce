"""Quantization-aware training (spec.compression.quantizationAware) and the static INT8 QDQ export."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def calibrated(model_dir, finance_eval):
    """The embedded model with QAT fake-quant modules, calibrated on 8 held-out utterances."""
    import torch

    from whisperops_trainer import evaluate, qat
    from whisperops_trainer.compress import load_whisper

    feats = evaluate.features_for(str(model_dir), finance_eval)
    model = load_whisper(model_dir)
    n = qat.prepare(model)
    ids = torch.tensor([[1000, 1001, 1002, 1003]])
    cal = [{"input_features": torch.from_numpy(feats[i:i + 4]), "decoder_input_ids": ids.repeat(4, 1)} for i in (0, 4)]
    assert qat.calibrate(model, cal) == 2
    return model, n, feats


def test_fake_quant_modules_wrap_every_projection_and_leave_fp32_weights_behind(model_dir, calibrated):
    import torch
    from torch.ao.quantization import FakeQuantize

    from whisperops_trainer import qat
    from whisperops_trainer.compress import load_whisper

    model, n, feats = calibrated
    # 4 encoder layers × 6 projections + 4 decoder layers × 10 (self + cross attention, fc1, fc2)
    assert n == 64
    fqs = qat.fake_quants(model)
    assert len(fqs) == 128 and all(isinstance(m, FakeQuantize) for m in fqs)
    w = [m for m in fqs if m.qscheme == torch.per_channel_symmetric]
    a = [m for m in fqs if m.qscheme == torch.per_tensor_affine]
    assert len(w) == len(a) == 64
    assert all(m.dtype == torch.qint8 and m.fake_quant_enabled[0] == 1 for m in w)
    assert all(m.dtype == torch.quint8 and m.fake_quant_enabled[0] == 1 and m.observer_enabled[0] == 0 for m in a)
    # training mode computes on the quantization grid: the logits move, and the weights it multiplies are int8 × scale
    ref = load_whisper(model_dir).eval()
    x = torch.from_numpy(feats[8:10])
    ids = torch.tensor([[1000, 1001, 1002, 1003]]).repeat(2, 1)
    with torch.no_grad():
        fq = model.eval()(input_features=x, decoder_input_ids=ids).logits
        fp = ref(input_features=x, decoder_input_ids=ids).logits
    assert 0 < (fq - fp).abs().max().item() < 0.2 * fp.abs().max().item()
    lin = model.model.encoder.layers[0].fc1
    wq = lin.weight.detach()
    scale = lin.parametrizations.weight[0].scale
    steps = wq / scale[:, None]
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    # finish(): fake-quant modules gone, the original fp32 weights and state-dict keys back
    # (a model of its own: a deep copy would share the parametrized class that finish() changes)
    m2 = load_whisper(model_dir)
    qat.prepare(m2)
    qat.calibrate(m2, [{"input_features": x, "decoder_input_ids": ids}])
    params = qat.finish(m2)
    assert qat.fake_quants(m2) == [] and set(params) == {name for name, _ in qat.quantized_linears(m2)}
    assert set(m2.state_dict()) == set(ref.state_dict())
    assert torch.equal(m2.model.encoder.layers[0].fc1.weight, ref.model.encoder.layers[0].fc1.weight)
    assert all(0 < p["scale"] and 0 <= p["zeroPoint"] <= 255 for p in params.values())


def test_weight_grid_is_torchs_per_channel_symmetric_int8(calibrated):
    import torch

    from whisperops_trainer import qat

    model, _, _ = calibrated
    lin = model.model.decoder.layers[1].encoder_attn.k_proj
    fq = lin.parametrizations.weight[0]
    w = lin.parametrizations.weight.original.detach()
    fq(w)  # observe the current weights
    torch_fq = torch.fake_quantize_per_channel_affine(w, fq.scale, fq.zero_point.int(), 0, -128, 127)
    q, s = qat.weight_qparams(w.numpy().T)  # the ONNX MatMul weight is W^T (in × out, channel = column)
    # the same integers and values as torch's fake quantization of the training
    assert np.array_equal(q.astype(np.float32) * s, torch_fq.numpy().T)
    assert q.dtype == np.int8 and np.allclose(s, fq.scale.numpy())


def test_static_graphs_hold_constant_qdq_in_both_decoder_branches_and_match_the_fake_quant_model(model_dir, calibrated, tmp_path):
    import shutil

    import onnx
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper

    from whisperops_trainer import qat

    model, _, feats = calibrated
    act = qat.activation_params(model)
    shutil.copytree(model_dir / "onnx", tmp_path / "onnx")
    out = qat.export_static_int8(tmp_path / "onnx", act)
    assert [p.name for p in out] == ["encoder_model_quantized.onnx", "decoder_model_merged_quantized.onnx"]
    for p in out:
        m = onnx.load(str(p))
        inits = {i.name: i for i in m.graph.initializer}
        graphs = [("main", m.graph)] + [(a.name, a.g) for n in m.graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
        for gname, g in graphs:
            if gname == "main" and p.name.startswith("decoder"):
                continue  # the merged decoder's main graph is the If; its branches hold the layers
            q = [n for n in g.node if n.op_type == "QuantizeLinear"]
            dq = [n for n in g.node if n.op_type == "DequantizeLinear"]
            assert q and len(dq) == 2 * len(q), (p.name, gname)
            # fixed scales: every scale and zero point is an initializer, not computed at run time
            for n in q + dq:
                assert n.input[1] in inits and n.input[2] in inits
            assert not [n for n in g.node if n.op_type in ("DynamicQuantizeLinear", "MatMulInteger")]
            int8_w = [n for n in dq if n.input[0] in inits and inits[n.input[0]].data_type == onnx.TensorProto.INT8]
            assert len(int8_w) == len(q) and all(numpy_helper.to_array(inits[n.input[1]]).ndim == 1 for n in int8_w)
        # the fp32 weights of the quantized MatMuls are gone: about a third of the size
        assert p.stat().st_size < 0.4 * (model_dir / "onnx" / p.name.replace("_quantized", "")).stat().st_size
    # the static encoder computes what the fake-quant model computes
    sess = ort.InferenceSession(str(out[0]), providers=["CPUExecutionProvider"])
    x = feats[8:10]
    got = sess.run(None, {"input_features": x})[0]
    with torch.no_grad():
        want = model.eval().model.encoder(torch.from_numpy(x)).last_hidden_state.numpy()
    err = np.abs(got - want)
    assert np.median(err) < 1e-3 and np.quantile(err, 0.99) < 0.05 * np.abs(want).max()


def test_qat_needs_its_own_weights_and_static_int8_export():
    from whisperops_trainer.jobspec import InvalidJob
    from whisperops_trainer.pipeline import check_compression

    base = {"compression": {"quantizationAware": {"calibrationSamples": 8}}, "export": {"onnx": True, "quantization": "int8"}}
    assert check_compression({**base, "method": {"type": "full"}}) == ["quantizationAware"]
    with pytest.raises(InvalidJob, match="not lora"):
        check_compression({**base, "method": {"type": "lora"}})
    with pytest.raises(InvalidJob, match="export.quantization int8"):
        check_compression({**base, "method": {"type": "full"}, "export": {"onnx": True, "quantization": "fp16"}})


def test_the_crds_result_schema_takes_a_static_int8_result():
    from jsonschema import Draft4Validator

    from whisperops_trainer import jobspec, result

    doc = json.loads(result.encode({"modelUri": "file:///o", "version": "v2", "sha256": "a" * 64, "wer": {"general": 0.2},
                                    "quantization": "int8-static", "compression": {
                                        "techniques": ["quantizationAware"], "paramsBefore": 2, "paramsAfter": 2,
                                        "werInt8Static": {"general": 0.21}, "werInt8Dynamic": {"general": 0.23}}}))
    sch = jobspec.load_schemas()["result"]
    assert not list(Draft4Validator(sch).iter_errors(doc))
    assert {"werInt8Static", "werInt8Dynamic"} <= set(sch["properties"]["compression"]["properties"])
    assert "int8-static" in sch["properties"]["quantization"]["enum"]


def _qat_job(tmp_path, shared_data, model_dir):
    spec = {
        "baseModel": {"uri": f"file://{model_dir}", "version": "tiny-whisper-synth-1.0.0"},
        "dataset": {"scenario": "general",
                    "synthesize": {"corpusUri": f"file://{shared_data}/general/general_corpus.txt", "scenario": "general",
                                   "maxUtterances": 24}},
        "method": {"type": "full"},
        "training": {"learningRate": 0.00002, "batchSize": 8, "maxSteps": 3, "seed": 42},
        "compression": {"quantizationAware": {"calibrationSamples": 8}},
        "export": {"onnx": True, "quantization": "int8", "maxWerIncrease": 1.0},
        "output": {"uri": f"file://{tmp_path}/out/qat"},
    }
    from test_compression import _write_job

    return _write_job(tmp_path, "qat", "9a7e2d3c-aaaa-bbbb-cccc-000000000000", spec)


def test_a_qat_job_publishes_a_static_int8_artifact_the_agents_greedy_loop_decodes(tmp_path, shared_data, model_dir):
    import onnx
    from transformers import AutoTokenizer

    from test_compression import _run
    from whisperops_trainer import evaluate, manifest, qat, suites
    from whisperops_trainer.onnx_infer import transcribe

    p, res = _run(_qat_job(tmp_path, shared_data, model_dir), tmp_path)
    assert p.returncode == 0, p.stderr[-3000:] + p.stdout[-3000:]
    assert '"msg": "Quantization-aware training", "stage": "train", "linears": 64, "fake_quant_modules": 128' in p.stdout
    assert '"msg": "Calibrated activation ranges"' in p.stdout
    assert res["quantization"] == "int8-static"
    c = res["compression"]
    assert c["techniques"] == ["quantizationAware"] and c["paramsBefore"] == c["paramsAfter"] == res["totalParams"]
    assert set(c["werInt8Static"]) == set(c["werInt8Dynamic"]) == set(res["wer"]) == {"general"}
    out = tmp_path / "out" / "qat"
    man = json.loads((out / manifest.MANIFEST).read_text())
    assert man["quantization"] == "int8-static"
    assert man["onnx"]["encoderQuantized"] == "onnx/encoder_model_quantized.onnx"
    assert man["onnx"]["decoderQuantized"] == "onnx/decoder_model_merged_quantized.onnx"
    assert man["metrics"]["werQuantized"] == c["werInt8Static"]
    assert qat.PARAMS_FILE in man["files"] and not any("_dynamic" in f for f in man["files"])
    enc = onnx.load(str(out / "onnx" / "encoder_model_quantized.onnx"))
    assert sum(n.op_type == "QuantizeLinear" for n in enc.graph.node) == 24
    samples = suites.eval_set("general", 2)
    hyps = transcribe(out, evaluate.features_for(str(out), samples), AutoTokenizer.from_pretrained(str(out)), suffix="_quantized")
    assert len(hyps) == 2 and all(h.strip() for h in hyps)
