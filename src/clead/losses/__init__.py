"""Losses used by the training methods."""

from .contrastive import Positives, instance_ids, instance_nt_xent, multi_positive_infonce, paired_nt_xent, supcon_loss

__all__ = ["Positives", "instance_ids", "instance_nt_xent", "multi_positive_infonce", "paired_nt_xent", "supcon_loss"]
