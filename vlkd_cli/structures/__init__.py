"""The model-input structures both `data/` and `models/` stand on: `VLBatch`, the sequence layout, its masks."""
