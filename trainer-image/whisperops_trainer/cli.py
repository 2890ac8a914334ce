"""Command line: `python -m whisperops_trainer <command>`.

  run          the whole FineTuneJob (job file from --job, $WHISPEROPS_JOB_FILE or
               /etc/whisperops/job/finetunejob.json); the command the operator's Job runs
  validate     validate and default a job file, print the defaulted spec (exit 2 when invalid)
  preflight    validate a job file and check every URI it names: inputs readable, output writable
               (exit 2 with one line naming each problem); `run` does the same before anything else
  train        one training run from a plan file (what `run` starts under torchrun on several GPUs)
  synthesize   speak a text corpus with espeak-ng into wavs + a JSONL manifest
  evaluate     WER/CER per scenario of a model folder on a JSONL manifest (PyTorch or ONNX)
  export       ONNX (+ INT8/fp16) of an HF model folder, with model-manifest.json
  export-base  export the embedded base model in place, verify ONNX vs PyTorch, write its manifest
  interpolate  WiSE-FT weight interpolation between a base and a fine-tuned model folder
  params       trainable/total parameters of LoRA on whisper-large-v2, computed on the meta device
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="whisperops_trainer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run a FineTuneJob")
    r.add_argument("--job", default=None)

    v = sub.add_parser("validate", help="validate a job file")
    v.add_argument("--job", default=None)

    f = sub.add_parser("preflight", help="check every URI of a job file (readable inputs, writable output)")
    f.add_argument("--job", default=None)

    t = sub.add_parser("train", help="train from a plan file (torchrun worker)")
    t.add_argument("--plan", required=True)

    s = sub.add_parser("synthesize", help="espeak-ng a corpus into wavs + manifest")
    s.add_argument("--corpus", required=True)
    s.add_argument("--scenario", required=True)
    s.add_argument("--out", required=True, help="output folder (wavs + manifest.jsonl)")
    s.add_argument("--max", type=int, default=0)
    s.add_argument("--voices", default=",".join(["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan"]))
    s.add_argument("--seed", type=int, default=0)

    e = sub.add_parser("evaluate", help="WER/CER of a model on a manifest")
    e.add_argument("--model", required=True)
    e.add_argument("--manifest", required=True)
    e.add_argument("--onnx", choices=["none", "fp32", "int8", "fp16"], default="none")

    x = sub.add_parser("export", help="ONNX export + quantization + manifest of an HF model folder")
    x.add_argument("--model", required=True)
    x.add_argument("--quantization", choices=["int8", "fp16", "none"], default="int8")
    x.add_argument("--version", required=True)
    x.add_argument("--parent-version", default=None)

    b = sub.add_parser("export-base", help="export a base model folder in place (ONNX fp32+INT8, manifest)")
    b.add_argument("--model", required=True)
    b.add_argument("--version", required=True)
    b.add_argument("--n", type=int, default=100, help="utterances per scenario for the metrics")
    b.add_argument("--scenarios", default="general,finance,medical")

    w = sub.add_parser("interpolate", help="WiSE-FT: base + alpha * (tuned - base) into a new model folder")
    w.add_argument("--base", required=True)
    w.add_argument("--tuned", required=True)
    w.add_argument("--alpha", type=float, required=True)
    w.add_argument("--out", required=True)

    p = sub.add_parser("params", help="LoRA parameter count of whisper-large-v2 on the meta device")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--targets", default="q_proj,v_proj")

    args = ap.parse_args(argv)

    if args.cmd == "run":
        from . import pipeline

        return pipeline.run(args.job)
    if args.cmd == "validate":
        from .jobspec import InvalidJob, load_job

        try:
            job = load_job(args.job)
        except InvalidJob as err:
            print(str(err), file=sys.stderr)
            return 2
        print(json.dumps(job["spec"], indent=2))
        return 0
    if args.cmd == "preflight":
        from .jobspec import InvalidJob, load_job
        from .preflight import PreflightFailed, run as preflight

        try:
            preflight(load_job(args.job)["spec"])
        except (InvalidJob, PreflightFailed) as err:
            print(str(err), file=sys.stderr)
            return 2
        return 0
    if args.cmd == "train":
        from . import pipeline

        return pipeline.train_from_plan(args.plan)
    if args.cmd == "synthesize":
        from . import synth
        from .data import write_manifest

        texts = synth.dedupe(synth.read_corpus(args.corpus))
        if args.max:
            texts = texts[: args.max]
        cfg = synth.SynthConfig(voices=args.voices.split(","), seed=args.seed)
        samples = synth.synthesize(texts, args.scenario, Path(args.out), cfg)
        for smp in samples:  # relative to the manifest, so the folder can be moved or served over http
            smp.audio = Path(smp.audio).name
        write_manifest(Path(args.out) / "manifest.jsonl", samples)
        return 0
    if args.cmd == "evaluate":
        from . import evaluate
        from .data import read_manifest

        samples = read_manifest(args.manifest)
        feats = evaluate.features_for(args.model, samples)
        if args.onnx == "none":
            from transformers import AutoTokenizer

            from .compress import load_whisper

            tok = AutoTokenizer.from_pretrained(args.model)
            model = load_whisper(args.model)  # also a head-pruned model
            scores, _ = evaluate.evaluate_torch(model, tok, args.model, samples, features=feats)
        else:
            from transformers import AutoTokenizer

            from .onnx_infer import transcribe

            tok = AutoTokenizer.from_pretrained(args.model)
            suffix = {"fp32": "", "int8": "_quantized", "fp16": "_fp16"}[args.onnx]
            hyps = transcribe(args.model, feats, tok, suffix=suffix)
            scores = evaluate.score_by_scenario(samples, hyps)
        print(json.dumps({k: v.to_json() for k, v in scores.items()}, indent=2))
        return 0
    if args.cmd == "export":
        from . import export, manifest

        d = Path(args.model)
        export.export_onnx(d, d)
        if args.quantization == "int8":
            export.quantize_int8(d / "onnx")
        elif args.quantization == "fp16":
            export.convert_fp16(d / "onnx")
        sha = manifest.write_manifest(d, name=d.name, version=args.version, parent_version=args.parent_version,
                                      quantization=args.quantization, metrics={})
        print(sha)
        return 0
    if args.cmd == "export-base":
        from . import base_export

        res = base_export.run(Path(args.model), args.version, args.n, args.scenarios.split(","))
        print(json.dumps(res, indent=2), file=sys.stderr)
        return 0
    if args.cmd == "interpolate":
        from .train import interpolate

        interpolate(args.base, args.tuned, args.alpha, args.out)
        return 0
    if args.cmd == "params":
        from . import params

        print(json.dumps(params.lora_on_meta(params.whisper_large_v2_config(), args.rank, 2 * args.rank,
                                             args.targets.split(",")), indent=2))
        return 0
    return 2
