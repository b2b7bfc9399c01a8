"""COCO / Karpathy / VQA v2 / VinVL readers, images, batching, demo data, the training commands' task data."""
