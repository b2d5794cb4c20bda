"""Training augmentation on whole batches in torch (no torchvision): random crop with zero padding and
horizontal flip, the standard CIFAR recipe. Works on any device; the generator makes it reproducible."""

from __future__ import annotations

import torch


def random_crop_flip(
    x: torch.Tensor, padding: int = 4, flip: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pad each image by ``padding`` zeros, crop back to its size at a random offset, flip half of them."""
    n, c, h, w = x.shape
    dev = x.device
    if padding > 0:
        padded = torch.nn.functional.pad(x, (padding,) * 4)
        oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
        ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
        rows = oy[:, None] + torch.arange(h, device=dev)[None, :]  # [n, h]
        cols = ox[:, None] + torch.arange(w, device=dev)[None, :]  # [n, w]
        idx_n = torch.arange(n, device=dev)[:, None, None, None]
        idx_c = torch.arange(c, device=dev)[None, :, None, None]
        x = padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(dev)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x
