#!/usr/bin/env bash
# One GPU check of vlkd, under 10 minutes on one GPU (demo-size data and models):
#   (a) finetune and distill for a few CUDA steps in fp32 and in bf16 (--bf16: bfloat16 autocast): the mean logged
#       loss of the two runs agrees within LOSS_TOLERANCE (relative);
#   (b) one 2-process DDP finetune under torchrun when the machine has >= 2 GPUs (skipped otherwise);
#   (c) eval-caption on CUDA gives the CPU's captions and metrics;
#   (d) benchmark-latency teacher vs student on the GPU (fp32 and bf16), end to end at batch 1 and 8.
# Prints a summary (PASS / FAIL / SKIP per check); exits 1 if any check failed, or at once without CUDA.
#
# Usage: bash bench/gpu_check.sh [--work DIR] [--python PY] [--device DEV] [--dry-run]
#   --dry-run     print the commands without running them (no GPU needed)
#   --device DEV  the device under test (default cuda); --device cpu rehearses every command and check on the CPU
#                 (no DDP; (c) then compares the CPU with itself) before a GPU's time is spent on it
# Environment: LOSS_TOLERANCE (default 0.05), CAPTION_AGREEMENT (fraction of identical captions, default 0.98),
#   STEPS (training steps per run, default 30), ITERS (timed latency iterations, default 20).
set -euo pipefail

WORK=/tmp/vlkd-gpu-check
PY=${PYTHON:-python}
DEVICE=cuda
DRY=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --work) WORK=$2; shift 2 ;;
        --python) PY=$2; shift 2 ;;
        --device) DEVICE=$2; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
LOSS_TOLERANCE=${LOSS_TOLERANCE:-0.05}
CAPTION_AGREEMENT=${CAPTION_AGREEMENT:-0.98}
STEPS=${STEPS:-30}
ITERS=${ITERS:-20}
export VLKD_PROGRESS=0 HF_HUB_OFFLINE=1
SUMMARY=()
FAILED=0

run() {  # print a command, then run it (not with --dry-run)
    echo "+ $*"
    if [[ $DRY == 0 ]]; then "$@"; fi
}
vlkd() { run "$PY" -m vlkd_cli "$@"; }
verdict() {  # verdict NAME PASS|FAIL|SKIP DETAIL
    SUMMARY+=("$(printf '%-4s  %-34s %s' "$2" "$1" "$3")")
    if [[ $2 == FAIL ]]; then FAILED=1; fi
}
check() {  # check NAME PYTHON_CODE: the code prints one line and exits 0 (pass) or 1 (fail)
    local name=$1 code=$2 line
    if [[ $DRY == 1 ]]; then verdict "$name" SKIP "dry run"; return; fi
    if line=$("$PY" -c "$code" 2>&1); then verdict "$name" PASS "$line"; else verdict "$name" FAIL "$line"; fi
}

if [[ $DEVICE == cpu ]]; then
    GPUS=0  # a rehearsal on the CPU
elif [[ $DRY == 0 ]]; then
    GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null) || {
        echo "gpu_check: $PY cannot import torch (set --python to the venv's python)" >&2; exit 1; }
    if [[ $GPUS -lt 1 ]]; then
        echo "gpu_check: no CUDA device visible to torch (torch.cuda.is_available() is False): this check needs a GPU" >&2
        exit 1
    fi
else
    GPUS=2  # print every command
fi
echo "gpu_check: device $DEVICE, $GPUS GPU(s), work directory $WORK"
mkdir -p "$WORK"
START=$SECONDS
DATA=$WORK/data REGIONS=$WORK/regions.safetensors
COMMON=(--annotations "$DATA/karpathy.json" --split train --batch-size 16 --max-steps "$STEPS" --log-every 5 --seed 0)

# Demo data, a student detector, regions (Lite0 student features, Lite2 teacher features on the same boxes).
vlkd make-demo-data --out "$DATA" --num-images 200 --image-size 256 --seed 0
vlkd train-detector --images "$DATA/images" --instances "$DATA/instances.json" --backbone tf_efficientnet_lite0 \
    --image-size 256 --max-steps 50 --batch-size 16 --device "$DEVICE" --out "$WORK/detector"
vlkd extract-regions --images "$DATA/images" --detector "$WORK/detector" --teacher-backbone tf_efficientnet_lite2 \
    --image-size 256 --device "$DEVICE" --out "$REGIONS"

# (a) fp32 vs bf16 training on CUDA: finetune (the teacher) and distill (the student).
for precision in fp32 bf16; do
    flag=(); if [[ $precision == bf16 ]]; then flag=(--bf16); fi
    vlkd finetune --task caption --model demo-teacher --regions "$REGIONS" --features teacher "${COMMON[@]}" \
        --device "$DEVICE" "${flag[@]}" --out "$WORK/teacher-$precision"
