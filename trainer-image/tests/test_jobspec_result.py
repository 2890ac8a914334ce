import json
from pathlib import Path

import pytest
import yaml

from whisperops_trainer import jobspec, result

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_spec_schema_is_the_crds():
    s = jobspec.load_schemas()
    assert s["version"] == "whisperops.dev/v1alpha1"
    assert {"baseModel", "dataset", "output", "method", "training", "export"} <= set(s["spec"]["properties"])


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("finetunejob-*.yaml")), ids=lambda p: p.name)
def test_example_jobs_are_valid_and_defaulted(path):
    spec = jobspec.validate_spec(yaml.safe_load(path.read_text())["spec"])
    assert spec["training"]["seed"] >= 0
    assert "speedPerturbation" in spec["augmentation"]
    assert spec["backoffLimit"] >= 0


@pytest.mark.parametrize("path", sorted((EXAMPLES / "invalid").glob("ftj-*.yaml")), ids=lambda p: p.name)
def test_invalid_example_jobs_are_rejected(path):
    with pytest.raises(jobspec.InvalidJob):
        jobspec.validate_spec(yaml.safe_load(path.read_text())["spec"])


def test_defaults_follow_the_crd():
    spec = jobspec.validate_spec({"baseModel": {"uri": "file:///m"}, "dataset": {"uri": "file:///d.jsonl"},
                                  "output": {"uri": "file:///o"}, "method": {"type": "lora", "lora": {}}})
    assert spec["method"]["lora"] == {"rank": 16, "alpha": 32, "dropout": 0.05, "targetModules": ["q_proj", "v_proj"]}
    assert spec["augmentation"]["speedPerturbation"] == {"min": 0.9, "max": 1.1}
    assert spec["augmentation"]["noise"]["snrDb"] == {"min": 5, "max": 15}
    assert spec["training"]["precision"] == "auto"
    assert spec["export"]["onnx"] is True


def test_load_job_reads_the_whole_object(tmp_path, monkeypatch):
    job = {"apiVersion": "whisperops.dev/v1alpha1", "kind": "FineTuneJob",
           "metadata": {"name": "a", "namespace": "b", "uid": "u", "generation": 2},
           "spec": {"baseModel": {"uri": "file:///m"}, "dataset": {"uri": "file:///d"}, "output": {"uri": "file:///o"}}}
    f = tmp_path / "finetunejob.json"
    f.write_text(json.dumps(job))
    monkeypatch.setenv("WHISPEROPS_JOB_FILE", str(f))
    got = jobspec.load_job()
    assert got["metadata"]["generation"] == 2 and got["spec"]["method"]["type"] == "lora"


@pytest.mark.parametrize("content,msg", [
    ("{", "not JSON"),
    ("[]", "FineTuneJob object"),
    (json.dumps({"kind": "EdgePool", "spec": {}}), "kind"),
    (json.dumps({"apiVersion": "whisperops.dev/v2", "spec": {}}), "apiVersion"),
    (json.dumps({"spec": {"baseModel": {"uri": "file:///m"}}}), "required"),
])
def test_bad_job_files_are_invalid(tmp_path, content, msg):
    f = tmp_path / "job.json"
    f.write_text(content)
    with pytest.raises(jobspec.InvalidJob, match=msg):
        jobspec.load_job(str(f))


def test_missing_job_file_is_invalid(tmp_path):
    with pytest.raises(jobspec.InvalidJob, match="cannot read"):
        jobspec.load_job(str(tmp_path / "nope.json"))


def _result(n_scen=3):
    return {"modelUri": "file:///o", "version": "v2", "sha256": "a" * 64, "parentVersion": "v1",
            "wer": {f"s{i}": 0.123456 for i in range(n_scen)}, "baseWer": {f"s{i}": 0.5 for i in range(n_scen)},
            "trainableParams": 1, "totalParams": 2, "quantization": "int8", "durationSeconds": 3.5,
            "compression": {"techniques": ["distillation"], "paramsBefore": 4, "paramsAfter": 2, "referenceWer": {"s0": 0.1}},
            "extra": 1}


def test_result_has_exactly_the_contract_keys_and_matches_the_crd_status_schema():
    from jsonschema import Draft4Validator

    data = result.encode(_result())
    doc = json.loads(data)
    assert list(doc) == list(result.KEYS)
    assert doc["wer"]["s0"] == 0.1235
    sch = jobspec.load_schemas()["result"]
    assert not list(Draft4Validator(sch).iter_errors(doc))
    assert set(result.KEYS) <= set(sch["properties"])


def test_result_is_trimmed_to_4_kib():
    big = _result(32)
    big["wer"] = {("scenario-" + "x" * 50 + str(i)): 0.1 for i in range(32)}
    big["baseWer"] = dict(big["wer"])
    data = result.encode(big)
    assert len(data) <= 4096
    doc = json.loads(data)
    assert doc["modelUri"] == "file:///o" and 0 < len(doc["wer"]) < 32
    assert set(doc["wer"]) == set(doc["baseWer"])


def test_result_file_is_configurable(tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPEROPS_RESULT_FILE", str(tmp_path / "r.json"))
    result.write(result.encode(_result()))
    assert json.loads((tmp_path / "r.json").read_text())["version"] == "v2"
