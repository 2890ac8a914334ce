"""`run`: the whole FineTuneJob — data, base evaluation, training, evaluation, export, publish,
result. Exit codes: 0 success, 2 invalid input (not retried), 3 quality gate failed (not retried),
anything else retryable."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from . import log, manifest, preflight, result, roles, synth, uri
from .data import (DatasetError, Sample, Stage, mix_replay, plan_curriculum, read_manifest, read_manifests, split_sentences,
                   write_manifest)
from .export import QualityGateFailed
from .jobspec import InvalidJob, load_job
from .preflight import PreflightFailed
from .train import TrainConfig

EXIT_OK, EXIT_INVALID, EXIT_GATE, EXIT_RETRY = 0, 2, 3, 1


class WorkerNodeDone(Exception):
    """A node other than node 0 of a multi-node job finished its share (exit 0, no result)."""
DEFAULT_MAX_WER_INCREASE = 0.02


def _eval_max() -> int:
    return int(os.environ.get("WHISPEROPS_EVAL_MAX", "300"))


def _is_manifest(text: str) -> bool:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    return first.lstrip().startswith("{")


def _read_source(u: str, what: str) -> str:
    try:
        return uri.read_text(u)
    except FileNotFoundError as e:
        raise DatasetError(f"{what} not found: {u}") from e


def _check_audio(samples: Sequence[Sample], what: str) -> None:
    missing = [s.audio for s in samples if uri.is_local(s.audio) and not uri.to_path(s.audio).is_file()]
    if missing:
        raise DatasetError(f"{what}: {len(missing)} audio file(s) missing, e.g. {missing[0]}")


def _localize(samples: list[Sample], dest: Path, what: str) -> list[Sample]:
    """Download remote (s3, http(s)) audio of a manifest into dest, concurrently (training reads local files)."""
    out: list[Sample] = []
    todo: list[tuple[str, Path]] = []
    for i, s in enumerate(samples):
        if uri.is_local(s.audio):
            out.append(s)
            continue
        suffix = Path(s.audio.split("?", 1)[0]).suffix.lower() or ".wav"
        p = dest / f"{i:07d}{suffix}"
        if not p.exists():
            todo.append((s.audio, p))
        out.append(Sample(str(p), s.text, s.scenario, s.voice, s.wpm, s.pitch, s.role))
    if todo:
        t0 = time.time()
        try:
            n = uri.download_many(todo)
        except FileNotFoundError as e:
            raise DatasetError(f"{what}: audio not found: {e}") from e
        log.info("Downloaded audio", what=what, files=len(todo), bytes=n, seconds=round(time.time() - t0, 2))
    return out


def _data_or_text(u: str, scenario: str, what: str) -> tuple[list[Sample] | None, str]:
    """A manifest (or a folder of manifests: samples) or a text corpus (text)."""
    if uri.is_folder(u):
        return read_manifests(u, scenario), ""
    text = _read_source(u, what)
    if _is_manifest(text):
        return read_manifest(u, scenario, text=text), text
    return None, text


class Data:
    def __init__(self) -> None:
        self.domain: list[Sample] = []
        self.general: list[Sample] = []
        self.evals: dict[str, list[Sample]] = {}
        self.scenario = "domain"


def prepare_data(spec: dict[str, Any], work: Path, seed: int) -> Data:
    ds = spec["dataset"]
    syn = ds.get("synthesize")
    d = Data()
    d.scenario = ds.get("scenario") or (syn or {}).get("scenario") or "domain"
    eval_specs = {e["scenario"]: e["uri"] for e in ds.get("evaluation", [])}
    n_eval = _eval_max()
    rng = random.Random(seed)
    syn_cfg = synth.SynthConfig(seed=seed)
    if syn:
        syn_cfg = synth.SynthConfig(voices=list(syn["voices"]), wpm=(syn["wordsPerMinute"]["min"], syn["wordsPerMinute"]["max"]),
                                    pitch=(syn["pitch"]["min"], syn["pitch"]["max"]), seed=seed)
    eval_voices = [v for v in synth.TRAIN_VOICES if v not in syn_cfg.voices] or list(syn_cfg.voices)
    eval_cfg = synth.SynthConfig(voices=eval_voices, wpm=syn_cfg.wpm, pitch=syn_cfg.pitch, seed=seed + 1)

    log.set_stage("data")
    manifest_samples: list[Sample] = []
    if "uri" in ds:
        manifest_samples = read_manifests(ds["uri"], d.scenario)
        if not manifest_samples:
            log.warn("No manifests under the dataset folder", uri=ds["uri"])
        _check_audio(manifest_samples, "dataset")
        manifest_samples = _localize(manifest_samples, work / "audio" / "dataset", "dataset")
    corpus: list[str] = []
    if syn:
        corpus = synth.dedupe(ln.strip() for ln in _read_source(syn["corpusUri"], "synthesis corpus").splitlines() if ln.strip())
        if not corpus:
            raise DatasetError(f"synthesis corpus is empty: {syn['corpusUri']}")

    heldout: list[str] = []
    if d.scenario not in eval_specs:
        # no evaluation set for the job's scenario: hold out sentences (never utterances) of the data
        if corpus:
            corpus, heldout = split_sentences(corpus, 0.2, seed)
            heldout = heldout[:n_eval]
        elif manifest_samples:
            keep, held = split_sentences([s.text for s in manifest_samples], 0.2, seed)
            held_set = set(held)
            d.evals[d.scenario] = [s for s in manifest_samples if s.text in held_set][:n_eval]
            manifest_samples = [s for s in manifest_samples if s.text not in held_set]

    sel = ds.get("selection")
    if sel:
        from .select import select_top_k

        ref = [ln for ln in _read_source(sel["referenceUri"], "selection reference").splitlines() if ln.strip()]
        pool = [s.text for s in manifest_samples] + corpus
        keep = select_top_k(pool, ref, int(sel["topK"]))
        nm = len(manifest_samples)
        manifest_samples = [manifest_samples[i] for i in keep if i < nm]
        corpus = [corpus[i - nm] for i in keep if i >= nm]
        log.info("Selected by TF-IDF", kept=len(keep), pool=len(pool), reference_lines=len(ref))
    # the synthesis cap takes a random subset of the (selected) sentences, not the top of a ranking,
    # so that it covers all the terms rather than the few with the highest IDF
    rng.shuffle(corpus)

    synthesized: list[Sample] = []
    if syn:
        log.set_stage("synthesize")
        corpus = corpus[: int(syn["maxUtterances"])]
        role_voices = roles.voice_split(spec)[0] if (spec.get("compression") or {}).get("speakerRole") else {}
        if role_voices:  # speakerRole: every sentence once per role, by that role's training voices
            synthesized = roles.synthesize_by_role(corpus, syn["scenario"], work / "audio" / "synth", role_voices, seed,
                                                   syn_cfg.wpm, syn_cfg.pitch, workers=os.cpu_count() or 2)
        else:
            synthesized = synth.synthesize(corpus, syn["scenario"], work / "audio" / "synth", syn_cfg, workers=os.cpu_count() or 2)
    if heldout:
        d.evals[d.scenario] = synth.synthesize(heldout, d.scenario, work / "audio" / f"eval-{d.scenario}", eval_cfg,
                                               workers=os.cpu_count() or 2)
    d.domain = manifest_samples + synthesized
    if not d.domain:
        raise DatasetError("no in-domain training samples (empty manifest, selection or corpus)")

    rp = ds.get("replay")
    if rp:
        manifest_rp, text = _data_or_text(rp["uri"], "general", "replay data")
        if manifest_rp is not None:
            d.general = manifest_rp
            if not d.general:
                raise DatasetError(f"no replay samples under {rp['uri']}")
            _check_audio(d.general, "replay")
            d.general = _localize(d.general, work / "audio" / "replay", "replay")
        else:
            sents = synth.dedupe(ln.strip() for ln in text.splitlines() if ln.strip())
            if "general" not in eval_specs:
                sents, held = split_sentences(sents, min(0.2, n_eval / max(1, len(sents))), seed)
                d.evals["general"] = synth.synthesize(held[:n_eval], "general", work / "audio" / "eval-general",
                                                      eval_cfg, workers=os.cpu_count() or 2)
            n_rep = min(len(sents), max(32, len(d.domain)), 4000)  # a replay pool as large as the domain set
            pick = random.Random(seed + 2).sample(sents, n_rep)
            d.general = synth.synthesize(pick, "general", work / "audio" / "replay", syn_cfg, workers=os.cpu_count() or 2)

    for scen, u in eval_specs.items():
        manifest_ev, text = _data_or_text(u, scen, f"evaluation set {scen}")
        if manifest_ev is not None:
            s = manifest_ev[:n_eval]
            if not s:
                raise DatasetError(f"evaluation set {scen}: no samples under {u}")
            _check_audio(s, f"evaluation set {scen}")
            d.evals[scen] = _localize(s, work / "audio" / f"eval-{scen}", f"evaluation set {scen}")
        else:
            sents = synth.dedupe(ln.strip() for ln in text.splitlines() if ln.strip())
            sents = random.Random(seed + 3).sample(sents, min(n_eval, len(sents)))
            d.evals[scen] = synth.synthesize(sents, scen, work / "audio" / f"eval-{scen}", eval_cfg,
                                             workers=os.cpu_count() or 2)
    log.info("Data ready", domain=len(d.domain), general=len(d.general),
             evaluation={k: len(v) for k, v in d.evals.items()})
    return d


def noise_files(source: str, work: Path) -> list[str]:
    """Local paths of the noise recordings under a folder URI (remote ones downloaded into work/noise)."""
    from .augment import list_noise_files

    if uri.is_local(source):
        found = list_noise_files(uri.to_path(source))
    else:
        folder = source if source.endswith("/") else source + "/"
        remote = uri.list_files(folder, (".wav", ".flac", ".ogg"))
        pairs = [(u, work / "noise" / u[len(folder):]) for u in remote]
        uri.download_many([(u, p) for u, p in pairs if not p.exists()])
        found = [str(p) for _, p in pairs]
    if not found:
        raise DatasetError(f"no noise recordings (.wav/.flac/.ogg) under {source}")
    return found


def train_config(spec: dict[str, Any], work: Path | None = None) -> TrainConfig:
    from .augment import AugmentConfig

    a = spec.get("augmentation", {})
    sp = a.get("speedPerturbation", {"min": 0.9, "max": 1.1})
    nz = a.get("noise", {})
    sa = a.get("specAugment", {})
    noise_files_: list[str] = []
    if nz.get("sourceUri"):
        noise_files_ = noise_files(nz["sourceUri"], work or Path(tempfile.mkdtemp(prefix="whisperops-noise-")))
    aug = AugmentConfig(speed=(sp["min"], sp["max"]), snr_db=(nz.get("snrDb", {}).get("min", 5), nz.get("snrDb", {}).get("max", 15)),
                        noise_prob=nz.get("probability", 0.5), noise_files=noise_files_,
                        mask_time_prob=sa.get("maskTimeProb", 0.05), mask_time_length=sa.get("maskTimeLength", 10),
                        mask_feature_prob=sa.get("maskFeatureProb", 0.0), mask_feature_length=sa.get("maskFeatureLength", 10))
    m = spec.get("method", {})
    lo = m.get("lora", {})
    t = spec.get("training", {})
    return TrainConfig(method=m.get("type", "lora"), lora_rank=lo.get("rank", 16), lora_alpha=lo.get("alpha", 32),
                       lora_dropout=lo.get("dropout", 0.05), target_modules=tuple(lo.get("targetModules", ["q_proj", "v_proj"])),
                       learning_rate=t.get("learningRate"), batch_size=t.get("batchSize", 16),
                       grad_accum=t.get("gradientAccumulationSteps", 1), max_steps=t.get("maxSteps"),
                       precision=t.get("precision", "auto"), seed=t.get("seed", 42), augment=aug,
                       num_workers=min(8, max(0, (os.cpu_count() or 1) - 1)) if _has_cuda() else 0)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def curriculum(spec: dict[str, Any], d: Data, seed: int) -> list[tuple[str, list[Sample]]]:
    rp = spec["dataset"].get("replay")
    stages_spec = (spec.get("curriculum") or {}).get("stages")
    if stages_spec:
        stages = [Stage(s.get("name", f"stage-{i}"), float(s["domainFraction"]), float(s["epochs"])) for i, s in enumerate(stages_spec)]
    else:
        frac = 1.0 - float(rp.get("fraction", 0.2)) if rp and d.general else 1.0
        stages = [Stage("main", frac, float(spec.get("training", {}).get("epochs", 1)))]
    rng = random.Random(seed)
    out = []
    for st, n in plan_curriculum(stages, len(d.domain)):
        out.append((st.name, mix_replay(d.domain, d.general, st.domain_fraction, n, rng)))
    return out


def run_training(base_dir: Path, stages: list[tuple[str, list[Sample]]], cfg: TrainConfig, out_dir: Path, spec: dict[str, Any], work: Path):
    """In-process on CPU or one GPU; under torchrun with one process per GPU when there are more."""
    import torch

    from . import train

    res_spec = spec.get("resources", {})
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    per_node = int(os.environ.get("NPROC_PER_NODE") or res_spec.get("gpusPerNode", 1) or 1)
    world = min(per_node, gpus) if gpus else 1
    nodes = int(os.environ.get("NNODES") or res_spec.get("nodes", 1))
    if world <= 1 and nodes <= 1 or "LOCAL_RANK" in os.environ:
        return train.train(str(base_dir), stages, cfg, str(out_dir)).to_json()
    plan = {"model_dir": str(base_dir), "out_dir": str(out_dir), "cfg": cfg.to_json(), "stages": []}
    for i, (name, samples) in enumerate(stages):
        p = work / f"stage-{i}.jsonl"
        write_manifest(p, samples)
        plan["stages"].append([name, str(p)])
    plan_file = work / "plan.json"
    plan_file.write_text(json.dumps(plan))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={world}"]
    if nodes > 1:  # the operator provides MASTER_ADDR/MASTER_PORT and NODE_RANK (indexed Job) for multi-node
        cmd += [f"--nnodes={nodes}", f"--node_rank={os.environ.get('NODE_RANK', os.environ.get('JOB_COMPLETION_INDEX', '0'))}",
                f"--master_addr={os.environ['MASTER_ADDR']}", f"--master_port={os.environ.get('MASTER_PORT', '29500')}"]
    else:
        cmd += ["--standalone"]
    cmd += ["-m", "whisperops_trainer", "train", "--plan", str(plan_file)]
    log.info("Launching distributed training", processes=world, nodes=nodes)
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise RuntimeError(f"distributed training failed with exit code {r.returncode}")
    return json.loads((out_dir / "training_report.json").read_text())


def train_from_plan(plan_file: str) -> int:
    from . import train

    plan = json.loads(Path(plan_file).read_text())
    stages = [(name, read_manifest(p)) for name, p in plan["stages"]]
    train.train(plan["model_dir"], stages, TrainConfig.from_json(plan["cfg"]), plan["out_dir"])
    return 0


def _evaluate(model_dir: Path, evals: dict[str, list[Sample]], label: str, features: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    from . import evaluate
    from .compress import load_whisper

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = load_whisper(model_dir).to(dev)
    out = {}
    for scen, samples in evals.items():
        if scen not in features:
            features[scen] = evaluate.features_for(str(model_dir), samples)
        sc, _ = evaluate.evaluate_torch(model, tok, str(model_dir), samples, batch_size=64, device=dev,
                                        label=label, features=features[scen])
        out[scen] = sc[scen]
    return out


def _evaluate_onnx(model_dir: Path, evals: dict[str, list[Sample]], suffix: str, features: dict[str, Any]) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from . import evaluate
    from .onnx_infer import OnnxWhisper, transcribe

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    sess = OnnxWhisper(model_dir, suffix)
    out = {}
    for scen, samples in evals.items():
        hyps = transcribe(model_dir, features[scen], tok, session=sess)
        out[scen] = evaluate.score([s.text for s in samples], hyps)
    return out


def base_model(spec: dict[str, Any], work: Path) -> tuple[Path, str]:
    """The base model folder, local: used in place when local (file://, pvc://), else downloaded —
    model-manifest.json first (checked against baseModel.sha256 before anything else is fetched),
    then every file it lists but the ONNX exports (training needs the HF files only), each checked
    against the manifest's size and sha256."""
    return fetch_model(spec["baseModel"], work / "base", "base model", "spec.baseModel")


def fetch_model(bm: dict[str, Any], dest: Path, what: str, field: str) -> tuple[Path, str]:
    """A model folder named by a model reference ({uri, version?, sha256?}), local; see base_model."""
    u = bm["uri"]
    try:
        if uri.is_local(u):
            d = uri.fetch_dir(u, dest, [])
        else:
            t0 = time.time()
            raw = uri.read_bytes(uri.join(u if u.endswith("/") else u + "/", manifest.MANIFEST))
            if bm.get("sha256") and hashlib.sha256(raw).hexdigest() != bm["sha256"]:
                raise InvalidJob(f"{what} manifest sha256 {hashlib.sha256(raw).hexdigest()} does not match "
                                 f"{field}.sha256")
            man = json.loads(raw)
            files = {f: meta for f, meta in man["files"].items() if not f.startswith("onnx/")}
            d = uri.fetch_dir(u if u.endswith("/") else u + "/", dest, files)
            (dest / manifest.MANIFEST).write_bytes(raw)
            log.info(f"Downloaded {what}", uri=u, files=len(files), bytes=sum(int(m.get("bytes", 0)) for m in files.values()),
                     seconds=round(time.time() - t0, 2))
    except FileNotFoundError as e:
        raise InvalidJob(f"{what} not found: {u} ({e})") from e
    except uri.ChecksumMismatch as e:
        raise InvalidJob(f"{what} damaged: {e}") from e
    if not (d / "config.json").is_file():
        raise InvalidJob(f"{what} folder has no config.json: {u}")
    man_path = d / manifest.MANIFEST
    if bm.get("sha256"):
        if not man_path.is_file():
            raise InvalidJob(f"{field}.sha256 is set but the artifact has no model-manifest.json")
        got = manifest.sha256_file(man_path)
        if got != bm["sha256"]:
            raise InvalidJob(f"{what} manifest sha256 {got} does not match {field}.sha256")
    version = bm.get("version")
    if not version and man_path.is_file():
        version = json.loads(man_path.read_text()).get("version")
    return d, version or "unknown"


# spec.compression techniques this trainer carries out; the others are refused as invalid input
# (exit 2) rather than silently skipped.
IMPLEMENTED_COMPRESSION: tuple[str, ...] = ("distillation", "headPruning", "quantizationAware", "speakerRole")


def check_compression(spec: dict[str, Any]) -> list[str]:
    """The spec.compression techniques requested, in the order they are applied; InvalidJob for one
    this trainer does not implement."""
    comp = spec.get("compression") or {}
    asked = [k for k in ("distillation", "headPruning", "quantizationAware", "speakerRole") if k in comp]
    missing = [k for k in asked if k not in IMPLEMENTED_COMPRESSION]
    if missing:
        raise InvalidJob(f"spec.compression.{missing[0]} is not implemented by this trainer version "
                         f"(implemented: {', '.join(IMPLEMENTED_COMPRESSION) or 'none'})")
    if "quantizationAware" in asked:
        ex = spec.get("export") or {}
        if not ex.get("onnx", True) or ex.get("quantization", "int8") != "int8":
            raise InvalidJob("spec.compression.quantizationAware exports static INT8: it requires export.onnx: true and "
                             "export.quantization int8")
        if (spec.get("method") or {}).get("type", "lora") == "lora":
            raise InvalidJob("spec.compression.quantizationAware fake-quantizes the model's own weights: method.type must "
                             "be full or freezeEncoder, not lora")
    return asked


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    t_start = time.time()
    spec, meta = job["spec"], job.get("metadata", {})
    check_compression(spec)
    work = Path(os.environ.get("WHISPEROPS_WORK_DIR") or tempfile.mkdtemp(prefix="whisperops-"))
    work.mkdir(parents=True, exist_ok=True)
    seed = int(spec.get("training", {}).get("seed", 42))
    log.set_stage("prepare")
    base_dir, parent_version = base_model(spec, work)
    log.info("Base model", dir=str(base_dir), version=parent_version)
    cfg = train_config(spec, work)
    techniques = check_compression(spec)
    qa = (spec.get("compression") or {}).get("quantizationAware")
    if qa is not None:
        cfg.qat_calibration_samples = int(qa.get("calibrationSamples", 32))
    dist = (spec.get("compression") or {}).get("distillation")
    train_dir, teacher_dir, student_plan = base_dir, base_dir, None
    if dist:
        train_dir, teacher_dir, student_plan = prepare_distillation(spec, base_dir, work, cfg)
    d = prepare_data(spec, work, seed)
    sr = (spec.get("compression") or {}).get("speakerRole")
    role_eval: list[Sample] = []
    role_details: dict[str, Any] = {}
    role_head_params = 0
    if sr:
        cfg.role_names, cfg.role_loss_weight = list(sr["roles"]), float(sr.get("lossWeight", 0.3))
        role_eval = roles_data(spec, d, work, seed)
    stages = curriculum(spec, d, seed)
    prune_info = None
    hp = (spec.get("compression") or {}).get("headPruning")
    if hp:
        train_dir, prune_info = prune_heads(spec, train_dir, work, stages, seed)

    log.set_stage("evaluate-base")
    feats: dict[str, Any] = {}
    base_scores = _evaluate(base_dir, d.evals, "base", feats) if d.evals else {}
    ref_scores = base_scores
    if teacher_dir != base_dir and d.evals:
        ref_scores = _evaluate(teacher_dir, d.evals, "teacher", feats)

    log.set_stage("train")
    model_dir = work / "model"
    tr = run_training(train_dir, stages, cfg, model_dir, spec, work)
    if int(os.environ.get("NODE_RANK", "0") or 0) != 0:
        # multi-node: node 0 holds the trained model (global rank 0 saves it) and does the rest
        log.info("Training done on a worker node; node 0 evaluates, exports and publishes")
        raise WorkerNodeDone()

    alpha = float(spec.get("training", {}).get("baseInterpolation", 1.0))
    if alpha < 1.0:
        # WiSE-FT against forgetting: theta_base + alpha * (theta_tuned - theta_base). The CRD has no
        # field for it yet (proposed: spec.training.baseInterpolation, number in (0, 1], default 1).
        from .train import interpolate

        tuned = work / "model-tuned"
        if tuned.exists():
            import shutil

            shutil.rmtree(tuned)
        model_dir.rename(tuned)
        interpolate(str(base_dir), str(tuned), alpha, str(model_dir))
        roles.carry_head(tuned, model_dir)
        log.info("Interpolated with the base model (WiSE-FT)", alpha=alpha)

    log.set_stage("evaluate")
    scores = _evaluate(model_dir, d.evals, "fine-tuned", feats) if d.evals else {}
    for scen in scores:
        log.info("WER", scenario=scen, base=base_scores[scen].wer, finetuned=scores[scen].wer,
                 cer=scores[scen].cer, n=scores[scen].n)

    ex = spec.get("export", {})
    compression: dict[str, Any] = {}
    if techniques:
        from .compress import count_params

        compression = {"techniques": techniques, "paramsBefore": count_params(teacher_dir), "paramsAfter": tr["total"],
                       **({"headsBefore": prune_info["headsBefore"], "headsAfter": prune_info["headsAfter"]} if prune_info else {}),
                       "referenceWer": {k: round(v.wer, 4) for k, v in ref_scores.items()}}
        if sr:
            # the published model: its (LoRA-merged) weights plus the head, not the adapters trained
            role_head_params = roles.head_params(roles.load_head(model_dir))
            compression["paramsAfter"] = count_params(model_dir) + role_head_params
            role_details = role_info(spec, model_dir, role_eval)
            if role_details.get("accuracy") is not None:
                compression["roleAccuracy"] = role_details["accuracy"]
        log.info("Compressed", **compression)
        # distillation, head pruning and the role head's joint training change the fp32 model: gated against the uncompressed one; QAT
        # is gated below, its static INT8 model against its own fp32 weights (like post-training INT8)
        if scores and set(techniques) & {"distillation", "headPruning", "speakerRole"}:
            from . import export as export_mod

            max_inc = float(ex.get("maxWerIncrease", DEFAULT_MAX_WER_INCREASE))
            failed = export_mod.quality_gate({k: v.wer for k, v in ref_scores.items()}, {k: v.wer for k, v in scores.items()},
                                             max_inc)
            if failed:
                raise QualityGateFailed(
                    f"compressed ({', '.join(techniques)}) model WER rises more than {max_inc} over the uncompressed "
                    "model in: " + ", ".join(f"{k} {ref_scores[k].wer:.4f}->{scores[k].wer:.4f}" for k in failed))

    log.set_stage("export")
    quant = ex.get("quantization", "int8") if ex.get("onnx", True) else "none"
    quant_scores: dict[str, Any] = {}
    if ex.get("onnx", True):
        from . import export

        export.export_onnx(model_dir, model_dir)
        if sr:
            roles.export_onnx(model_dir)
        if "quantizationAware" in techniques:
            from . import qat

            quant, suffix = "int8-static", "_quantized"
            qat.export_static_int8(model_dir / "onnx", qat.load_params(model_dir))
            if d.evals:
                # post-training dynamic INT8 of the same fp32 model, for comparison (not published)
                dyn = export.quantize_int8(model_dir / "onnx", suffix="_dynamic")
                dyn_scores = _evaluate_onnx(model_dir, d.evals, "_dynamic", feats)
                for f in dyn:
                    f.unlink()
                compression["werInt8Static"] = {}  # filled below, after the static model's evaluation
                compression["werInt8Dynamic"] = {k: round(v.wer, 4) for k, v in dyn_scores.items()}
        elif quant == "int8":
            export.quantize_int8(model_dir / "onnx")
            suffix = "_quantized"
        elif quant == "fp16":
            export.convert_fp16(model_dir / "onnx")
            suffix = "_fp16"
        if quant != "none" and d.evals:
            quant_scores = _evaluate_onnx(model_dir, d.evals, suffix, feats)
            max_inc = float(ex.get("maxWerIncrease", DEFAULT_MAX_WER_INCREASE))
            failed = export.quality_gate({k: v.wer for k, v in scores.items()}, {k: v.wer for k, v in quant_scores.items()}, max_inc)
            if "werInt8Static" in compression:
                compression["werInt8Static"] = {k: round(v.wer, 4) for k, v in quant_scores.items()}
            for k in quant_scores:
                log.info("Quantized WER", scenario=k, float_wer=scores[k].wer, quantized_wer=quant_scores[k].wer,
                         max_increase=max_inc)
            if failed:
                raise QualityGateFailed(
                    f"{quant} model WER rises more than {max_inc} over the float model in: "
                    + ", ".join(f"{k} {scores[k].wer:.4f}->{quant_scores[k].wer:.4f}" for k in failed))

    name = meta.get("name") or "model"
    uid = (meta.get("uid") or "").replace("-", "")
    version = f"{name}-{uid[:8]}" if uid else f"{name}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    version = version[:128]
    metrics = {
        "wer": {k: round(v.wer, 4) for k, v in scores.items()},
        "cer": {k: round(v.cer, 4) for k, v in scores.items()},
        "baseWer": {k: round(v.wer, 4) for k, v in base_scores.items()},
        "evaluation": {"utterancesPerScenario": {k: v.n for k, v in scores.items()},
                       "normalization": "whisperops-basic-v1"},
    }
    if quant_scores:
        metrics["werQuantized"] = {k: round(v.wer, 4) for k, v in quant_scores.items()}
    training = {"method": cfg.method, "steps": tr["steps"], "samplesSeen": tr["samples_seen"],
                "uttPerSec": round(tr["utt_per_sec"], 2), "trainableParams": tr["trainable"],
                "totalParams": tr["total"], "precision": tr["precision"], "processes": tr["world_size"],
                "job": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                        "generation": meta.get("generation")}}
    if compression:
        training["compression"] = {**compression, **({"student": student_plan.to_json()} if student_plan else {}),
                                   **({"headsKept": prune_info["kept"], "headLayout": prune_info["layout"],
                                       "headSelection": {k: prune_info[k] for k in ("selection", "kindWeights", "lossByRound") if k in prune_info}}
                                      if prune_info else {})}
        if sr:
            training["compression"]["speakerRole"] = {"roles": roles.roles_of(model_dir), "head": roles.ONNX_FILE,
                                                      "weights": roles.HEAD_FILE, "configKey": roles.ROLES_KEY,
                                                      "headParams": role_head_params,
                                                      **role_details}
    (model_dir / "training_report.json").unlink(missing_ok=True)
    sha = manifest.write_manifest(model_dir, name=name, version=version, parent_version=parent_version,
                                  quantization=quant, metrics=metrics, extra={"training": training})

    log.set_stage("publish")
    t_pub = time.time()
    model_uri, size = uri.publish_dir(model_dir, spec["output"]["uri"])
    log.info("Published model", uri=model_uri, version=version, sha256=sha, bytes=size,
             seconds=round(time.time() - t_pub, 2))
    return {
        "modelUri": model_uri, "version": version, "sha256": sha, "parentVersion": parent_version,
        "wer": metrics["wer"], "baseWer": metrics["baseWer"], "trainableParams": tr["trainable"],
        "totalParams": tr["total"], "quantization": quant, "durationSeconds": round(time.time() - t_start, 1),
        **({"compression": compression} if compression else {}),
    }


