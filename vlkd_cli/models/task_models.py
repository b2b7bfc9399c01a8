"""Cross-encoder task models: captioning, VQA, image-text matching (retrieval) and pre-training (MLM + ITM).

Each wraps one `VLTransformer` (`self.vl`) and its head(s). `targets` of `forward_loss` per task:

- caption: none needed (the targets are the batch's own caption tokens, shifted); pass `{}`.
- vqa: `{"answer_targets": (B, A) float}` soft scores (`vqa_head.soft_target_tensor`).
- retrieval (ITM): `{"match_labels": (B,) float}` for given pairs, or `{"image_ids": (B,) long}` for B matching
  pairs, to which `prepare` adds one negative per row (regions of another image).
- pretrain: `{"image_ids": (B,) long}`; `prepare` masks 15% of the text tokens of the positives and appends the
  ITM negatives, giving `{"mlm_labels": (B', T) long, "match_labels": (B',) float}`.

With `return_outputs=True`, `forward_loss` returns `(losses, VLOutput)`; `VLOutput.logits` holds the task logits:
caption (M, V) next-token logits at the M positions where `caption_head.next_token_targets` is True (row-major
order), vqa (B, A), retrieval (B,), pretrain (M, V) MLM logits at the chosen positions (row-major order).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

from vlkd_cli.models.caption_head import caption_loss, next_token_targets
from vlkd_cli.models.decoding import DecodeResult, beam_search, decode_texts, greedy_search
from vlkd_cli.models.itm_head import ITMHead, itm_loss, make_itm_pairs, make_ranking_pairs, ranking_loss
from vlkd_cli.models.kv_cache import KVCache
from vlkd_cli.models.lm_head import TiedLMHead
from vlkd_cli.models.mlm_head import IGNORE_INDEX, mask_tokens, maskable_positions, mlm_loss
from vlkd_cli.models.outputs import VLOutput
from vlkd_cli.models.task_model import Targets, TaskModel
from vlkd_cli.models.vl_transformer import VLTransformer
from vlkd_cli.models.vqa_head import build_vqa_head, vqa_loss
from vlkd_cli.structures.vl_batch import VLBatch, select_rows, with_caption_prefix


class CrossTaskModel(TaskModel):
    """A task model over one single-stream `VLTransformer`."""

    def __init__(self, vl: VLTransformer, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.vl = vl

    def encode(
        self, batch: VLBatch, *, output_attentions: bool = False, output_hidden_states: bool = False
    ) -> VLOutput:
        """Run the transformer on a checked batch."""
        self.check_batch(batch)
        return self.vl(batch, output_attentions=output_attentions, output_hidden_states=output_hidden_states)

    def _lm_head(self) -> TiedLMHead:
        encoder_config = self.vl.encoder.config
        return TiedLMHead(
            self.vl.hidden_size,
            self.vl.word_embeddings.num_embeddings,
            layer_norm_eps=encoder_config.layer_norm_eps,
            initializer_range=encoder_config.initializer_range,
        )


def _result(losses: dict[str, Tensor], out: VLOutput, logits: Tensor, return_outputs: bool):
    out.logits = logits
    return (losses, out) if return_outputs else losses


class CaptionModel(CrossTaskModel):
    """Captioning: prefix-LM on the seq2seq mask (see `caption_head.py`), greedy or beam decoding."""

    mask_type = "seq2seq"

    def __init__(self, vl: VLTransformer, config: dict[str, Any]) -> None:
        super().__init__(vl, config)
        self.lm_head = self._lm_head()

    def forward_loss(
        self,
        batch: VLBatch,
        targets: Targets | None = None,
        *,
        return_outputs: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ):
        """{"loss", "caption_loss"}: shifted cross-entropy over the valid caption tokens (`targets` unused)."""
        out = self.encode(batch, output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        target_mask, next_ids = next_token_targets(batch.caption_ids, batch.caption_mask)  # (B, Lc) each
        hidden = out.last_hidden_state[:, : batch.max_text_len][target_mask]  # (M, D)
        logits = self.lm_head(hidden, self.vl.word_embeddings.weight)  # (M, V)
        loss = caption_loss(logits, next_ids[target_mask], label_smoothing=self.config.get("label_smoothing", 0.0))
        return _result({"loss": loss, "caption_loss": loss}, out, logits, return_outputs)

    def next_token_logits(self, batch: VLBatch, prefix: Tensor, rows: Tensor) -> Tensor:
        """(M, V) logits after caption prefixes (M, t) of rows `rows` (M,) of `batch` (full recomputation)."""
        sub = with_caption_prefix(select_rows(batch, rows), prefix, self.special_token_ids["pad"])
        hidden = self.encode(sub).last_hidden_state[:, prefix.shape[1] - 1]  # (M, D) at the last prefix token
        return self.lm_head(hidden, self.vl.word_embeddings.weight)

    def start_cache(self, batch: VLBatch, rows: Tensor) -> KVCache:
        """Cached keys/values of the tags and regions of rows `rows` (M,) of `batch`, each distinct row encoded once;
        no caption token fed yet (see `kv_cache.py`)."""
        self.check_batch(batch)
        unique, inverse = torch.unique(rows, return_inverse=True)  # (U,), (M,)
        cache = KVCache.empty(self.vl.num_layers)
        self.vl(select_rows(batch, unique), cache=cache)
        return cache.select(inverse)

    def cached_next_token_logits(self, cache: KVCache, caption_ids: Tensor) -> Tensor:
        """Feed the next caption tokens (M, n) of the cache's M hypotheses ([CLS] first) -> (M, V) logits after the
        last one; the cache grows by n tokens. Equal to `next_token_logits` on the whole prefix."""
        hidden = self.vl(caption_ids=caption_ids, cache=cache).last_hidden_state[:, -1]  # (M, D)
        return self.lm_head(hidden, self.vl.word_embeddings.weight)

    @torch.no_grad()
    def generate(
        self,
        batch: VLBatch,
        *,
        beam_size: int = 1,
        max_length: int = 20,
        length_penalty: float = 1.0,
        min_length: int = 0,
        tokenizer: PreTrainedTokenizerFast | None = None,
        use_cache: bool = True,
    ) -> DecodeResult:
        """Caption each row of `batch` (its caption segment is ignored; tags and regions are used).

        Runs in eval mode (restored afterwards). `max_length` counts generated tokens with [SEP] and must be
        < max_text_len; [SEP] is banned before `min_length` tokens (`min_length == max_length`: exactly that many
        steps for every row, as latency benchmarks need). Oscar decodes with beam 5, max length 20.
        `use_cache` (default): the tags and regions are encoded once and each step feeds only the newest token over
        the cached keys/values (`CachedCaptionStep`); False re-runs the whole sequence at every step. In float32 both
        give the same tokens, with scores equal up to float summation order. Under bf16 autocast or int8 dynamic
        quantisation (activation scales per call) the two round differently, so a near tie may go either way.
        """
        if max_length >= batch.max_text_len:
            raise ValueError(f"max_length={max_length} needs max_text_len > {max_length}, have {batch.max_text_len}")
        ids = self.special_token_ids
        kwargs = {
            "bos_token_id": ids["cls"],
            "eos_token_id": ids["sep"],
            "max_length": max_length,
            "length_penalty": length_penalty,
            "min_length": min_length,
            "banned_token_ids": [ids[k] for k in ("pad", "cls", "mask") if k in ids],
            "device": batch.input_ids.device,
        }
        step = CachedCaptionStep(self, batch) if use_cache else partial(self.next_token_logits, batch)
        was_training = self.training
        self.eval()
        try:
            if beam_size == 1:
                result = greedy_search(step, batch.batch_size, **kwargs)
            else:
                result = beam_search(step, batch.batch_size, beam_size=beam_size, **kwargs)
        finally:
            self.train(was_training)
        if tokenizer is not None:
            result.texts = decode_texts(tokenizer, result.token_ids)
        return result


class CachedCaptionStep:
    """The cached step function (`decoding.CachedStepFn`) of a caption model on one batch: the state is a `KVCache`.

    >>> result = greedy_search(CachedCaptionStep(model, batch), batch.batch_size, bos_token_id=..., ...)
    """

    def __init__(self, model: CaptionModel, batch: VLBatch) -> None:
        self.model, self.batch = model, batch

    def start(self, rows: Tensor) -> KVCache:
        return self.model.start_cache(self.batch, rows)

    def step(self, state: KVCache, tokens: Tensor) -> Tensor:
        return self.model.cached_next_token_logits(state, tokens)

    def select(self, state: KVCache, index: Tensor) -> KVCache:
        return state.select(index)


class VQAModel(CrossTaskModel):
    """VQA: answer classification on [CLS] with BCE on soft scores (see `vqa_head.py`; config `vqa_head` picks the
    head, default `VQAHead`)."""

    def __init__(self, vl: VLTransformer, config: dict[str, Any]) -> None:
        super().__init__(vl, config)
        encoder_config = vl.encoder.config
        self.vqa_head = build_vqa_head(
            vl.hidden_size,
            int(config["num_answers"]),
            config.get("vqa_head"),
            dropout=encoder_config.hidden_dropout_prob,
            layer_norm_eps=encoder_config.layer_norm_eps,
            initializer_range=encoder_config.initializer_range,
        )

    @property
    def answers(self) -> list[str] | None:
        """The answer vocabulary (index -> answer) when the model was built with it."""
        return self.config.get("answers")

    def vqa_logits(self, batch: VLBatch) -> Tensor:
        """(B, A) answer logits."""
        return self.vqa_head(self.encode(batch).last_hidden_state[:, 0])

    def forward_loss(
        self,
        batch: VLBatch,
        targets: Targets,
        *,
        return_outputs: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ):
        """{"loss", "vqa_loss"} from `targets["answer_targets"]` (B, A) soft scores."""
        out = self.encode(batch, output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        logits = self.vqa_head(out.last_hidden_state[:, 0])  # (B, A)
        loss = vqa_loss(logits, targets["answer_targets"].to(logits.device))
        return _result({"loss": loss, "vqa_loss": loss}, out, logits, return_outputs)


class ITMModel(CrossTaskModel):
    """Cross-encoder retrieval: a match logit per (image, text) pair (see `itm_head.py`)."""

    def __init__(self, vl: VLTransformer, config: dict[str, Any]) -> None:
        super().__init__(vl, config)
        self.itm_head = ITMHead(
            vl.hidden_size,
            dropout=vl.encoder.config.hidden_dropout_prob,
            initializer_range=vl.encoder.config.initializer_range,
        )

    def itm_scores(self, batch: VLBatch) -> Tensor:
        """(B,) match logits of the pairs of `batch` (higher = better match)."""
        return self.itm_head(self.encode(batch).last_hidden_state[:, 0])

    def prepare(
        self, batch: VLBatch, targets: Targets, *, generator: torch.Generator | None = None
    ) -> tuple[VLBatch, Targets]:
        """Given `image_ids`: Oscar's binary ITM (one negative per row), or with config `itm_negatives` K the
        ranking objective (each image against its caption and K captions of other images, drawn in proportion to
        `targets["negative_weights"]` (B, B) when given: a miner's hard negatives); given `match_labels` or
        `rank_group`, keep the pairs as they are."""
        if "match_labels" in targets or "rank_group" in targets:
            return batch, targets
        negatives = int(self.config.get("itm_negatives") or 0)
        if negatives > 0:
            pairs = make_ranking_pairs(batch, targets["image_ids"], negatives, generator,
                                       targets.get("negative_weights"))  # fmt: skip
            return pairs, {"rank_group": torch.tensor(negatives + 1)}
        pairs, labels = make_itm_pairs(batch, targets["image_ids"], generator)
        return pairs, {"match_labels": labels}

    def forward_loss(
        self,
        batch: VLBatch,
        targets: Targets,
        *,
        return_outputs: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ):
        """{"loss", "itm_loss"}; calls `prepare` itself when `targets` has no `match_labels`."""
        batch, targets = self.prepare(batch, targets)
        out = self.encode(batch, output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        logits = self.itm_head(out.last_hidden_state[:, 0])  # (B,)
        if "rank_group" in targets:
            loss = ranking_loss(logits, int(targets["rank_group"]))
        else:
            loss = itm_loss(logits, targets["match_labels"].to(logits.device))
        return _result({"loss": loss, "itm_loss": loss}, out, logits, return_outputs)


class PretrainModel(CrossTaskModel):
    """Oscar-style pre-training: masked-token prediction + image-text matching, loss = mlm + itm."""

    def __init__(self, vl: VLTransformer, config: dict[str, Any]) -> None:
        super().__init__(vl, config)
        self.lm_head = self._lm_head()
        self.itm_head = ITMHead(
            vl.hidden_size,
            dropout=vl.encoder.config.hidden_dropout_prob,
            initializer_range=vl.encoder.config.initializer_range,
        )

    def prepare(
        self, batch: VLBatch, targets: Targets, *, generator: torch.Generator | None = None
    ) -> tuple[VLBatch, Targets]:
        """Mask the positives' text (MLM) and append unmasked ITM negatives."""
        if "mlm_labels" in targets:
            return batch, targets
        pairs, match_labels = make_itm_pairs(batch, targets["image_ids"], generator)
        ids = self.special_token_ids
        special = [ids[k] for k in ("pad", "cls", "sep", "mask") if k in ids]
        maskable = maskable_positions(pairs.input_ids, pairs.text_mask, special)
        maskable[batch.batch_size :] = False  # no MLM on the negatives
        corrupted, mlm_labels = mask_tokens(
            pairs.input_ids,
            maskable,
            mask_token_id=ids["mask"],
            vocab_size=self.vl.word_embeddings.num_embeddings,
            probability=self.config.get("mlm_probability", 0.15),
            generator=generator,
        )
        return replace(pairs, input_ids=corrupted), {"mlm_labels": mlm_labels, "match_labels": match_labels}

    def forward_loss(
        self,
        batch: VLBatch,
        targets: Targets,
        *,
        return_outputs: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ):
        """{"loss", "mlm_loss", "itm_loss"}; calls `prepare` itself when `targets` has no `mlm_labels`."""
        batch, targets = self.prepare(batch, targets)
        out = self.encode(batch, output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        labels = targets["mlm_labels"].to(batch.input_ids.device)  # (B, T)
        chosen = labels != IGNORE_INDEX
        logits = self.lm_head(out.last_hidden_state[:, : batch.num_text_tokens][chosen], self.vl.word_embeddings.weight)
        masked_loss = mlm_loss(logits, labels[chosen])
        match_loss = itm_loss(self.itm_head(out.last_hidden_state[:, 0]), targets["match_labels"].to(logits.device))
        losses = {"loss": masked_loss + match_loss, "mlm_loss": masked_loss, "itm_loss": match_loss}
        return _result(losses, out, logits, return_outputs)
