"""Overhead of the distillation machinery: one `distill` step vs (a plain student train step + a teacher forward
with the maps the losses need) on the same batch.

The difference is what attention MSE, token NCE with its queue, logit KD and the bookkeeping cost on top of the
unavoidable work (target: at most 15 %). Medians over `--iters` after `--warmup`, in one process.

Usage:  python bench/distill_step.py --regions demo-run/regions.safetensors --annotations demo-run/data/karpathy.json \
            [--teacher demo-teacher --student demo-student] [--batch-size 32] [--iters 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regions", type=Path, required=True)
    parser.add_argument("--annotations", type=Path, required=True)
    parser.add_argument("--teacher", default="demo-teacher")
    parser.add_argument("--student", default="demo-student")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()

    from vlkd_cli.artifacts.regions import Regions
    from vlkd_cli.data.captions import load_captions
    from vlkd_cli.data.vl_datasets import VLCollator, caption_samples
    from vlkd_cli.losses import map_layers
    from vlkd_cli.models.factory import create_vl_model
    from vlkd_cli.models.tokenizer import train_wordpiece_tokenizer
    from vlkd_cli.tasks.distillvlm import DistillBatch, DistillModule
    from vlkd_cli.tasks.terms import default_weights

    torch.manual_seed(0)
    regions = Regions(args.regions)
    captions = load_captions(args.annotations)
    samples = caption_samples(regions, captions, source=str(args.annotations))[: args.batch_size]
    tokenizer = train_wordpiece_tokenizer([s.text for s in samples])
    layout = dict(max_text_len=40, max_tag_len=20, max_regions=50)
    teacher = create_vl_model(task="caption", preset=args.teacher, tokenizer=tokenizer,
                              region_feature_dim=regions.teacher_dim, **layout).eval()  # fmt: skip
    student = create_vl_model(task="caption", preset=args.student, tokenizer=tokenizer,
                              region_feature_dim=regions.student_dim, **layout)  # fmt: skip
    kwargs = dict(batch_kwargs=student.batch_kwargs(), use_tags=True)
    s_batch = VLCollator(regions, tokenizer, features="student", **kwargs)(samples)
    t_batch = VLCollator(regions, tokenizer, features="teacher", **kwargs)(samples)
    pairs = map_layers(student.vl.num_layers, teacher.vl.num_layers, "all")
    module = DistillModule(student, teacher, weights=default_weights("distillvlm"), layer_pairs=pairs).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    batch = DistillBatch(s_batch.vl, s_batch.targets, t_batch.vl)

    def plain_student_step() -> None:
        optimizer.zero_grad()
        student.forward_loss(s_batch.vl, s_batch.targets)["loss"].backward()
        optimizer.step()

    def teacher_forward() -> None:
        with torch.no_grad():
            teacher.forward_loss(t_batch.vl, t_batch.targets, return_outputs=True, output_attentions=True,
                                 output_hidden_states=True)  # fmt: skip

    def distill_step() -> None:
        optimizer.zero_grad()
        module(batch)["loss"].backward()
        optimizer.step()
        module.push_keys()

    plain = median_seconds(plain_student_step, args.warmup, args.iters)
    forward = median_seconds(teacher_forward, args.warmup, args.iters)
    distill = median_seconds(distill_step, args.warmup, args.iters)
    print(f"| {args.student} student / {args.teacher} teacher, batch {args.batch_size}, {torch.get_num_threads()} threads | median ms |")
    print("|---|---|")
    print(f"| plain student train step | {1000 * plain:.0f} |")
    print(f"| teacher forward (maps + hidden states) | {1000 * forward:.0f} |")
    print(f"| distill step (all four losses) | {1000 * distill:.0f} |")
    print(f"| overhead of the distillation machinery | {100 * (distill / (plain + forward) - 1):+.1f} % |")


if __name__ == "__main__":
    main()
