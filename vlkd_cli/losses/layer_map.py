"""Which student layer learns from which teacher layer (`--layers all|last|i,j,...`).

DistillVLM (Fang et al., ICCV 2021, arXiv 2104.02096) distils 12 into 12 layers, so its natural map is 1:1; whether
it uses all layers or only the last is not known (docs/methods.md, "Choices where the paper is silent"). When
depths differ we use the uniform map

    student layer l  <->  teacher layer round((l + 1) · T / S) − 1        (0-based, S student / T teacher layers)

rounded half up, so the last student layer always maps to the last teacher layer and equal depths map 1:1. For
2 → 4 layers this is l ↔ 2l + 1 (0 ↔ 1, 1 ↔ 3), the map that beat last-layer-only by ~3 points in the pilot
(docs/methods.md, "The pilot").

Indexing pitfall A6 (docs/methods.md, "Pitfalls"). The two per-layer outputs of a transformer are indexed differently:

- attention maps: L tensors (B, H, N, N); entry l is layer l's attention (0-based);
- hidden states (HF convention, also `vlkd_cli.models.outputs.VLOutput`): L + 1 tensors (B, N, D); entry 0 is the
  embedding output and entry l + 1 is the output of layer l.

`map_layers` returns indices into the attention list (= layer numbers); `map_hidden_layers` returns the same pairs
as indices into `hidden_states` (layer + 1). Never feed `map_layers` pairs to `hidden_states`: that silently
distils layer l − 1 (and the embeddings for layer 0).
"""

from __future__ import annotations

from vlkd_cli.errors import UsageError

LAYER_SPECS = ("all", "last")


def parse_layer_spec(spec: str) -> str | list[int]:
    """Check the syntax of a `--layers` value.

    Args:
        spec: `all`, `last`, or a comma-separated list of distinct non-negative student layer indices (0-based).

    Returns:
        `"all"`, `"last"` or the list of indices in the order given.

    Raises:
        UsageError: the value is not one of these forms.
    """
    text = spec.strip().lower()
    if text in LAYER_SPECS:
        return text
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p.isdigit() for p in parts):
        raise UsageError(f"--layers must be 'all', 'last' or comma-separated student layer indices, got {spec!r}")
    indices = [int(p) for p in parts]
    if len(set(indices)) != len(indices):
        raise UsageError(f"--layers lists a layer twice: {spec!r}")
    return indices


def teacher_layer_for(student_layer: int, student_layers: int, teacher_layers: int) -> int:
    """The teacher layer of the uniform map: round((l + 1) · T / S) − 1, rounded half up, at least 0."""
    # Integer arithmetic: floor((l + 1) · T / S + 1/2) = ((l + 1) · 2T + S) // 2S.
    return max(((student_layer + 1) * 2 * teacher_layers + student_layers) // (2 * student_layers) - 1, 0)


def map_layers(student_layers: int, teacher_layers: int, spec: str = "all") -> list[tuple[int, int]]:
    """Pairs (student layer, teacher layer), 0-based indices into the per-layer attention lists.

    Args:
        student_layers: Student depth S (= len(student attentions)).
        teacher_layers: Teacher depth T (= len(teacher attentions)).
        spec: `all` (every student layer), `last` (the last one) or `i,j,...` (student layer indices, 0-based).

    Returns:
        One pair per selected student layer, in the order of `spec`; the teacher layer follows the uniform map
        round((l + 1) · T / S) − 1 (equal depths: identity).

    Raises:
        UsageError: bad syntax, or a student index outside [0, S).
    """
    if student_layers < 1 or teacher_layers < 1:
        raise UsageError(f"layer maps need at least one layer each (student {student_layers}, "
                         f"teacher {teacher_layers})")  # fmt: skip
    parsed = parse_layer_spec(spec)
    if parsed == "all":
        chosen = list(range(student_layers))
    elif parsed == "last":
        chosen = [student_layers - 1]
    else:
        assert isinstance(parsed, list)
        bad = [i for i in parsed if i >= student_layers]
        if bad:
            raise UsageError(f"--layers {spec!r}: the student has {student_layers} layers "
                             f"(indices 0..{student_layers - 1})")  # fmt: skip
        chosen = parsed
    return [(l, teacher_layer_for(l, student_layers, teacher_layers)) for l in chosen]


def hidden_state_index(layer: int) -> int:
    """Index into an (L + 1)-entry `hidden_states` tuple of the output of layer `layer` (0-based): layer + 1."""
    return layer + 1


def map_hidden_layers(student_layers: int, teacher_layers: int, spec: str = "all") -> list[tuple[int, int]]:
    """`map_layers` pairs as indices into `hidden_states` (L + 1 entries, index 0 = embeddings).

    Args:
        student_layers: Student depth S (transformer layers, NOT len(hidden_states) = S + 1).
        teacher_layers: Teacher depth T (transformer layers).
        spec: As in `map_layers`.

    Returns:
        Pairs (student index, teacher index) into the respective `hidden_states` tuples, i.e. (l + 1, m(l) + 1).
    """
    return [(hidden_state_index(s), hidden_state_index(t)) for s, t in map_layers(student_layers, teacher_layers, spec)]
