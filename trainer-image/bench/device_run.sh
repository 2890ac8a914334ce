#!/usr/bin/env bash
# The GPU benchmark as one device run (the `run` tool's H100; see trainer-image/README.md, "GPU").
# Expects .tmp/device/ (carried, git-ignored): whl/ (jiwer, rapidfuzz, soundfile, cffi, pycparser
# for cp312), espeak/ (portable espeak-ng 1.51: bin wrapper, libs, English data) and data/ (the
# shared corpora). Uses the machine's own torch / transformers / peft / accelerate.
#   RUNS=... DEADLINE=300 bash trainer-image/bench/device_run.sh
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
D="$ROOT/.tmp/device"
PY="${PY:-python3}"
OUTDIR="${OUT:-/tmp/wo-out}"
mkdir -p "$OUTDIR"
if [[ -z "${SKIP_WHEELS:-}" ]]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$D"/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PATH="$D/espeak/bin:$PATH" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false \
  WHISPEROPS_CACHE="${WHISPEROPS_CACHE:-/tmp/wocache}" WHISPEROPS_SHARED_DATA="$D/data"
nvidia-smi -L 2>/dev/null || true
"$PY" -c "import torch, transformers, peft, accelerate, onnxruntime as o; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, 'ort', o.__version__)"
espeak-ng --version
"$PY" trainer-image/bench/bench_finetune.py --size "${SIZE:-gpu}" --no-onnx --deadline "${DEADLINE:-300}" \
  ${RUNS:+--runs "$RUNS"} ${BENCH_ARGS:-} --out "$OUTDIR/bench-gpu.json" 2>&1 \
  | grep -v -E "Warning|warn\(|logits processor|attention_mask|attention mask|generation_config|^\s*$" | tee "$OUTDIR/bench-gpu.log"
