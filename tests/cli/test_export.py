"""`vlkd export` end to end on tiny trained models (caption, VQA, ITM, dual encoder, a distilled student).

The Hugging Face export is loaded with `transformers.AutoModel` in a fresh process that never imports vlkd, and its
encoder outputs (default attention and sdpa), the README snippet's outputs (executed as extracted from the README)
and the tokenizer are compared with vlkd's own computation on the same inputs. TorchScript graphs are compared with
the eager models at batch 1 and 8; ONNX only when onnx, onnxscript and onnxruntime are installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from tests.conftest import invoke, train_tiny
from vlkd_cli.artifacts.io import build_metadata, save_artifact
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.vl_datasets import VLCollator
from vlkd_cli.models.attention import run_layers
from vlkd_cli.models.encoders import encoder_layers
from vlkd_cli.models.factory import create_vl_model, model_from_config
from vlkd_cli.models.tokenizer import load_tokenizer
from vlkd_cli.structures.vl_batch import build_batch, full_attention_mask
from vlkd_cli.tasks.finetune import write_model_dir

TOL = 1e-5
LAYOUT = ["--max-text-len", 12, "--max-tag-len", 6, "--max-regions", 8]
TEXTS = ["a dog on the grass", "two red balls near a table", "what color is the cup?"]


def _export(*args) -> object:
    """Run `vlkd export` through the vlkd app (or, until it is registered there, an app holding only it)."""
    import typer

    from vlkd_cli.cli import app

    if not any(command.name == "export" for command in app.registered_commands):
        from vlkd_cli.cli.export import EPILOG, export_cmd

        app = typer.Typer()
        app.command("export", epilog=EPILOG)(export_cmd)
        app.callback()(lambda: None)
    return CliRunner().invoke(app, ["export", *(str(a) for a in args)])


def _untrained_dir(like: Path, out: Path, task: str, **options) -> Path:
    """A model directory in the layout of `like` (random weights), written as vlkd writes models; `options` are
    extra model-config keys (e.g. the Oscar-style heads `vlkd import-teacher` configures)."""
    config = json.loads((like / "config.json").read_text())
    tokenizer = load_tokenizer(like)
    model = create_vl_model(task=task, encoder_config=config["encoder"], tokenizer=tokenizer,
                            region_feature_dim=config["region_feature_dim"], answers=config.get("answers"),
                            **config["layout"])  # fmt: skip
    model = model_from_config({**model.config, **options})
    lineage = {k: config[k] for k in ("features", "feature_backbone", "feature_backbone_sha256", "use_tags")}
    full = {**model.config, **lineage, "vlkd_kind": "model", "vlkd_schema_version": 1}
    write_model_dir(out, full, model.state_dict(), build_metadata("model", command="test", config=full), tokenizer)
    return out


@pytest.fixture(scope="module")
def trained(demo_data, demo_regions, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export-models")
    models = {
        "vqa": train_tiny(demo_data, demo_regions, root / "vqa", "vqa", *LAYOUT, batch_size=4),
        "itm": train_tiny(demo_data, demo_regions, root / "itm", "retrieval", *LAYOUT, batch_size=4),
        "dual": train_tiny(demo_data, demo_regions, root / "dual", "retrieval", "--arch", "dual", *LAYOUT, batch_size=4),
        "caption": train_tiny(demo_data, demo_regions, root / "caption", "caption", "--features", "teacher", *LAYOUT, batch_size=4),
    }
    student = root / "student"  # DistillVLM with every loss term (token_nce: a projection and a queue to strip)
    result = invoke(["distill", "--teacher", models["caption"], "--student", "tiny", "--regions", demo_regions,
                     "--task", "caption", "--annotations", demo_data / "karpathy.json", "--split", "train",
                     "--batch-size", 4, "--device", "cpu", "--max-steps", 2, "--save-every", 2, "--queue-size", 16,
                     "--out", student])  # fmt: skip
    assert result.exit_code == 0, result.output
    models["student"] = student
    models["pretrain"] = _untrained_dir(models["itm"], root / "pretrain", "pretrain")
    models["oscar_vqa"] = _untrained_dir(models["vqa"], root / "oscar_vqa", "vqa", region_layer_norm=False,
                                         vqa_head={"style": "pooled", "classifier": "mlp", "hidden_scale": 2})  # fmt: skip
    return models


@pytest.fixture(scope="module")
def hf_exports(trained, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    exports = {}
    for name, model_dir in trained.items():
        result = _export("--model", model_dir, "--to", "hf", "--out", root / name)
        assert result.exit_code == 0, result.output
        exports[name] = root / name
    return exports


def _load(model_dir: Path):
    config = json.loads((model_dir / "config.json").read_text())
    model = model_from_config(config)
    model.load_state_dict(load_file(model_dir / "model.safetensors"))
    return model.eval(), config


def _batch(model, config, model_dir: Path, regions: Regions, rows: int = 3, *, texts=TEXTS):
    collator = VLCollator(regions, load_tokenizer(model_dir), features=config["features"],
                          batch_kwargs=model.batch_kwargs(), use_tags=config["use_tags"])  # fmt: skip
    feats, boxes, sizes, tags = collator.region_inputs(list(range(rows)))
    texts = [texts[i % len(texts)] for i in range(rows)]
    batch = build_batch(collator.tokenizer, texts, tags, feats, boxes, sizes, **model.batch_kwargs())
    return batch, collator, (feats, boxes, sizes, tags)


@torch.no_grad()
def _references(name: str, model_dir: Path, regions: Regions, work: Path) -> dict:
    """vlkd's inputs and outputs for one model, saved for the fresh process; returns the job description."""
    model, config = _load(model_dir)
    batch, collator, (feats, boxes, sizes, tags) = _batch(model, config, model_dir, regions)
    x = {"input_ids": batch.input_ids, "token_type_ids": batch.token_type_ids, "attention_mask": batch.attention_mask,
         "region_features": batch.region_features, "region_boxes": batch.region_boxes,
         "region_mask": batch.region_mask, "caption_ids": batch.caption_ids, "caption_mask": batch.caption_mask,
         "feats0": feats[0], "boxes0": boxes[0]}  # fmt: skip
    ref: dict[str, torch.Tensor] = {}
    job = {"name": name, "arch": config["arch"], "task": config["task"], "text0": TEXTS[0],
           "tags0": tags[0] if tags else None, "size0": list(sizes[0]), "max_length": 8}  # fmt: skip
    if config["arch"] == "dual":
        ids, mask = batch.caption_ids, batch.caption_mask
        text = model.text_encoder.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids),
                                             position_ids=torch.arange(ids.shape[1])[None])  # fmt: skip
        ref["hidden"] = run_layers(
            encoder_layers(model.text_encoder), text, full_attention_mask(mask)
        ).last_hidden_state
        ref["text_embeds"] = model.encode_text(ids, mask)
        ref["image_embeds"] = model.encode_image(batch.region_features, batch.region_boxes, batch.region_mask)
    else:
        x["region_tokens"] = model.vl.region_embedding(batch.region_features, batch.region_boxes)
        ref["hidden"] = model.vl(batch).last_hidden_state
        cls_state = ref["hidden"][:, 0]
        if config["task"] == "vqa":
            ref["task"] = model.vqa_head(cls_state)
        elif config["task"] in ("retrieval", "pretrain"):
            ref["task"] = model.itm_head(cls_state)
        if config["task"] in ("caption", "pretrain"):
            positions = torch.tensor([0, 2, 4])
            x["positions"] = positions
            ref["lm"] = model.lm_head(ref["hidden"][torch.arange(3), positions], model.vl.word_embeddings.weight)
        if config["task"] == "caption":
            result = model.generate(collator.images_only([0]), max_length=8, tokenizer=collator.tokenizer)
            job["caption"] = result.texts[0]
    ids = collator.tokenizer(TEXTS[1])["input_ids"]
    ref["token_ids"] = torch.tensor(ids)
    save_file({k: v.contiguous() for k, v in x.items()}, work / f"{name}-inputs.safetensors")
    job.update(inputs=str(work / f"{name}-inputs.safetensors"), out=str(work / f"{name}-out.safetensors"))
    return job, ref, x


