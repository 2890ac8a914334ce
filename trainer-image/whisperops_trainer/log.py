"""JSON-line logging on stdout: one object per line, `ts`, `level`, `msg`, `stage` and free fields."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

_stage = "init"
_out: TextIO = sys.stdout


def set_stage(stage: str) -> None:
    global _stage
    _stage = stage


def set_stream(stream: TextIO) -> None:
    global _out
    _out = stream


def _emit(level: str, msg: str, fields: dict[str, Any]) -> None:
    rec: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z",
        "level": level,
        "msg": msg,
        "stage": fields.pop("stage", _stage),
    }
    for k, v in fields.items():
        if isinstance(v, float):
            v = round(v, 6)
        rec[k] = v
    _out.write(json.dumps(rec, default=str) + "\n")
    _out.flush()


def info(msg: str, **fields: Any) -> None:
    _emit("info", msg, fields)


def warn(msg: str, **fields: Any) -> None:
    _emit("warn", msg, fields)


def error(msg: str, **fields: Any) -> None:
    _emit("error", msg, fields)
