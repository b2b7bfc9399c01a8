"""`TiedLMHead`: BERT's LM prediction head (dense, GELU, LayerNorm, then the word-embedding matrix + a bias).

The output matrix is the encoder's word-embedding table, passed in at call time rather than held as a second
reference, so the state dict holds no shared tensors (safetensors refuses them) and the tie survives
`load_state_dict`. Used for captioning (next token) and for masked-token prediction (pre-training).

For int8 inference (`models/precision.py`) `quantize_decoder` freezes an int8 copy of the table: at batch 1 each
decoding step reads the whole (V, D) table, so in float32 it is most of a small student's per-token cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TiedLMHead(nn.Module):
    """Hidden states -> vocabulary logits, tied to the word embeddings.

    Args:
        hidden_size: D.
        vocab_size: V (the embedding table's rows).
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: Std of the normal init of the dense layer.
    """

    def __init__(
        self, hidden_size: int, vocab_size: int, *, layer_norm_eps: float = 1e-12, initializer_range: float = 0.02
    ) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        nn.init.normal_(self.dense.weight, std=initializer_range)
        nn.init.zeros_(self.dense.bias)
        self.quantized_decoder: nn.Module | None = None  # inference only: see quantize_decoder

    def forward(self, hidden: Tensor, word_embeddings: Tensor) -> Tensor:
        """(..., D) hidden states and the (V, D) embedding table -> (..., V) logits."""
        transformed = self.layer_norm(F.gelu(self.dense(hidden)))  # (..., D)
        if self.quantized_decoder is not None:  # the frozen int8 copy of the table (word_embeddings unused)
            return self.quantized_decoder(transformed)  # (..., V)
        return F.linear(transformed, word_embeddings, self.bias)  # (..., V)

    def quantize_decoder(self, word_embeddings: Tensor) -> None:
        """Inference only: decode with a dynamically quantised int8 copy of the (V, D) table and the bias (per-batch
        int8 activations, float32 logits) from now on; later changes to the table are not seen."""
        decoder = nn.Linear(word_embeddings.shape[1], word_embeddings.shape[0], device="meta")  # no init: replaced
        decoder.weight = nn.Parameter(word_embeddings.detach().float().clone(), requires_grad=False)
        decoder.bias = nn.Parameter(self.bias.detach().float().clone(), requires_grad=False)
        quantized = torch.ao.quantization.quantize_dynamic(nn.Sequential(decoder), {nn.Linear}, dtype=torch.qint8)
        self.quantized_decoder = quantized[0]