# The fresh process: transformers + safetensors + the README snippet; never vlkd.
FRESH = r"""
import json, os, sys
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer

def additive(mask):
    return torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)[:, None]

def full(valid):
    mask = valid[:, :, None] & valid[:, None, :]
    return mask | (torch.eye(valid.shape[1], dtype=torch.bool) & ~valid[:, :, None])

report = {}
for job in json.load(open(sys.argv[1])):
    d, x, out, info = job["dir"], load_file(job["inputs"]), {}, {}
    with torch.no_grad():
        for impl in ("config", "sdpa"):
            model = AutoModel.from_pretrained(d, **({} if impl == "config" else {"attn_implementation": impl})).eval()
            info[impl] = model.config._attn_implementation
            if job["arch"] == "dual":
                out["hidden_" + impl] = model(input_ids=x["caption_ids"], attention_mask=additive(full(x["caption_mask"]))).last_hidden_state
                out["hidden2d_" + impl] = model(input_ids=x["caption_ids"], attention_mask=x["caption_mask"].long()).last_hidden_state
                continue
            T = x["input_ids"].shape[1]
            text = model.embeddings(input_ids=x["input_ids"], token_type_ids=x["token_type_ids"], position_ids=torch.arange(T)[None])
            hidden = torch.cat([text, x["region_tokens"]], 1)
            out["hidden_" + impl] = model.encoder(hidden, attention_mask=additive(x["attention_mask"])).last_hidden_state
            out["naive_" + impl] = model(inputs_embeds=hidden, attention_mask=additive(x["attention_mask"])).last_hidden_state
        out["token_ids"] = torch.tensor(AutoTokenizer.from_pretrained(d)(job["text1"])["input_ids"])
        readme = open(os.path.join(d, "README.md"), encoding="utf-8").read()
        code = readme.split("```python\n", 1)[1].split("```", 1)[0]
        here = os.getcwd()
        os.chdir(d)
        ns = {"__name__": "__main__"}
        exec(compile(code, "README.md", "exec"), ns)  # defines the functions and runs the example
        os.chdir(here)
        h0, w0 = job["size0"]
        if job["arch"] == "dual":
            out["text_embeds"] = ns["text_embeddings"](x["caption_ids"], x["caption_mask"])
            out["image_embeds"] = ns["image_embeddings"](x["region_features"], x["region_boxes"], x["region_mask"])
            ids, valid = ns["text_inputs"]([job["text0"]])
            feats, geometry, region_valid = ns["image_inputs"](x["feats0"], x["boxes0"], h0, w0)
            out.update(built_ids=ids, built_valid=valid, built_feats=feats, built_geometry=geometry, built_region_valid=region_valid)
        else:
            hidden = ns["encode"](x["input_ids"], x["token_type_ids"], x["region_features"], x["region_boxes"], x["attention_mask"])
            out["snippet_hidden"] = hidden
            if job["task"] == "vqa":
                out["task"] = ns["vqa_logits"](hidden)
            if job["task"] in ("retrieval", "pretrain"):
                out["task"] = ns["match_score"](hidden)
            if job["task"] == "caption":
                out["lm"] = torch.cat([ns["next_token_logits"](hidden[i:i + 1], int(p)) for i, p in enumerate(x["positions"])])
                _, tag = ns["text_segments"]("", job["tags0"])
                info["caption"] = ns["greedy_caption"](tag, x["feats0"], x["boxes0"], h0, w0, max_length=job["max_length"])
            if job["task"] == "pretrain":
                out["lm"] = ns["lm_logits"](hidden[torch.arange(3), x["positions"]])
            cap, tag = ns["text_segments"](job["text0"], job["tags0"])
            built = ns["inputs"](cap, tag, x["feats0"], x["boxes0"], h0, w0)
            out.update(zip(["built_ids", "built_types", "built_feats", "built_geometry", "built_mask"], built))
    save_file({k: v.contiguous() for k, v in out.items()}, job["out"])
    report[job["name"]] = info
report["vlkd_imported"] = "vlkd_cli" in sys.modules
print(json.dumps(report))
"""


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.float() - b.float()).abs().max())