def roles_data(spec: dict[str, Any], d: Data, work: Path, seed: int) -> list[Sample]:
    """spec.compression.speakerRole: checks that training has role-labelled samples (synthesized by the
    role voices, or manifest samples with a "role"); returns the held-out role set (roles.heldout_set)."""
    names = set(spec["compression"]["speakerRole"]["roles"])
    bad = sorted({s.role for s in d.domain + d.general if s.role and s.role not in names})
    if bad:
        raise DatasetError(f"dataset: role {bad[0]!r} is not one of spec.compression.speakerRole.roles")
    n = {r: sum(1 for s in d.domain + d.general if s.role == r) for r in sorted(names)}
    if not any(n.values()):
        raise DatasetError("spec.compression.speakerRole: no role-labelled training samples (map dataset.synthesize "
                           "voices to roles in speakerRole.voices, or give manifest samples a \"role\")")
    held = roles.heldout_set(spec, d.evals, work, seed, _eval_max(), os.cpu_count() or 2)
    log.info("Speaker-role data", training=n, heldout=len(held),
             heldout_voices=roles.voice_split(spec)[1])
    return held


def role_info(spec: dict[str, Any], model_dir: Path, role_eval: list[Sample]) -> dict[str, Any]:
    """Role accuracy of the trained head on the held-out set, with its size and held-out voices."""
    if not role_eval:
        log.warn("No held-out role samples (no held-out voices in speakerRole.voices, no role in the evaluation "
                 "manifests): roleAccuracy is not reported")
        return {}
    acc = roles.accuracy(model_dir, role_eval)
    out = {**acc, "heldoutVoices": roles.voice_split(spec)[1]}
    log.info("Speaker-role accuracy", **out)
    return out


