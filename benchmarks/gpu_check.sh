#!/usr/bin/env bash
# The CUDA paths of a3d, measured in one go on a machine with a CUDA GPU (docs/evaluate.md, "CUDA").
#
# On a lent device machine (python 3.12, torch 2.11.0 preinstalled, no pytorch3d / pycocotools):
# build the bundle once here with /work/shared/tools/device-bundle.sh (it writes .device/bundle.tar.xz),
# then call the device tool's `run` with carry [".device"], timeout_s 420 and the command
#     bash benchmarks/gpu_check.sh
# Everything it measures lands in $OUT (8 files): env.txt (GPU, versions, each step's exit status
# and time), cuda_tests.txt
# (pytest -m cuda), bm_render.txt (pytorch3d against `fast` on CUDA: which one `auto` should pick
# there), bm_eval.txt (COCO evaluation on CUDA beside pycocotools), bm_stage2.txt (stage-2
# train step and eval forward), prepare.txt, pretrain.txt and pretrain_metrics.jsonl (a short pretraining at the
# paper's settings: 64x64 views, 642-vertex template, batch 64, bf16; instances/s per log step).
# Each step has its own time limit, and a failed step does not stop the next ones; the whole takes
# about 5 minutes on an H200.
#
# GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh runs every step at toy sizes on
# the CPU (a minute), to check the script itself where there is no GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${GPU_CHECK_DEVICE:-cuda}
TINY=${GPU_CHECK_TINY:-0}
OUT=${OUT:-$PWD/gpu_check_out}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
if [ -f .device/bundle.tar.xz ]; then
    mkdir -p .site && tar xJf .device/bundle.tar.xz -C .site
fi
export PYTHONPATH=$PWD:$PWD/.site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

if [ "$TINY" = 1 ]; then
    EVAL_ARGS=(--images 6 --detections 12 --size 48 --repeat 1)
    RENDER_ARGS=(--quick --repeats 1 --seconds-per-round 0.05)
    STAGE2_ARGS=(--batch 2 --size 32 --level 1 --repeats 1)
    PREPARE_ARGS=(--objects-per-category 1 --views 4 --image-size 32)
    PRETRAIN_ARGS=(--steps 2 --batch-size 4 --template-level 1 --val-instances 8)
else
    EVAL_ARGS=(--repeat 3)
    RENDER_ARGS=(--target --repeats 3)
    STAGE2_ARGS=(--batch 64 --size 64 --level 3 --repeats 5)
    PREPARE_ARGS=(--objects-per-category 8 --views 24 --image-size 64 --workers 8)
    PRETRAIN_ARGS=(--steps 150 --batch-size 64 --template-level 3 --amp bf16 --val-every 150 --val-instances 256 --workers 4)
fi

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.txt, report the status
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local status=$?
    echo "$name: exit $status after $((SECONDS - start)) s" | tee -a "$OUT/env.txt"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "no nvidia-smi"
    nproc --all
    uptime
    $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
    $PY -c "import pytorch3d._C, pycocotools; print('pytorch3d and pycocotools import')" 2>&1
} > "$OUT/env.txt" 2>&1

step cuda_tests 150 $PY -m pytest -q -p no:cacheprovider -m cuda -rs tests
step bm_render 120 $PY benchmarks/bm_render.py --device "$DEVICE" "${RENDER_ARGS[@]}"
step bm_eval 120 $PY benchmarks/bm_eval.py --device "$DEVICE" "${EVAL_ARGS[@]}"
step bm_stage2 90 $PY benchmarks/bm_stage2.py --device "$DEVICE" "${STAGE2_ARGS[@]}"
step prepare 120 $PY -m a3d_cli prepare shapenet --out "$WORK/shapenet" --seed 0 "${PREPARE_ARGS[@]}"
step pretrain 240 $PY -m a3d_cli pretrain --data "$WORK/shapenet" --out "$WORK/run" --device "$DEVICE" --seed 0 "${PRETRAIN_ARGS[@]}"
cp "$WORK/run/metrics.jsonl" "$OUT/pretrain_metrics.jsonl" 2>/dev/null
$PY - "$OUT/pretrain_metrics.jsonl" >> "$OUT/pretrain.txt" 2>&1 <<'EOF'
import json, statistics, sys
rates = [r["instances_per_s"] for r in map(json.loads, open(sys.argv[1])) if "instances_per_s" in r]
steady = rates[1:] or rates  # the first window holds the warm-up
print(f"pretraining instances/s: median {statistics.median(steady):.1f} over {len(steady)} log steps (all: {[round(r, 1) for r in rates]})")
EOF
tail -n 1 "$OUT/pretrain.txt" | tee -a "$OUT/env.txt"
