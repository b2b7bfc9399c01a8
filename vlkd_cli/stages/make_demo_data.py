"""`vlkd make-demo-data`: the demo data set, written as one atomic directory — flat (one `images/` folder and one
file per kind), or laid out like the public COCO 2014 or Flickr30K files (`data/demo_layouts.py`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from vlkd_cli.artifacts.atomic import atomic_dir
from vlkd_cli.data.demo import make_demo_data
from vlkd_cli.data.demo_layouts import LAYOUTS, coco2014_layout, flickr30k_layout
from vlkd_cli.errors import UsageError
from vlkd_cli.progress import progress_bar


def run(out: Path, *, num_images: int = 200, image_size: int = 128, seed: int = 0, layout: str = "flat",
        test_images: int | None = None) -> dict:  # fmt: skip
    """Generate into a temp directory, then swap it into `out`; return the priors report (and the layout's
    image counts)."""
    if layout not in LAYOUTS:  # the CLI checks it as it parses; a notebook caller gets the same answer
        raise UsageError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    with progress_bar("make-demo-data", num_images) as advance, atomic_dir(Path(out)) as tmp:
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            advance(n - done)
            done = n

        flat = tmp if layout == "flat" else tmp / ".flat"
        report = make_demo_data(flat, num_images=num_images, image_size=image_size, seed=seed, progress=progress,
                                test_images=test_images)  # fmt: skip
        if layout != "flat":
            counts = (coco2014_layout if layout == "coco2014" else flickr30k_layout)(flat, tmp)
            shutil.rmtree(flat)
            report = {**report, "layout": layout, **counts}
        return report
