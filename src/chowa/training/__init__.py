"""Pieces every training stage shares: optimizer and schedule, checkpoints with exact resume, loss plots."""