def test_hf_export_loads_without_vlkd_and_matches_vlkd(hf_exports, trained, demo_regions, tmp_path):
    regions = Regions(demo_regions)
    jobs, refs, inputs = [], {}, {}
    for name, out in hf_exports.items():
        job, refs[name], inputs[name] = _references(name, trained[name], regions, tmp_path)
        jobs.append({**job, "dir": str(out), "text1": TEXTS[1]})
        files = {p.name for p in out.iterdir()}
        assert files == {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                         "vlkd_heads.safetensors", "vlkd_config.json", "README.md"}, files  # fmt: skip
        assert "vlkd" not in (out / "config.json").read_text()  # no custom attention or class names
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path / "jobs.json")], capture_output=True, text=True,
                          check=False, cwd=tmp_path, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["vlkd_imported"] is False
    for job in jobs:
        name, ref, x = job["name"], refs[job["name"]], inputs[job["name"]]
        got = load_file(job["out"])
        assert report[name]["config"] == "eager" and report[name]["sdpa"] == "sdpa"
        for impl in ("config", "sdpa"):
            assert _diff(got[f"hidden_{impl}"], ref["hidden"]) <= TOL, (name, impl)
        assert torch.equal(got["token_ids"], ref["token_ids"]), name
        if job["arch"] == "dual":
            valid = x["caption_mask"]  # a plain padding mask: the same states on the valid tokens
            assert _diff(got["hidden2d_config"][valid], ref["hidden"][valid]) <= TOL
            assert _diff(got["text_embeds"], ref["text_embeds"]) <= TOL
            assert _diff(got["image_embeds"], ref["image_embeds"]) <= TOL
            assert torch.equal(got["built_ids"], x["caption_ids"][:1]) and torch.equal(
                got["built_valid"], x["caption_mask"][:1]
            )
            assert torch.equal(got["built_region_valid"], x["region_mask"][:1])
            assert _diff(got["built_feats"], x["region_features"][:1]) == 0
            assert _diff(got["built_geometry"], x["region_boxes"][:1]) <= 1e-7
            continue
        # Feeding the concatenation as inputs_embeds re-embeds it: the README's warning is real.
        assert _diff(got["naive_config"], ref["hidden"]) > 1e-2, name
        assert _diff(got["snippet_hidden"], ref["hidden"]) <= TOL, name
        if "task" in ref:
            assert _diff(got["task"], ref["task"]) <= TOL, name
        if "lm" in ref:
            assert _diff(got["lm"], ref["lm"]) <= TOL, name
        if "caption" in job:
            assert report[name]["caption"] == job["caption"], name
        for key, expected in [("built_ids", "input_ids"), ("built_types", "token_type_ids"),
                              ("built_feats", "region_features"), ("built_mask", "attention_mask")]:  # fmt: skip
            assert torch.equal(got[key], x[expected][:1]), (name, key)
        assert _diff(got["built_geometry"], x["region_boxes"][:1]) <= 1e-7, name


