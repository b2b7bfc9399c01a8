"""`vlkd make-demo-data`: the demo data set, written as one atomic directory."""

from __future__ import annotations

from pathlib import Path

from vlkd_cli.artifacts.atomic import atomic_dir
from vlkd_cli.data.demo import make_demo_data
from vlkd_cli.progress import progress_bar


def run(out: Path, *, num_images: int = 200, image_size: int = 128, seed: int = 0) -> dict:
    """Generate into a temp directory, then swap it into `out`; return the priors report."""
    with progress_bar("make-demo-data", num_images) as advance, atomic_dir(Path(out)) as tmp:
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            advance(n - done)
            done = n

        return make_demo_data(tmp, num_images=num_images, image_size=image_size, seed=seed, progress=progress)
