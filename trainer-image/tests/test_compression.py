"""spec.compression: the CRD's rules re-checked by the trainer, and each technique changing the model as claimed."""
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
    assert c["distillation"] == {"decoderLayers": 2, "temperature": 2, "klWeight": 0.5, "ceWeight": 0.5}
    assert c["headPruning"] == {"fraction": 0.4, "importanceSamples": 64}
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


def test_a_technique_this_trainer_lacks_is_refused_not_skipped(monkeypatch):
    monkeypatch.setattr(pipeline, "IMPLEMENTED_COMPRESSION", ())
    spec = jobspec.validate_spec(_spec(compression={"headPruning": {}}))
    with pytest.raises(jobspec.InvalidJob, match="headPruning is not implemented"):
        pipeline.check_compression(spec)
    assert pipeline.check_compression(jobspec.validate_spec(_spec())) == []
