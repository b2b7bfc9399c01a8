"""`vlkd report`: training curves, ablation bars with seed spread and latency stacks as PNG + one index.html; the
page rendered by a real headless browser (Chromium) where one is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import assert_refused, invoke, train_tiny

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(demo_data, demo_regions, tmp_path_factory) -> Path:
    """A demo-like directory: one real training run, a summary with seed spread, a latency run."""
    root = tmp_path_factory.mktemp("report") / "demo"
    train_tiny(demo_data, demo_regions, root / "student", "caption", "--val-split", "val", "--eval-every", 1)
    rows = [{"name": "teacher", "CIDEr": 1.2, "Bleu_4": 0.4, "i2t_r1": 20.0, "t2i_r1": 22.0, "seeds": 1},
            {"name": "student no KD", "CIDEr": 0.5, "Bleu_4": 0.15, "std": {"CIDEr": 0.05, "Bleu_4": 0.01}, "seeds": 3},
            {"name": "student KD + adaptation", "CIDEr": 0.7, "Bleu_4": 0.25, "std": {"CIDEr": 0.02}, "seeds": 3},
            {"name": "dual student DCD", "i2t_r1": 40.0, "t2i_r1": 35.0, "std": {"i2t_r1": 3.0}, "seeds": 3}]  # fmt: skip
    (root / "summary.json").write_text(json.dumps({"rows": rows, "config": {}}))
    stages = {"decode": 3.0, "detector": 10.0, "backbone_roi": 5.0, "transformer": 20.0, "head": 1.0}
    results = [{"model": m, "batch_size": 1, "stage": s, "median_ms": v * f} for m, f in (("teacher", 2.0), ("student", 1.0))
               for s, v in {**stages, "total": sum(stages.values())}.items()]  # fmt: skip
    (root / "latency").mkdir()
    (root / "latency" / "latency.json").write_text(json.dumps({"results": results}))
    return root


def test_report_writes_pngs_and_a_self_contained_page(run_dir, tmp_path) -> None:
    out = tmp_path / "report"
    result = invoke(["report", run_dir, "--out", out])
    assert result.exit_code == 0, result.output
    pngs = sorted(out.glob("*.png"))
    names = " ".join(p.name for p in pngs)
    assert "captioning" in names and "retrieval" in names and "latency" in names and "student" in names
    assert all(p.read_bytes().startswith(PNG) and p.stat().st_size > 5000 for p in pngs)
    page = (out / "index.html").read_text()
    assert page.count("src='data:image/png;base64,") == len(pngs) == 4  # ablation x2, latency, one training run
    assert "<h2>training curves</h2>" in page and "<h2>ablation</h2>" in page and "<h2>latency</h2>" in page


def test_nothing_to_draw_is_exit_3(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(invoke(["report", empty, "--out", tmp_path / "out"]), 3, "nothing to draw")
    assert not (tmp_path / "out").exists()


CHECK = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  const shown = images.filter(i => i.complete && i.naturalWidth > 100 && i.getBoundingClientRect().width > 100);
  document.body.setAttribute('data-check', `images=${images.length} rendered=${shown.length}`);
});
</script>"""


def test_a_headless_browser_renders_every_image(run_dir, tmp_path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium on this machine (Debian package `chromium`; .ci/run installs it where apt can)")
    out = tmp_path / "report"
    assert invoke(["report", run_dir, "--out", out]).exit_code == 0
    probe = tmp_path / "probe.html"  # the report plus a check that marks the body once the images are laid out
    probe.write_text((out / "index.html").read_text().replace("</body>", CHECK + "</body>"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=10000"]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'data-check="images=(\d+) rendered=(\d+)"', dom.stdout)
    assert found, dom.stderr[-2000:]
    assert int(found.group(1)) == len(list(out.glob("*.png"))) == int(found.group(2))
    shot = tmp_path / "page.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1400,2400", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=False)  # fmt: skip
    assert shot.is_file() and shot.read_bytes().startswith(PNG) and shot.stat().st_size > 20000