def test_hf_export_layout_and_heads(hf_exports, trained):
    described = {name: json.loads((out / "vlkd_config.json").read_text()) for name, out in hf_exports.items()}
    assert described["caption"]["mask_type"] == "seq2seq" and described["vqa"]["mask_type"] == "full"
    assert described["vqa"]["answers"] == json.loads((trained["vqa"] / "config.json").read_text())["answers"]
    assert described["vqa"]["layout"] == {"max_text_len": 12, "max_tag_len": 6, "max_regions": 8}
    heads = {name: set(load_file(out / "vlkd_heads.safetensors")) for name, out in hf_exports.items()}
    assert {k.split(".")[0] for k in heads["vqa"]} == {"region_embedding", "vqa_head"}
    assert {k.split(".")[0] for k in heads["itm"]} == {"region_embedding", "itm_head"}
    assert {k.split(".")[0] for k in heads["caption"]} == {"region_embedding", "lm_head"}
    assert {k.split(".")[0] for k in heads["pretrain"]} == {"region_embedding", "lm_head", "itm_head"}
    assert {k.split(".")[0] for k in heads["dual"]} == {"region_embedding", "image_encoder", "image_token",
                                                        "image_projection", "text_projection", "logit_scale"}  # fmt: skip
    itm_heads, itm_encoder = (
        load_file(hf_exports["itm"] / "vlkd_heads.safetensors"),
        load_file(hf_exports["itm"] / "model.safetensors"),
    )
    assert torch.equal(itm_encoder["pooler.dense.weight"], itm_heads["itm_head.pooler.weight"])  # BERT's pooler = ITM's
    assert not load_file(hf_exports["vqa"] / "model.safetensors")["pooler.dense.weight"].any()  # untrained: zeros
    oscar = load_file(hf_exports["oscar_vqa"] / "vlkd_heads.safetensors")
    assert "region_embedding.layer_norm.weight" not in oscar and "vqa_head.hidden.weight" in oscar
    assert (
        described["oscar_vqa"]["region_layer_norm_eps"] is None and described["vqa"]["region_layer_norm_eps"] == 1e-12
    )
    oscar_encoder = load_file(hf_exports["oscar_vqa"] / "model.safetensors")
    assert torch.equal(oscar_encoder["pooler.dense.weight"], oscar["vqa_head.pooler.weight"])
    model, _ = _load(trained["vqa"])
    encoder = load_file(hf_exports["vqa"] / "model.safetensors")
    for key, value in model.vl.encoder.state_dict().items():
        assert torch.equal(encoder[key], value), key