done
for precision in fp32 bf16; do
    flag=(); if [[ $precision == bf16 ]]; then flag=(--bf16); fi
    vlkd distill --teacher "$WORK/teacher-fp32" --student demo-student --regions "$REGIONS" --task caption \
        "${COMMON[@]}" --device "$DEVICE" "${flag[@]}" --out "$WORK/student-$precision"
done
for run_name in teacher student; do
    check "(a) $run_name loss fp32 vs bf16" "
import json, sys
def mean_loss(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    losses = [r['loss'] for r in rows if 'loss' in r]
    return sum(losses) / len(losses), len(losses)
fp32, n = mean_loss('$WORK/$run_name-fp32/log.jsonl')
bf16, _ = mean_loss('$WORK/$run_name-bf16/log.jsonl')
gap = abs(bf16 - fp32) / abs(fp32)
print(f'mean loss over {n} logs: fp32 {fp32:.4f}, bf16 {bf16:.4f}, relative gap {gap:.4f} (tolerance $LOSS_TOLERANCE)')
sys.exit(0 if gap <= $LOSS_TOLERANCE else 1)"
done

# (b) 2-process DDP (NCCL) when there are two GPUs.
if [[ $GPUS -ge 2 ]]; then
    if run "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 -m vlkd_cli finetune --task caption \
        --model demo-student --regions "$REGIONS" --features student --annotations "$DATA/karpathy.json" \
        --split train --batch-size 8 --max-steps 5 --log-every 1 --device "$DEVICE" --out "$WORK/ddp"; then
        check "(b) DDP 2 processes" "
import json, math, sys
rows = [json.loads(l) for l in open('$WORK/ddp/log.jsonl') if l.strip()]
ok = rows and all(math.isfinite(r['loss']) for r in rows if 'loss' in r)
print(f'{len(rows)} log rows, final loss {rows[-1][\"loss\"]:.4f}' if rows else 'no log rows')
sys.exit(0 if ok else 1)"
    else
        verdict "(b) DDP 2 processes" FAIL "torchrun exited non-zero"
    fi
else
    verdict "(b) DDP 2 processes" SKIP "only $GPUS GPU"
fi

# (c) eval-caption: the device under test vs the CPU, the same captions and metrics.
vlkd eval-caption --model "$WORK/student-fp32" --regions "$REGIONS" --annotations "$DATA/karpathy.json" \
    --split test --no-meteor --device "$DEVICE" --out "$WORK/eval-device"
vlkd eval-caption --model "$WORK/student-fp32" --regions "$REGIONS" --annotations "$DATA/karpathy.json" \
    --split test --no-meteor --device cpu --out "$WORK/eval-cpu"
check "(c) eval-caption $DEVICE = cpu" "
import json, sys
dev = {r['image_id']: r['caption'] for r in json.load(open('$WORK/eval-device/predictions.json'))}
cpu = {r['image_id']: r['caption'] for r in json.load(open('$WORK/eval-cpu/predictions.json'))}
same = sum(dev[i] == cpu.get(i) for i in dev) / max(len(dev), 1)
m_dev, m_cpu = (json.load(open(f'$WORK/eval-{d}/metrics.json')) for d in ('device', 'cpu'))
gap = max(abs(m_dev[k] - m_cpu[k]) for k in m_dev if isinstance(m_dev[k], float) and isinstance(m_cpu.get(k), float))
print(f'{same:.3f} of {len(dev)} captions identical, CIDEr $DEVICE {m_dev[\"CIDEr\"]:.4f} cpu {m_cpu[\"CIDEr\"]:.4f}, '
      f'largest metric gap {gap:.4f}')
sys.exit(0 if same >= $CAPTION_AGREEMENT and (same < 1 or gap == 0) else 1)"

# (d) benchmark-latency on the device: teacher vs student, fp32 and bf16.
for precision in fp32 bf16; do
    vlkd benchmark-latency --model "$WORK/teacher-fp32" --model "$WORK/student-fp32" --images "$DATA/images" \
        --detector "$WORK/detector" --batch-sizes 1,8 --warmup 5 --iters "$ITERS" --device "$DEVICE" --precision "$precision" \
        --out "$WORK/latency-$precision"
done
for precision in fp32 bf16; do
    check "(d) latency $precision" "
import json, sys
doc = json.load(open('$WORK/latency-$precision/latency.json'))
t, s = (m['model'] for m in doc['models'])
total = {(r['model'], r['batch_size']): r['median_ms'] for r in doc['results'] if r['stage'] == 'total'}
parts = [f'batch {b}: teacher {total[(t, b)]:.1f} ms, student {total[(s, b)]:.1f} ms ({total[(t, b)] / total[(s, b)]:.1f}x)'
         for b in (1, 8)]
print(doc['environment'].get('cuda_device', '?') + '; ' + '; '.join(parts))
sys.exit(0 if all(v and v > 0 for v in total.values()) else 1)"
done

echo
echo "gpu_check summary ($((SECONDS - START)) s):"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
