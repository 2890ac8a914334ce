"""The benches' way to train: one FineTuneJob spec run by the real `python -m whisperops_trainer run`
(the command the trainer pod runs), in a subprocess with the job, result and work files under `work`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
BASE = HERE.parent / "models" / "tiny-whisper-synth"
BASE_REF = {"uri": f"file://{BASE}", "version": "tiny-whisper-synth-1.0.0"}


def run_job(name: str, spec: dict, work: Path, eval_max: int, uid: str = "bench0000-0000") -> tuple[dict, float]:
    """Runs `spec` as FineTuneJob `name`; its output goes to spec.output.uri. Returns (result JSON, seconds);
    exits with the job's tail of stdout/stderr when it fails. The whole log is kept in work/<name>.log."""
    job = {"apiVersion": "whisperops.dev/v1alpha1", "kind": "FineTuneJob",
           "metadata": {"name": name, "namespace": "bench", "uid": uid}, "spec": spec}
    jf = work / f"{name}.json"
    jf.write_text(json.dumps(job))
    env = dict(os.environ, WHISPEROPS_JOB_FILE=str(jf), WHISPEROPS_RESULT_FILE=str(work / f"{name}.result"),
               WHISPEROPS_WORK_DIR=str(work / f"work-{name}"), WHISPEROPS_EVAL_MAX=str(eval_max), PYTHONPATH=str(HERE))
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "whisperops_trainer", "run"], env=env, capture_output=True, text=True)
    secs = time.time() - t0
    (work / f"{name}.log").write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        raise SystemExit(f"{name}: exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return json.loads((work / f"{name}.result").read_text()), secs