def test_distilled_student_export_strips_projection_and_queue(hf_exports, trained, tmp_path):
    student = trained["student"]
    checkpoint = load_file(student / "checkpoints" / "step-00000002" / "checkpoint.safetensors")
    assert "model.nce.projection.weight" in checkpoint and "model.nce.queue.queue" in checkpoint  # something to strip
    stripped = json.loads((hf_exports["student"] / "vlkd_config.json").read_text())["stripped"]
    assert any(s.startswith("nce.projection.weight (64, 64)") for s in stripped), stripped
    assert any(s.startswith("nce.queue.queue (16, 64)") for s in stripped), stripped
    readme = (hf_exports["student"] / "README.md").read_text()
    assert "nce.queue.queue" in readme and "nce.projection.weight" in readme
    for out in hf_exports.values():
        for file in ("model.safetensors", "vlkd_heads.safetensors"):
            assert not any("nce" in k or "queue" in k or "teacher" in k for k in load_file(out / file)), (out, file)
    # A training checkpoint: the student's weights of that step, everything else stripped and listed.
    result = _export("--model", student, "--to", "hf", "--checkpoint", "latest", "--out", tmp_path / "from-checkpoint")
    assert result.exit_code == 0, result.output
    assert "nce.queue.queue" in result.output and "training state: optimizer" in result.output
    encoder = load_file(tmp_path / "from-checkpoint" / "model.safetensors")
    for key, value in checkpoint.items():
        if key.startswith("model.student.vl.encoder."):
            assert torch.equal(encoder[key[len("model.student.vl.encoder.") :]], value), key


def _graph_inputs(name: str, model, config, model_dir: Path, regions: Regions, rows: int):
    batch, _, _ = _batch(model, config, model_dir, regions, rows)
    if config["arch"] == "dual":
        return {"dual_image": ((batch.region_features, batch.region_boxes, batch.region_mask),
                               model.encode_image(batch.region_features, batch.region_boxes, batch.region_mask)),
                "dual_text": ((batch.caption_ids, batch.caption_mask),
                              model.encode_text(batch.caption_ids, batch.caption_mask))}  # fmt: skip
    args = (batch.input_ids, batch.token_type_ids, batch.region_features, batch.region_boxes, batch.attention_mask)
    hidden = model.vl(batch).last_hidden_state
    if config["task"] == "caption":
        positions = torch.arange(rows) % 5
        logits = model.lm_head(hidden[torch.arange(rows), positions], model.vl.word_embeddings.weight)
        return {"caption_step": ((*args, positions), logits)}
    if config["task"] == "vqa":
        return {"vqa": (args, model.vqa_head(hidden[:, 0]))}
    return {"itm": (args, model.itm_head(hidden[:, 0]))}


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@torch.no_grad()
def test_torchscript_graphs_match_eager(trained, demo_regions, tmp_path):
    regions = Regions(demo_regions)
    for name in ("vqa", "itm", "dual", "student"):
        out = tmp_path / name
        result = _export("--model", trained[name], "--to", "torchscript", "--batch-size", 2, "--out", out)
        assert result.exit_code == 0, result.output
        model, config = _load(trained[name])
        described = json.loads((out / "vlkd_config.json").read_text())["graphs"]
        for rows in (1, 8):  # traced at 2: the batch dimension stays dynamic
            for graph, (args, reference) in _graph_inputs(name, model, config, trained[name], regions, rows).items():
                assert described[graph]["checked_batch_sizes"] == [1, 2, 8] and described[graph]["dynamic_batch"]
                loaded = torch.jit.load(str(out / f"{graph}.torchscript.pt"))
                assert _diff(loaded(*args), reference) <= TOL, (name, graph, rows)


