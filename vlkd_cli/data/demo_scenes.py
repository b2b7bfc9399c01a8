"""Scenes of the demo data set: sampling a layout of coloured shapes and drawing it.

A scene is 1-4 flat coloured shapes on a background (solid, gradient, noise texture or stripes). Shapes never
overlap, so every box is tight around what is visible. Everything is drawn with numpy and Pillow from a
`numpy.random.Generator`, so a seed gives the same pixels every time.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
"""The COCO categories, in id order (ids 1..6, supercategory "shape")."""

COLORS: dict[str, RGB] = {
    "red": (215, 30, 35),
    "orange": (245, 140, 25),
    "yellow": (240, 215, 30),
    "green": (40, 170, 60),
    "blue": (40, 90, 225),
    "purple": (140, 55, 190),
    "white": (250, 250, 250),
    "black": (12, 12, 12),
}
"""Object colours: six well separated hues plus white and black (each excluded where it would not stand out)."""

SIZES: tuple[str, ...] = ("small", "medium", "large")
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.16, 0.20), "medium": (0.24, 0.29), "large": (0.33, 0.39)}
"""Extent of a shape (side of its bounding square) as a fraction of the image side."""

BACKGROUNDS: dict[str, dict[str, RGB]] = {
    "light": {
        "white": (240, 240, 240),
        "light gray": (200, 200, 200),
        "beige": (226, 214, 186),
        "pale blue": (200, 214, 232),
        "pale green": (206, 228, 204),
        "cream": (244, 236, 212),
    },
    "dark": {
        "black": (22, 22, 22),
        "dark gray": (52, 52, 52),
        "navy": (22, 28, 66),
        "dark brown": (58, 40, 28),
        "charcoal": (38, 42, 46),
    },
}
"""Muted background colours in two families; a background mixes colours of one family only."""

BACKGROUND_KINDS: tuple[str, ...] = ("solid", "gradient", "noise", "stripes")
MIN_CONTRAST = 110.0
"""Least RGB distance between an object colour and every background colour of its image."""
NOISE_AMPLITUDE = 12.0
SUPERSAMPLE = 4
MAX_OBJECTS = 4


@dataclass(frozen=True)
class Background:
    """How the background of one image is painted.

    Attributes:
        kind: One of `BACKGROUND_KINDS`.
        family: "light" or "dark".
        names: Colour names (one for solid/noise, two for gradient/stripes).
        angle: Direction of a gradient or of the stripes, in degrees.
        period: Stripe period as a fraction of the image side.
    """

    kind: str
    family: str
    names: tuple[str, ...]
    angle: float = 0.0
    period: float = 0.1

    @property
    def colors(self) -> list[RGB]:
        """RGB values of `names`."""
        return [BACKGROUNDS[self.family][name] for name in self.names]


@dataclass
class SceneObject:
    """One shape of a scene. `bbox`, `area` and `polygon` are filled in by `render_scene`.

    Attributes:
        shape: One of `SHAPES`.
        color: One of `COLORS`.
        size: One of `SIZES`.
        cx: Centre x in pixels (continuous coordinates: pixel i covers [i, i+1)).
        cy: Centre y in pixels.
        extent: Side of the bounding square in pixels.
        angle: Rotation in degrees.
        bbox: Tight COCO box (x, y, w, h) of the drawn pixels (coverage >= 50%).
        area: Number of drawn pixels (coverage >= 50%).
        polygon: Outline as a flat COCO polygon [x1, y1, x2, y2, ...] (outer outline for the ring).
    """

    shape: str
    color: str
    size: str
    cx: float
    cy: float
    extent: float
    angle: float = 0.0
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    area: int = 0
    polygon: list[float] = field(default_factory=list)

    @property
    def center(self) -> tuple[float, float]:
        """Centre of the tight box (what a viewer sees), in pixels."""
        x, y, w, h = self.bbox
        return x + w / 2.0, y + h / 2.0


@dataclass
class Scene:
    """A sampled image: its size, background and shapes."""

    image_size: int
    background: Background
    objects: list[SceneObject]


@functools.lru_cache(maxsize=256)
def _allowed_colors(background: Background) -> tuple[str, ...]:
    bg = np.asarray(background.colors, dtype=np.float64)
    keep = []
    for name, rgb in COLORS.items():
        if np.min(np.linalg.norm(bg - np.asarray(rgb, dtype=np.float64), axis=1)) >= MIN_CONTRAST:
            keep.append(name)
    return tuple(keep)


def allowed_colors(background: Background) -> list[str]:
    """Object colours that stand out from every colour of `background`.

    Args:
        background: The background of the image.

    Returns:
        Names from `COLORS` (in `COLORS` order) at least `MIN_CONTRAST` away from each background colour.
    """
    return list(_allowed_colors(background))


def sample_background(rng: np.random.Generator) -> Background:
    """Draw a background: family, kind and colours.

    Args:
        rng: Random generator of the image.

    Returns:
        The background description.
    """
    family = "light" if rng.random() < 0.6 else "dark"
    kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    palette = list(BACKGROUNDS[family])
    if kind in ("gradient", "stripes"):
        first, second = rng.choice(len(palette), size=2, replace=False)
        names: tuple[str, ...] = (palette[int(first)], palette[int(second)])
    else:
        names = (palette[int(rng.integers(len(palette)))],)
    angle = float(rng.choice([0.0, 90.0, 45.0, 135.0]) if kind == "stripes" else rng.uniform(0.0, 360.0))
    period = float(rng.uniform(0.08, 0.16))
    return Background(kind=kind, family=family, names=names, angle=angle, period=period)


def _sample_attributes(rng: np.random.Generator, count: int, colors: list[str]) -> list[tuple[str, str, str]]:
    """Shapes, colours and sizes of `count` objects; repeats are frequent so that counting is interesting."""
    size_p = [0.4, 0.4, 0.2] if count >= 4 else [1 / 3, 1 / 3, 1 / 3]
    attrs: list[tuple[str, str, str]] = []
    for k in range(count):
        if k and rng.random() < 0.4:
            shape = attrs[int(rng.integers(k))][0]
        else:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
        if k and rng.random() < 0.3:
            color = attrs[int(rng.integers(k))][1]
        else:
            color = colors[int(rng.integers(len(colors)))]
        size = SIZES[int(rng.choice(len(SIZES), p=size_p))]
        attrs.append((shape, color, size))
    return attrs


def _place(
    rng: np.random.Generator, extent: float, image_size: int, taken: list[tuple[float, float, float, float]]
) -> tuple[float, float] | None:
    """A centre for a square of side `extent` inside the image and apart from the `taken` boxes, or None."""
    gap = 0.03 * image_size
    half = 0.5 * extent * 1.04 + 1.0
    if 2 * half >= image_size:
        return None
    for _ in range(60):
        cx = float(rng.uniform(half, image_size - half))
        cy = float(rng.uniform(half, image_size - half))
        box = (cx - half, cy - half, cx + half, cy + half)
        if all(
            box[2] + gap <= t[0] or t[2] + gap <= box[0] or box[3] + gap <= t[1] or t[3] + gap <= box[1] for t in taken
        ):
            return cx, cy
    return None


def sample_scene(rng: np.random.Generator, image_size: int) -> Scene:
    """Draw the layout of one image (nothing is rendered yet).

    Args:
        rng: Random generator of the image.
        image_size: Side of the square image in pixels.

    Returns:
        The scene; objects keep the order in which they were placed.
    """
    background = sample_background(rng)
    colors = allowed_colors(background)
    count = int(rng.integers(1, MAX_OBJECTS + 1))
    objects: list[SceneObject] = []
    taken: list[tuple[float, float, float, float]] = []
    for shape, color, size in _sample_attributes(rng, count, colors):
        for try_size in SIZES[: SIZES.index(size) + 1][::-1]:
            low, high = SIZE_RANGES[try_size]
            extent = float(rng.uniform(low, high)) * image_size
            spot = _place(rng, extent, image_size, taken)
            if spot is not None:
                break
        if spot is None:
            continue
        angle = 0.0 if shape in ("circle", "ring") else float(rng.uniform(-8.0, 8.0))
        objects.append(SceneObject(shape, color, try_size, spot[0], spot[1], extent, angle))
        half = 0.5 * extent * 1.04
        taken.append((spot[0] - half, spot[1] - half, spot[0] + half, spot[1] + half))
    return Scene(image_size=image_size, background=background, objects=objects)


def _rotate(points: list[tuple[float, float]], cx: float, cy: float, angle: float) -> list[tuple[float, float]]:
    """Rotate `points` (offsets from the centre) by `angle` degrees and move them to (cx, cy)."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _circle_points(radius: float, count: int = 32) -> list[tuple[float, float]]:
    """A regular `count`-gon approximating a circle."""
    angles = [2 * math.pi * k / count for k in range(count)]
    return [(radius * math.cos(a), radius * math.sin(a)) for a in angles]


