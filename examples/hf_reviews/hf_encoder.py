"""A Hugging Face ``transformers`` encoder as a composa layer, for ``composa train --code``.

The encoder is a BERT built from a small ``BertConfig`` (no download, no pretrained
weights): token ids from composa's vocabulary go in, the mean of the last hidden states
over the real tokens comes out, one row per text. ``PyTorchWrapper`` runs it, so it trains
with composa's optimizer and is saved in composa's ``model.bin`` like any other layer.

    composa train examples/hf_reviews/hf_reviews.cfg --code examples/hf_reviews/hf_encoder.py --output runs/hf
    composa serve runs/hf --trust-code
"""
from typing import Any, Callable, List, Tuple

import numpy
import torch
from transformers import BertConfig, BertModel

from composa import ArgsKwargs, Model, PyTorchWrapper, registry

__all__ = ["BertEncoder", "MeanPooledBert"]

# One thread: for a model this small torch's thread pool costs more than it gives (on two
# busy cores a step took 0.55 s with two threads and 0.06 s with one).
torch.set_num_threads(1)


class MeanPooledBert(torch.nn.Module):
    """BertModel's last hidden states averaged over the unmasked tokens."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        # clamp: an empty text has no real token; its row is then all zeros, not NaN
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


@registry.layers("BertEncoder.v1")
def BertEncoder(
    nV: int, hidden: int = 32, depth: int = 2, heads: int = 2, max_length: int = 64
) -> Model[List[numpy.ndarray], Any]:
    """A config-built BERT over token ids (one array per text) -> one `hidden`-wide row per text."""
    config = BertConfig(
        vocab_size=nV,
        hidden_size=hidden,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_length,
        pad_token_id=0,  # composa's Vocabulary keeps id 0 for padding
    )
    model = PyTorchWrapper(MeanPooledBert(config), convert_inputs=_padded_ids)
    model.attrs["max_length"] = max_length
    return model


def _padded_ids(model: Model, X: List[numpy.ndarray], is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    """Token id arrays -> (ids, attention mask), padded with 0 and cut at max_length."""
    length = max(1, min(model.attrs["max_length"], max((len(x) for x in X), default=1)))
    ids = torch.zeros((len(X), length), dtype=torch.long)
    for row, x in enumerate(X):
        kept = numpy.asarray(x[:length], dtype="int64")
        ids[row, : len(kept)] = torch.from_numpy(kept)
    mask = (ids != 0).long()

    def no_input_gradient(d_inputs: ArgsKwargs) -> List[numpy.ndarray]:
        # token ids are not differentiable: the layer before (none here) gets empty gradients
        return [numpy.zeros((len(x),), dtype="float32") for x in X]

    return ArgsKwargs(args=(ids, mask), kwargs={}), no_input_gradient