def prune_heads(spec: dict[str, Any], model_dir: Path, work: Path, stages: list[tuple[str, list[Sample]]], seed: int):
    """(pruned model folder, info): the attention heads (encoder self, decoder self, cross) of model_dir
    (the base, or the student) least important on importanceSamples training utterances removed;
    training then recovers."""
    from . import compress

    hp = spec["compression"]["headPruning"]
    if float(spec.get("training", {}).get("baseInterpolation", 1.0)) < 1.0:
        raise InvalidJob("spec.compression.headPruning changes the architecture: training.baseInterpolation must be 1")
    pool = [s for _, ss in stages for s in ss]
    n = min(int(hp.get("importanceSamples", 64)), len(pool))
    picked = random.Random(seed + 5).sample(pool, n)
    log.set_stage("prune")
    out = work / "pruned"
    info = compress.prune_dir(model_dir, out, picked, float(hp.get("fraction", 0.4)), n, seed=seed,
                              selection=str(hp.get("selection", "gradient")), kind_weights=hp.get("kindWeights"))
    return out, info


def prepare_distillation(spec: dict[str, Any], base_dir: Path, work: Path, cfg: TrainConfig):
    """(student folder, teacher folder, plan): the teacher (the base, or distillation.teacherUri) and a
    student cut from the base model's layers; cfg is pointed at the teacher."""
    from . import compress

    dist = spec["compression"]["distillation"]
    if float(spec.get("training", {}).get("baseInterpolation", 1.0)) < 1.0:
        raise InvalidJob("spec.compression.distillation changes the architecture: training.baseInterpolation must be 1")
    teacher_dir = base_dir
    if dist.get("teacherUri"):
        teacher_dir, _ = fetch_model({"uri": dist["teacherUri"]}, work / "teacher", "teacher model",
                                     "spec.compression.distillation.teacherUri")
        tc = json.loads((teacher_dir / "config.json").read_text())
        bc = json.loads((base_dir / "config.json").read_text())
        if tc.get("vocab_size") != bc.get("vocab_size"):
            raise InvalidJob(f"spec.compression.distillation.teacherUri: the teacher's vocabulary ({tc.get('vocab_size')}) "
                             f"is not the base model's ({bc.get('vocab_size')})")
        if float(dist.get("hiddenWeight", 0)) > 0 and tc.get("d_model") != bc.get("d_model"):
            raise InvalidJob(f"spec.compression.distillation.hiddenWeight: matches hidden states, so the teacher's width "
                             f"(d_model {tc.get('d_model')}) must be the base model's ({bc.get('d_model')})")
    student_dir = work / "student"
    try:
        plan = compress.save_student(base_dir, student_dir, dist.get("encoderLayers"), dist.get("decoderLayers"),
                                     dist.get("ffnDim"))
    except compress.StudentError as e:
        raise InvalidJob(f"spec.compression.distillation: {e}") from e
    cfg.teacher_dir = str(teacher_dir)
    cfg.distill_temperature = float(dist.get("temperature", 2.0))
    cfg.distill_kl_weight = float(dist.get("klWeight", 0.5))
    cfg.distill_ce_weight = float(dist.get("ceWeight", 0.5))
    cfg.distill_hidden_weight = float(dist.get("hiddenWeight", 0.0))
    log.info("Student", **plan.to_json(), params=compress.count_params(student_dir),
             teacher_params=compress.count_params(teacher_dir))
    return student_dir, teacher_dir, plan


