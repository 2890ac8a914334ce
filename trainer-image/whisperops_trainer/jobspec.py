"""The job: the whole FineTuneJob object the operator mounts (ConfigMap key finetunejob.json),
validated against the CRD's own schema (crds/whisperops.dev_finetunejobs.yaml,
openAPIV3Schema.properties.spec) and defaulted the way the API server defaults it."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_JOB_FILE = "/etc/whisperops/job/finetunejob.json"
CRD_FILE = "whisperops.dev_finetunejobs.yaml"


class InvalidJob(ValueError):
    """The job file or its spec is invalid: exit code 2, not retried."""


def crd_path() -> Path:
    env = os.environ.get("WHISPEROPS_CRD_DIR")
    cands = [Path(env)] if env else []
    here = Path(__file__).resolve()
    cands += [p / "crds" for p in here.parents] + [Path("/opt/whisperops/crds")]
    for c in cands:
        if (c / CRD_FILE).is_file():
            return c / CRD_FILE
    raise FileNotFoundError(f"{CRD_FILE} not found (set WHISPEROPS_CRD_DIR)")


def load_schemas() -> dict[str, Any]:
    """{'spec': spec schema, 'result': status.result schema} of the served version."""
    import yaml

    doc = yaml.safe_load(crd_path().read_text())
    ver = next(v for v in doc["spec"]["versions"] if v.get("storage"))
    root = ver["schema"]["openAPIV3Schema"]
    return {"spec": root["properties"]["spec"],
            "result": root["properties"]["status"]["properties"]["result"],
            "version": f'{doc["spec"]["group"]}/{ver["name"]}'}


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """Structural defaulting like kube-apiserver: an absent property with a `default` gets it, and
    defaults are applied inside objects and array items, defaulted ones included."""
    if isinstance(obj, dict) and schema.get("type") == "object":
        for name, sub in (schema.get("properties") or {}).items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                obj[name] = apply_defaults(sub, obj[name])
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for k in list(obj):
                if k not in (schema.get("properties") or {}):
                    obj[k] = apply_defaults(addl, obj[k])
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], x) for x in obj]
    return obj


def unknown_fields(schema: dict[str, Any], obj: Any, path: str = "spec") -> list[str]:
    """Fields the structural schema does not declare (the API server prunes or, with strict field
    validation, rejects them; the trainer rejects them so that a typo never passes silently)."""
    errs: list[str] = []
    if isinstance(obj, dict) and schema.get("type") == "object" and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        for k, v in obj.items():
            if props is not None and k in props:
                errs += unknown_fields(props[k], v, f"{path}.{k}")
            elif isinstance(addl, dict):
                errs += unknown_fields(addl, v, f"{path}.{k}")
            elif props is not None and addl is None:
                errs.append(f"{path}.{k}: unknown field")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            errs += unknown_fields(schema["items"], v, f"{path}[{i}]")
    return errs


def _ranges(obj: Any, path: str, errors: list[str]) -> None:
    """The CEL rule `self.min <= self.max` of every {min, max} range in the spec."""
    if isinstance(obj, dict):
        if isinstance(obj.get("min"), (int, float)) and isinstance(obj.get("max"), (int, float)) and obj["min"] > obj["max"]:
            errors.append(f"{path}: min must be less than or equal to max")
        for k, v in obj.items():
            _ranges(v, f"{path}.{k}", errors)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _ranges(v, f"{path}[{i}]", errors)


def cross_field_errors(spec: dict[str, Any]) -> list[str]:
    """The CRD's x-kubernetes-validations (CEL) that concern a single object, re-checked here."""
    errs: list[str] = []
    _ranges(spec, "spec", errs)
    ds = spec.get("dataset", {})
    if "uri" not in ds and "synthesize" not in ds:
        errs.append("spec.dataset: dataset needs a manifest uri, synthesize, or both")
    m = spec.get("method", {})
    if "lora" in m and m.get("type") != "lora":
        errs.append("spec.method.lora: method.lora is only allowed with method.type lora")
    ex = spec.get("export", {})
    if not ex.get("onnx", True) and ex.get("quantization", "none") != "none":
        errs.append("spec.export.quantization: export.quantization requires export.onnx: true")
    if not ex.get("onnx", True) and "maxWerIncrease" in ex:
        errs.append("spec.export.maxWerIncrease: requires export.onnx: true")
    comp = spec.get("compression") or {}
    dist = comp.get("distillation")
    if dist is not None:
        if m.get("type", "lora") == "lora":
            errs.append("spec.compression.distillation: trains the whole student: method.type must be full or freezeEncoder, not lora")
        if not any(k in dist for k in ("encoderLayers", "decoderLayers", "ffnDim")) and "headPruning" not in comp:
            errs.append("spec.compression.distillation: needs a smaller student: encoderLayers, decoderLayers, ffnDim or headPruning")
        if float(spec.get("training", {}).get("baseInterpolation", 1)) != 1:
            errs.append("spec.compression.distillation: changes the architecture: training.baseInterpolation (WiSE-FT with the base) must be 1")
        if dist.get("klWeight", 0.5) + dist.get("ceWeight", 0.5) <= 0:
            errs.append("spec.compression.distillation: needs klWeight or ceWeight above 0")
    if "headPruning" in comp and float(spec.get("training", {}).get("baseInterpolation", 1)) != 1:
        errs.append("spec.compression.headPruning: changes the architecture: training.baseInterpolation (WiSE-FT with the base) must be 1")
    if "quantizationAware" in comp and (not ex.get("onnx", True) or ex.get("quantization", "int8") != "int8"):
        errs.append("spec.compression.quantizationAware: exports static INT8: it requires export.onnx: true and export.quantization int8")
    if "quantizationAware" in comp and m.get("type", "lora") == "lora":
        errs.append("spec.compression.quantizationAware: fake-quantizes the model's own weights: method.type must be full or freezeEncoder, not lora")
    role = comp.get("speakerRole")
    if role is not None:
        bad = [v.get("role") for v in role.get("voices", []) if v.get("role") not in role.get("roles", [])]
        if bad:
            errs.append(f"spec.compression.speakerRole.voices: every role must be one of roles (not {bad[0]!r})")
    ev = ds.get("evaluation", [])
    names = [e.get("scenario") for e in ev]
    if len(names) != len(set(names)):
        errs.append("spec.dataset.evaluation: scenarios must be unique")
    return errs


