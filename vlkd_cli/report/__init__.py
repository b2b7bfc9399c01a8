"""`vlkd report`: pictures of runs — training curves, the demo's ablation with seed spread, latency per stage —
as PNG files and one self-contained `index.html`."""
