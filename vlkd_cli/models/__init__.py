"""Vision-language transformers: the shared input layout, the single-stream VL transformer, task heads, decoding,
the dual encoder, presets and tokenizers. See docs/architecture.md, "The layers" (`models/`), and docs/methods.md,
"The shared input"."""

from vlkd_cli.models.attention import ATTENTION_IMPLEMENTATION, additive_mask, run_layers, vlkd_attention_forward
from vlkd_cli.models.caption_head import caption_loss, next_token_targets
from vlkd_cli.models.decoding import CachedStepFn, DecodeResult, beam_search, decode_texts, greedy_search
from vlkd_cli.models.dual_encoder import DualEncoder, contrastive_loss
from vlkd_cli.models.factory import (
    ARCHS,
    TASKS,
    create_vl_model,
    encoder_config_of,
    is_model_config,
    list_tasks,
    load_matching_weights,
    model_from_config,
)
from vlkd_cli.models.itm_head import ITMHead, itm_loss, make_itm_pairs
from vlkd_cli.models.kv_cache import KVCache, LayerKV
from vlkd_cli.models.mlm_head import mask_tokens, mlm_loss
from vlkd_cli.models.outputs import DualEncoderOutput, VLOutput
from vlkd_cli.models.presets import get_preset, list_presets
from vlkd_cli.models.task_model import TaskModel
from vlkd_cli.models.task_models import CachedCaptionStep, CaptionModel, ITMModel, PretrainModel, VQAModel
from vlkd_cli.models.tokenizer import (
    load_tokenizer,
    save_tokenizer,
    special_token_ids,
    tokenizer_fingerprint,
    train_wordpiece_tokenizer,
)
from vlkd_cli.models.vl_transformer import VLTransformer
from vlkd_cli.models.vqa_head import VQAHead, soft_target_tensor, vqa_loss
from vlkd_cli.structures.vl_batch import (
    VLBatch,
    box_geometry,
    build_attention_mask,
    build_batch,
    concat_batches,
    full_attention_mask,
    pair_rows,
    query_mask,
    select_rows,
    seq2seq_attention_mask,
)

__all__ = [
    "ARCHS",
    "ATTENTION_IMPLEMENTATION",
    "TASKS",
    "CachedCaptionStep",
    "CachedStepFn",
    "CaptionModel",
    "DecodeResult",
    "DualEncoder",
    "DualEncoderOutput",
    "ITMHead",
    "ITMModel",
    "KVCache",
    "LayerKV",
    "PretrainModel",
    "TaskModel",
    "VLBatch",
    "VLOutput",
    "VLTransformer",
    "VQAHead",
    "VQAModel",
    "additive_mask",
    "beam_search",
    "box_geometry",
    "build_attention_mask",
    "build_batch",
    "caption_loss",
    "concat_batches",
    "contrastive_loss",
    "create_vl_model",
    "decode_texts",
    "encoder_config_of",
    "full_attention_mask",
    "get_preset",
    "greedy_search",
    "is_model_config",
    "itm_loss",
    "list_presets",
    "list_tasks",
    "load_matching_weights",
    "load_tokenizer",
    "make_itm_pairs",
    "mask_tokens",
    "mlm_loss",
    "model_from_config",
    "next_token_targets",
    "pair_rows",
    "query_mask",
    "run_layers",
    "save_tokenizer",
    "select_rows",
    "seq2seq_attention_mask",
    "soft_target_tensor",
    "special_token_ids",
    "tokenizer_fingerprint",
    "train_wordpiece_tokenizer",
    "vlkd_attention_forward",
    "vqa_loss",
]