def run(job_file: str | None) -> int:
    log.set_stage("init")
    try:
        job = load_job(job_file)
        log.info("Job loaded", name=job["metadata"].get("name"), namespace=job["metadata"].get("namespace"),
                 generation=job["metadata"].get("generation"))
        log.set_stage("preflight")
        preflight.run(job["spec"])
        res = run_job(job)
    except PreflightFailed as e:
        log.error("Preflight failed", reason="PreflightFailed", error=str(e))
        result.write(result.encode_failure("PreflightFailed", str(e)))
        return EXIT_INVALID
    except (InvalidJob, DatasetError) as e:
        log.error("Invalid input", reason="InvalidInput", error=str(e))
        result.write(result.encode_failure("InvalidInput", str(e)))
        return EXIT_INVALID
    except WorkerNodeDone:
        return EXIT_OK
    except QualityGateFailed as e:
        log.error("Quality gate failed", reason="QualityGateFailed", error=str(e))
        result.write(result.encode_failure("QualityGateFailed", str(e)))
        return EXIT_GATE
    except Exception as e:  # noqa: BLE001 — anything else is retryable
        log.error("Training failed", reason="Error", error=f"{type(e).__name__}: {e}",
                  traceback=traceback.format_exc()[-2000:])
        result.write(result.encode_failure("Error", f"{type(e).__name__}: {e}"))
        return EXIT_RETRY
    data = result.encode(res)
    result.write(data)
    log.info("Done", **{k: res[k] for k in ("modelUri", "version", "durationSeconds")})
    return EXIT_OK