def shape_outline(obj: SceneObject) -> list[tuple[float, float]]:
    """The outline polygon of a shape in image pixels (for a ring, its outer circle).

    Args:
        obj: The object.

    Returns:
        Vertices (x, y) in continuous pixel coordinates.
    """
    r = obj.extent / 2.0
    if obj.shape in ("circle", "ring"):
        pts = _circle_points(r)
    elif obj.shape == "square":
        h = 0.44 * obj.extent
        pts = [(-h, -h), (h, -h), (h, h), (-h, h)]
    elif obj.shape == "triangle":
        pts = [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a)) + 0.25 * r) for a in (-90, 30, 150)]
    elif obj.shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            a = math.radians(-90 + 36 * k)
            pts.append((rad * math.cos(a), rad * math.sin(a) + 0.05 * r))
    elif obj.shape == "cross":
        a, t = 0.47 * obj.extent, 0.17 * obj.extent
        pts = [(-t, -a), (t, -a), (t, -t), (a, -t), (a, t), (t, t)]
        pts += [(-x, -y) for x, y in pts]
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
    return _rotate(pts, obj.cx, obj.cy, obj.angle)


def _object_mask(obj: SceneObject, image_size: int) -> tuple[int, int, np.ndarray]:
    """Anti-aliased coverage mask of one object: (x0, y0, uint8 array of the local window)."""
    reach = 0.6 * obj.extent + 2
    x0, y0 = max(0, int(math.floor(obj.cx - reach))), max(0, int(math.floor(obj.cy - reach)))
    x1 = min(image_size, int(math.ceil(obj.cx + reach)))
    y1 = min(image_size, int(math.ceil(obj.cy + reach)))
    ss = SUPERSAMPLE
    canvas = Image.new("L", ((x1 - x0) * ss, (y1 - y0) * ss), 0)
    draw = ImageDraw.Draw(canvas)

    def local(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [((x - x0) * ss, (y - y0) * ss) for x, y in points]

    if obj.shape in ("circle", "ring"):
        r = obj.extent / 2.0
        for radius, fill in ((r, 255), (0.55 * r, 0)) if obj.shape == "ring" else ((r, 255),):
            box = local([(obj.cx - radius, obj.cy - radius), (obj.cx + radius, obj.cy + radius)])
            draw.ellipse([box[0][0], box[0][1], box[1][0] - 1, box[1][1] - 1], fill=fill)
    else:
        draw.polygon(local(shape_outline(obj)), fill=255)
    mask = canvas.resize((x1 - x0, y1 - y0), Image.Resampling.BOX)
    return x0, y0, np.asarray(mask)


def paint_background(background: Background, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """The background pixels.

    Args:
        background: What to paint.
        image_size: Side of the square image in pixels.
        rng: Random generator of the image (used by the noise texture).

    Returns:
        uint8 array (H, W, 3).
    """
    n = image_size
    colors = np.asarray(background.colors, dtype=np.float32)
    coords = (np.arange(n, dtype=np.float32) + 0.5) / n
    theta = math.radians(background.angle)
    proj = math.cos(theta) * coords[None, :] + math.sin(theta) * coords[:, None]  # (H, W)
    if background.kind == "solid":
        out = np.broadcast_to(colors[0], (n, n, 3)).astype(np.float32)
    elif background.kind == "gradient":
        t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
        out = colors[0] * (1.0 - t[..., None]) + colors[1] * t[..., None]
    elif background.kind == "stripes":
        band = np.floor(proj / background.period).astype(np.int64) % 2
        out = np.where(band[..., None] == 0, colors[0], colors[1]).astype(np.float32)
    elif background.kind == "noise":
        coarse = rng.uniform(-1.0, 1.0, size=(max(2, n // 16), max(2, n // 16))).astype(np.float32)
        coarse_img = Image.fromarray(((coarse + 1.0) * 127.5).astype(np.uint8))
        smooth = np.asarray(coarse_img.resize((n, n), Image.Resampling.BILINEAR), dtype=np.float32) / 127.5 - 1.0
        fine = rng.uniform(-1.0, 1.0, size=(n, n)).astype(np.float32)
        out = colors[0] + (0.5 * NOISE_AMPLITUDE * (smooth + fine))[..., None]
    else:
        raise ValueError(f"unknown background kind {background.kind!r}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_scene(scene: Scene, rng: np.random.Generator) -> Image.Image:
    """Draw a scene and fill in each object's tight `bbox`, `area` and `polygon`.

    Args:
        scene: The layout from `sample_scene`; its objects are updated in place.
        rng: Random generator of the image (background texture).

    Returns:
        The RGB image.
    """
    n = scene.image_size
    image = Image.fromarray(paint_background(scene.background, n, rng), mode="RGB")
    for obj in scene.objects:
        x0, y0, mask = _object_mask(obj, n)
        solid = mask >= 128
        ys, xs = np.nonzero(solid)
        if xs.size == 0:
            raise RuntimeError("a demo shape rendered to no pixels")
        obj.bbox = (x0 + int(xs.min()), y0 + int(ys.min()), int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1)
        obj.area = int(solid.sum())
        obj.polygon = [round(min(max(v, 0.0), float(n)), 2) for point in shape_outline(obj) for v in point]
        box = (x0, y0, x0 + mask.shape[1], y0 + mask.shape[0])
        image.paste(COLORS[obj.color], box, Image.fromarray(mask, mode="L"))
    return image
