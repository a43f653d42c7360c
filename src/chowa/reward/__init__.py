"""Reward models: the Bradley–Terry loss and where a sequence's score is read."""

from chowa.reward.losses import bradley_terry_loss
from chowa.reward.readout import first_eos_index, last_token_index, read_scores

__all__ = ["bradley_terry_loss", "first_eos_index", "last_token_index", "read_scores"]
