"""A student initialised from its teacher's layers: DistilBERT's recipe (Sanh et al., 2019: the student is the
teacher with every other layer, initialised from them) and the released DCD code's `useSucc` (raojay7/DCD: a
3-layer cross-encoder student from layers 0, 3 and 5 of its 6-layer teacher).

The student keeps the teacher's width (hidden size, heads, feed-forward size) and has fewer layers; student layer
j starts as teacher layer `layers[j]`. What is copied, by name and shape:

- a cross-encoder student: the embeddings, the chosen layers, the region embedding and every head of the teacher
  whose shape fits (a region projection for features of another dimension stays as initialised);
- a dual-encoder student: the text tower takes the teacher's embeddings and chosen layers, the image tower the
  teacher's region embedding and the same chosen layers (the single-stream teacher's layers see both
  modalities); the projections, the [IMG] token and the temperature stay as initialised.

`start_from_teacher` checks the widths, copies, and records in the student's config (`initialized_from_teacher`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from vlkd_cli.errors import InputError, UsageError

WIDTH_KEYS = ("hidden_size", "num_attention_heads", "intermediate_size")
_LAYER = re.compile(r"^(?P<stack>.*\.layer\.)(?P<index>\d+)\.(?P<rest>.+)$")


def parse_layers(spec: str, teacher_depth: int, student_depth: int | None = None) -> list[int]:
    """`"0,3,5"` → [0, 3, 5]; `"uniform"` → `student_depth` layers spread evenly over the teacher's, first and last
    included (6 of 12: 0, 2, 4, 7, 9, 11, DistilBERT's choice; 3 of 6: 0, 3, 5, DCD's `useSucc`); without a
    student depth, half the teacher's (DistilBERT).

    Raises:
        UsageError: not a comma list of distinct increasing layer indices of the teacher, or a count that differs
            from the student's depth.
    """
    if spec.strip() == "uniform":
        count = student_depth or max(1, teacher_depth // 2)
        if count > teacher_depth:
            raise UsageError(f"--init-from-teacher uniform: a {count}-layer student from a {teacher_depth}-layer teacher")
        if count == 1:
            return [0]
        return [int(j * (teacher_depth - 1) / (count - 1) + 0.5) for j in range(count)]
    try:
        layers = [int(part) for part in spec.split(",")]
    except ValueError:
        raise UsageError(f"--init-from-teacher takes layer indices such as 0,3,5 or 'uniform', got {spec!r}") from None
    if any(b <= a for a, b in zip(layers, layers[1:])) or layers[0] < 0 or layers[-1] >= teacher_depth:
        raise UsageError(f"--init-from-teacher {spec}: increasing layer indices of the teacher's 0..{teacher_depth - 1}")
    if student_depth is not None and len(layers) != student_depth:
        raise UsageError(f"--init-from-teacher {spec}: {len(layers)} layers for a {student_depth}-layer student")
    return layers


def check_width(student_encoder: Mapping[str, Any], teacher_encoder: Mapping[str, Any], source: str) -> None:
    """The student's encoder has the teacher's width, else exit 3 naming both."""
    student = {k: student_encoder.get(k) for k in WIDTH_KEYS}
    teacher = {k: teacher_encoder.get(k) for k in WIDTH_KEYS}
    if student != teacher:
        raise InputError(f"--init-from-teacher needs a student of the teacher's width: the student has {student}, "
                         f"the teacher {teacher}", source)  # fmt: skip


def _renamed(teacher_state: Mapping[str, Tensor], layers: list[int], dual: bool) -> dict[str, Tensor]:
    """The teacher's tensors under the student's names: teacher layer layers[j] → student layer j."""
    student_layer = {t: j for j, t in enumerate(layers)}
    out: dict[str, Tensor] = {}
    for name, value in teacher_state.items():
        match = _LAYER.match(name)
        if match:
            if int(match["index"]) not in student_layer:
                continue
            name = f"{match['stack']}{student_layer[int(match['index'])]}.{match['rest']}"
        if not dual:
            out[name] = value
        elif name.startswith("vl.encoder.encoder.layer."):
            out["text_" + name[len("vl."):]] = value  # text_encoder.encoder.layer.j...
            out["image_encoder." + name[len("vl.encoder.encoder."):]] = value  # image_encoder.layer.j...
        elif name.startswith("vl.encoder."):
            out["text_" + name[len("vl."):]] = value  # embeddings (and a pooler, which a dual text tower lacks)
        elif name.startswith("vl.region_embedding."):
            out[name[len("vl."):]] = value
    return out


def init_from_teacher(student: nn.Module, teacher: nn.Module, layers: list[int]) -> dict[str, Any]:
    """Copy the teacher's embeddings, `layers` and fitting heads into `student` (see the module docstring);
    returns {"layers", "copied", "kept_initialisation"} (tensor counts and the names left as initialised)."""
    own = student.state_dict()
    source = _renamed(teacher.state_dict(), layers, dual=student.config.get("arch", "cross") == "dual")
    matching = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    student.load_state_dict(matching, strict=False)
    return {"layers": list(layers), "copied": len(matching), "kept_initialisation": sorted(set(own) - set(matching))}


def start_from_teacher(model: nn.Module, teacher: nn.Module, spec: str, source: str) -> None:
    """Copy the teacher's layers named by `spec` into `model` (its width checked: exit 3); `model.config` records
    the teacher, the layers and what was copied (`initialized_from_teacher`)."""
    teacher_encoder = teacher.config["encoder"]
    for name in ("encoder", "image_encoder"):
        if name in model.config:
            check_width(model.config[name], teacher_encoder, source)
    layers = parse_layers(spec, teacher_encoder["num_hidden_layers"], model.config["encoder"]["num_hidden_layers"])
    model.config["initialized_from_teacher"] = {"teacher": source, **init_from_teacher(model, teacher, layers)}
