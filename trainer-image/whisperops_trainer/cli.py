"""Command line: `python -m whisperops_trainer <command>`; see `--help`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="whisperops_trainer")
    sub = ap.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("export-base", help="export a base model folder in place (ONNX fp32+INT8, manifest)")
    b.add_argument("--model", required=True)
    b.add_argument("--version", required=True)
    b.add_argument("--n", type=int, default=100, help="utterances per scenario for the metrics")
    b.add_argument("--scenarios", default="general,finance,medical")

    args = ap.parse_args(argv)
    if args.cmd == "export-base":
        from . import base_export

        res = base_export.run(Path(args.model), args.version, args.n, args.scenarios.split(","))
        print(json.dumps(res, indent=2), file=sys.stderr)
        return 0
    return 2