@torch.no_grad()
def test_onnx_graph_matches_eager(trained, demo_regions, tmp_path):
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package, reason=f"ONNX export is optional: {package} is not installed")
    import onnxruntime as ort

    result = _export("--model", trained["vqa"], "--to", "onnx", "--out", tmp_path / "onnx")
    assert result.exit_code == 0, result.output
    model, config = _load(trained["vqa"])
    session = ort.InferenceSession(str(tmp_path / "onnx" / "vqa.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for rows in (1, 8):
        ((args, reference),) = _graph_inputs("vqa", model, config, trained["vqa"], Regions(demo_regions), rows).values()
        output = session.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})[0]
        assert _diff(torch.from_numpy(output), reference) <= TOL


def test_onnx_without_the_package_is_a_usage_error(trained, tmp_path):
    import importlib.util

    if all(importlib.util.find_spec(p) is not None for p in ("onnx", "onnxscript")):
        pytest.skip("onnx and onnxscript are installed here")
    result = _export("--model", trained["vqa"], "--to", "onnx", "--out", tmp_path / "onnx")
    assert result.exit_code == 2 and "pip install" in result.stderr, result.output
    assert not (tmp_path / "onnx").exists()


def test_export_refuses_bad_inputs(trained, hf_exports, tmp_path):
    vqa = trained["vqa"]
    result = _export("--model", vqa, "--to", "keras", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "--to" in result.stderr
    result = _export("--model", vqa, "--checkpoint", "step-00000099", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "no checkpoint" in result.stderr
    result = _export("--model", vqa, "--out", vqa)
    assert result.exit_code == 2 and "must not be the model directory" in result.stderr
    result = _export("--model", hf_exports["vqa"], "--out", tmp_path / "x")  # an export is not a vlkd model dir
    assert result.exit_code == 3, result.output
    assert not (tmp_path / "x").exists()
    # Weights holding a tensor of no known part: refused, and an existing output is left intact.
    broken = tmp_path / "broken"
    shutil.copytree(vqa, broken, ignore=shutil.ignore_patterns("checkpoints"))
    weights = load_file(broken / "model.safetensors")
    weights["mystery.weight"] = torch.zeros(2)
    save_artifact(broken / "model.safetensors", weights, build_metadata("model", command="test", config={}))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("old")
    result = _export("--model", broken, "--out", tmp_path / "out")
    assert result.exit_code == 3 and "mystery.weight" in result.stderr, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_readmes_say_how_to_run_the_student_quantised(hf_exports):
    from vlkd_cli.export.readme import extract_snippet, graph_readme

    exported = hf_exports["itm"]
    readme = (exported / "README.md").read_text()
    assert "quantize_dynamic" in readme and "--precision int8" in readme
    code = extract_snippet(readme).replace('DIR = "."', f"DIR = {str(exported)!r}")
    scores = {}
    for precision in ("fp32", "int8"):  # the README's snippet, then its model quantised as the README says
        ns = {"__name__": "readme"}
        exec(compile(code, "README.md", "exec"), ns)
        if precision == "int8":
            ns["model"] = torch.ao.quantization.quantize_dynamic(ns["model"], {torch.nn.Linear}, dtype=torch.qint8)
        features = torch.randn(2, ns["cfg"]["region_feature_dim"], generator=torch.Generator().manual_seed(0))
        cap, tag = ns["text_segments"]("a cup on a table", ["table"])
        with torch.no_grad():
            hidden = ns["encode"](*ns["inputs"](cap, tag, features, [[0, 0, 50, 40], [10, 5, 30, 60]], 100, 100))
            scores[precision] = ns["match_score"](hidden)
    assert torch.allclose(scores["int8"], scores["fp32"], atol=0.1 * float(scores["fp32"].abs().max()) + 0.05)
    graph = {"file": "itm.onnx", "doc": "ITM", "inputs": [], "outputs": [], "max_abs_diff": None,
             "traced_batch_size": 2, "checked_batch_sizes": [1, 2]}  # fmt: skip
    onnx = graph_readme({"to": "onnx", "task": "retrieval", "graphs": {"itm": graph}, "stripped": []})
    assert 'quantize_dynamic("itm.onnx", "itm.int8.onnx"' in onnx
    script = graph_readme({"to": "torchscript", "task": "retrieval", "graphs": {"itm": graph}, "stripped": []})
    assert "quantize_dynamic" in script
