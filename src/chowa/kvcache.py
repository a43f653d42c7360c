"""The key/value cache of a batch whose rows come and go: the model's `DynamicCache` and its (B, L) attention mask.

Rows that join are appended below the running ones, the narrower side padded on the left with masked zeros; rows
that leave are dropped with the leading columns that no remaining row attends to. Only full-attention layers
(`DynamicLayer`) can be cut and padded this way; another cache is refused.

Run as (from Python):
    batch = BatchCache(out.past_key_values, mask)
    batch.join(BatchCache(newcomers_cache, newcomers_mask)); batch.keep([0, 2, 3])
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer

from chowa.errors import ChowaError


def accepts(model: torch.nn.Module, argument: str) -> bool:
    """Whether `model.forward` takes the keyword `argument` (`logits_to_keep`, `position_ids`, ...)."""
    return argument in inspect.signature(model.forward).parameters


def cache_argument(model: torch.nn.Module) -> str:
    """The keyword `model.forward` takes its cache by (transformers 5 says `cache`, 4.x `past_key_values`)."""
    return "cache" if accepts(model, "cache") else "past_key_values"


def output_cache(out):
    """The cache a forward pass returned, under either name."""
    return out.get("cache") if out.get("cache") is not None else out.get("past_key_values")


class RoomyLayer(DynamicLayer):
    """A full-attention layer whose keys and values are views of buffers with spare columns: a decoding step writes
    its column in place, where transformers' `DynamicLayer` copies the whole cache into a new tensor every step
    (16% of a decoding step of a 33M Llama at batch 16 on a CPU). Keys or values replaced from outside (a batch
    joined or cut) are taken into a fresh buffer at the next update."""

    _key_room: torch.Tensor | None = None
    _value_room: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            return super().update(key_states, value_states, *args, **kwargs)
        length, new = self.keys.shape[-2], key_states.shape[-2]
        if not self._in_room(length + new):
            self._key_room, self._value_room = (_roomy(tensor, length + new) for tensor in (self.keys, self.values))
        self._key_room[:, :, length:length + new] = key_states
        self._value_room[:, :, length:length + new] = value_states
        self.keys, self.values = self._key_room[:, :, :length + new], self._value_room[:, :, :length + new]
        return self.keys, self.values

    def _in_room(self, width: int) -> bool:
        room = self._key_room
        return (room is not None and self.keys.data_ptr() == room.data_ptr() and self.keys.stride() == room.stride()
                and self.keys.shape[:2] == room.shape[:2] and width <= room.shape[2])


def _roomy(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """A buffer (B, H, width + spare, D) starting with `tensor`'s columns."""
    batch, heads, length, dim = tensor.shape
    room = tensor.new_zeros(batch, heads, width + max(32, width // 4), dim)
    room[:, :, :length] = tensor
    return room


def full_attention_layers(cache) -> list[DynamicLayer]:
    """The cache's layers, plain ones made roomy; ChowaError unless every one is a full-attention layer."""
    layers = getattr(cache, "layers", None)
    if layers is None or any(type(layer) not in (DynamicLayer, RoomyLayer) for layer in layers):
        kinds = sorted({type(layer).__name__ for layer in layers or []}) or [type(cache).__name__]
        raise ChowaError(f"continuous batching needs a key/value cache of full-attention layers; this model's cache "
                         f"holds {', '.join(kinds)}")
    for index, layer in enumerate(layers):
        if type(layer) is DynamicLayer:
            roomy = RoomyLayer.__new__(RoomyLayer)
            roomy.__dict__.update(layer.__dict__)
            layers[index] = roomy
    return layers


@dataclass
class BatchCache:
    cache: object
    """The model's cache of the batch: keys and values (B, H, L, D) per layer."""
    mask: torch.Tensor
    """(B, L) long: 1 where a row has a real position."""

    def __post_init__(self):
        full_attention_layers(self.cache)  # checked, and made roomy

    def join(self, other: BatchCache) -> None:
        """Append `other`'s rows after these, both left-padded to the wider of the two."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(full_attention_layers(self.cache), full_attention_layers(other.cache), strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width, -2), _pad_left(theirs.keys, width, -2)])
            mine.values = torch.cat([_pad_left(mine.values, width, -2), _pad_left(theirs.values, width, -2)])
        self.mask = torch.cat([_pad_left(self.mask, width, 1), _pad_left(other.mask, width, 1)])

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows` (at least one), and drop the leading columns none of them attends to."""
        index = torch.tensor(rows, device=self.mask.device)
        mask = self.mask[index]
        first = int(mask.any(0).nonzero()[0])
        for layer in full_attention_layers(self.cache):
            layer.keys = layer.keys[index.to(layer.keys.device), :, first:]
            layer.values = layer.values[index.to(layer.values.device), :, first:]
        self.mask = mask[:, first:]


def _pad_left(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Zeros on the left of `dim` up to `width` (keys and values (B, H, L, D) on dim −2; masks (B, L) on 1)."""
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    padding = [0, 0] * (tensor.dim() - 1 - (dim % tensor.dim())) + [missing, 0]
    return F.pad(tensor, padding)