def validate_spec(spec: Any, schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate and default a spec; return the defaulted copy or raise InvalidJob with every error."""
    from jsonschema import Draft4Validator

    sch = (schemas or load_schemas())["spec"]
    if not isinstance(spec, dict):
        raise InvalidJob("spec must be an object")
    out = apply_defaults(sch, copy.deepcopy(spec))
    v = Draft4Validator(sch)  # OpenAPI v3.0 schemas are draft-4 style (boolean exclusiveMinimum)
    errs = [f"spec{''.join(f'[{p}]' if isinstance(p, int) else f'.{p}' for p in e.absolute_path)}: {e.message}"
            for e in sorted(v.iter_errors(out), key=lambda e: list(map(str, e.absolute_path)))]
    errs += unknown_fields(sch, out)
    errs += cross_field_errors(out)
    if errs:
        raise InvalidJob("invalid FineTuneJob spec: " + "; ".join(errs[:20]))
    return out


def load_job(path: str | None = None) -> dict[str, Any]:
    """Read the FineTuneJob object ({apiVersion, kind, metadata, spec}); return it with its spec
    validated and defaulted."""
    p = Path(path or os.environ.get("WHISPEROPS_JOB_FILE") or DEFAULT_JOB_FILE)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidJob(f"cannot read job file {p}: {e}") from e
    try:
        job = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidJob(f"job file {p} is not JSON: {e}") from e
    if not isinstance(job, dict) or "spec" not in job:
        raise InvalidJob(f"job file {p} must hold a FineTuneJob object with a spec")
    schemas = load_schemas()
    if job.get("kind", "FineTuneJob") != "FineTuneJob":
        raise InvalidJob(f"kind must be FineTuneJob, got {job.get('kind')!r}")
    if job.get("apiVersion", schemas["version"]) != schemas["version"]:
        raise InvalidJob(f"apiVersion must be {schemas['version']}, got {job.get('apiVersion')!r}")
    job = dict(job)
    job["metadata"] = dict(job.get("metadata") or {})
    job["spec"] = validate_spec(job["spec"], schemas)
    return job
