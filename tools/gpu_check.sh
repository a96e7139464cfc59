#!/usr/bin/env bash
# Proof-of-GPU and provider checks on a real H100/H200 (or any NVIDIA GPU gpurent lists): one
# command, about 6 minutes, no arguments needed. It runs unchanged on a GPU machine with Python
# 3.11+ and either PyTorch with CUDA installed or network access to install it (pip install -e '.[gpu]').
#
#   tools/gpu_check.sh [OUT_DIR]            # default: reports/gpu_check/<host>-<UTC time>
#   tools/gpu_check.sh --dry-run [OUT_DIR]  # CPU only (numpy, small sizes): checks the script, measures nothing
#
# What it records in OUT_DIR (each step also prints its readings):
#   environment.txt    the exact command, commit, nvidia-smi, NVML name/UUID/serial/memory
#   gpu_check.json     tools/gpu_measure.py: bit-exactness of the CUDA solver against numpy, solve
#                      times per challenge size up to the model's production start/periodic sizes,
#                      the slowdown of a training loop while challenges run, and false rejects over
#                      100 honest challenges under that loop (not verified, or past the deadline)
#   deadline_table.md  per size: measured solve time -> the protocol's deadline (docs/protocol.md,
#                      "Deadlines per model"); put the printed measured_solve_ms=(...) into the
#                      model's row of oracle/proof/params.py PERFORMANCE
#   passthrough.json   tools/gpu_passthrough.py (needs Docker + NVIDIA Container Toolkit): a rental
#                      container sees exactly the rented GPU by UUID; NVML attributes its process to
#                      it; another container's process on that GPU is FOREIGN_PROCESS
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dry=""
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
case "${1:-}" in -*) echo "usage: $0 [--dry-run] [OUT_DIR]" >&2; exit 2 ;; esac
out="${1:-reports/gpu_check/$(hostname)-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"

py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
if [ -z "$dry" ] && ! "$py" -c 'import torch, numpy, oracle.proof' 2>/dev/null; then
  [ -x .venv-gpu/bin/python ] || python3 -m venv --system-site-packages .venv-gpu
  .venv-gpu/bin/pip install --quiet -e '.[gpu]'
  py=.venv-gpu/bin/python
fi

{
  echo "command: $0 ${dry:+--dry-run }$*"
  echo "cwd: $root   commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)   host: $(hostname)"
  if [ -n "$dry" ]; then
    echo "DRY RUN: CPU and numpy at small sizes; these numbers say nothing about any GPU"
  else
    "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device visible to PyTorch")'
    nvidia-smi
    nvidia-smi --query-gpu=name,uuid,serial,memory.total,power.default_limit,clocks.max.sm --format=csv
  fi
} > "$out/environment.txt" 2>&1 || { cat "$out/environment.txt"; exit 1; }
cat "$out/environment.txt"

echo "==> challenge timings, deadlines, training slowdown, false rejects (tools/gpu_measure.py)"
if [ -n "$dry" ]; then
  "$py" tools/gpu_measure.py --out "$out" --dry-run --reject-challenges 3 --phase-s 2 --warmup-s 1 2>&1 | tee "$out/log.txt"
else
  "$py" tools/gpu_measure.py --out "$out" 2>&1 | tee "$out/log.txt"
fi

echo "==> container GPU passthrough and NVML attribution (tools/gpu_passthrough.py)"
if [ -n "$dry" ]; then
  "$py" tools/gpu_passthrough.py --out "$out" --dry-run 2>&1 | tee -a "$out/log.txt"
elif command -v docker >/dev/null 2>&1 && docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia; then
  "$py" tools/gpu_passthrough.py --out "$out" 2>&1 | tee -a "$out/log.txt"
else
  echo "SKIPPED: no Docker with the NVIDIA runtime here (install the NVIDIA Container Toolkit, README: provider set-up)" \
    | tee "$out/passthrough.txt"
fi
echo "results: $out/gpu_check.json $out/deadline_table.md $out/passthrough.json"
