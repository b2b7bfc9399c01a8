"""Decode images in a background thread and batch them into padded uint8 tensors.

PIL releases the GIL while decoding, so one prefetch thread hides decode time behind the backbone forward
without stealing the cores torch uses. Memory holds at most `prefetch` batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vlkd_cli.data.image_index import ImageRef
from vlkd_cli.data.images import DecodedImage, load_image
from vlkd_cli.errors import InputError

PAD_MULTIPLE = 32  # the coarsest backbone stride: padded sizes divide evenly into every feature map


@dataclass
class ImageBatch:
    """Images resized so the longest side is at most `image_size`, padded bottom/right to a common size."""

    refs: list[ImageRef]
    sizes: list[tuple[int, int]]  # (height, width) of each full decoded image: box coordinates
    scales: list[tuple[float, float]]  # (x, y) resized / full size per image: boxes times it are tensor pixels
    pixels: torch.Tensor  # (B, 3, H, W) uint8


@dataclass
class DecodeStats:
    skipped: list[tuple[str, str]]  # (path, reason) of images skipped with --skip-bad-images


def iter_batches(
    refs: Sequence[ImageRef], *, image_size: int, batch_size: int, skip_bad_images: bool, stats: DecodeStats,
    prefetch: int = 2,
) -> Iterator[ImageBatch]:  # fmt: skip
    """Yield batches in the order of `refs`; a bad image raises InputError or is skipped and counted."""
    out: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce() -> None:
        try:
            for start in range(0, len(refs), batch_size):
                if stop.is_set():
                    return
                batch = _decode(refs[start : start + batch_size], image_size, skip_bad_images, stats)
                if batch is not None:
                    out.put(batch)
            out.put(None)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer thread
            out.put(err)

    thread = threading.Thread(target=produce, daemon=True, name="vlkd-decode")
    thread.start()
    try:
        while (item := out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # drain so the producer can exit
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass


def _decode(refs: Sequence[ImageRef], image_size: int, skip_bad: bool, stats: DecodeStats) -> ImageBatch | None:
    decoded: list[tuple[ImageRef, DecodedImage]] = []
    for ref in refs:
        try:
            decoded.append((ref, load_image(ref.path, max_side=image_size)))
        except InputError as err:
            if not skip_bad:
                raise
            stats.skipped.append((str(ref.path), str(err)))
    return collate(decoded) if decoded else None


def collate(decoded: Sequence[tuple[ImageRef, DecodedImage]]) -> ImageBatch:
    """Stack decoded images into one zero-padded uint8 tensor."""
    arrays = [np.array(d.image, dtype=np.uint8) for _, d in decoded]  # (h, w, 3) each, writable copies
    height = _round_up(max(a.shape[0] for a in arrays))
    width = _round_up(max(a.shape[1] for a in arrays))
    pixels = torch.zeros((len(arrays), 3, height, width), dtype=torch.uint8)
    for n, array in enumerate(arrays):
        pixels[n, :, : array.shape[0], : array.shape[1]] = torch.from_numpy(array).permute(2, 0, 1)
    return ImageBatch(
        refs=[ref for ref, _ in decoded],
        sizes=[(d.height, d.width) for _, d in decoded],
        scales=[(a.shape[1] / d.width, a.shape[0] / d.height) for a, (_, d) in zip(arrays, decoded)],
        pixels=pixels,
    )


def _round_up(size: int) -> int:
    return -(-size // PAD_MULTIPLE) * PAD_MULTIPLE


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of at most `size` items (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
