#!/usr/bin/env bash
# Proof-of-GPU check on a real H100/H200 (or any NVIDIA GPU gpurent lists): one command, about
# 5 minutes, no arguments needed. It cannot run where there is no GPU; it runs unchanged on a
# GPU machine with Python 3.11+ and either PyTorch with CUDA installed or network access to
# install it (pip install -e '.[gpu]').
#
#   tools/gpu_check.sh [OUT_DIR]          # default: reports/gpu_check/<host>-<UTC time>
#
# Records the exact command, nvidia-smi, the NVML name/UUID/serial, bit-exactness of the CUDA
# solver against numpy, solve times per challenge size up to the model's production sizes, the
# slowdown of a training loop while challenges run, and false rejects over 100 challenges under
# that load (tools/gpu_measure.py). Put the printed `measured_solve_ms=(...)` into the model's row
# of oracle/proof/params.py PERFORMANCE to replace the "not yet measured" estimate.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${1:-reports/gpu_check/$(hostname)-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"

py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
if ! "$py" -c 'import torch, numpy, oracle.proof' 2>/dev/null; then
  [ -x .venv-gpu/bin/python ] || python3 -m venv --system-site-packages .venv-gpu
  .venv-gpu/bin/pip install --quiet -e '.[gpu]'
  py=.venv-gpu/bin/python
fi
"$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device visible to PyTorch")'

{
  echo "command: $0 $*"
  echo "cwd: $root   commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)   host: $(hostname)"
  nvidia-smi
  nvidia-smi --query-gpu=name,uuid,serial,memory.total,power.default_limit,clocks.max.sm --format=csv
} > "$out/environment.txt" 2>&1
cat "$out/environment.txt"
"$py" tools/gpu_measure.py --out "$out" 2>&1 | tee "$out/log.txt"
echo "results: $out/gpu_check.json"
