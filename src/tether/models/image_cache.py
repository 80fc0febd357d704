"""Processed image inputs kept in memory across batches, for images opened from files.

Training runs over the same images every epoch (the world's 2000 training images, an SFT set's images
under several prompts), and each batch re-ran the image processor on them, a visible share of a tiny-model
SFT step on CPU (docs/results/notes-from-code.md), and HACL processes every image twice per step. ``open_image`` tags each image
with its file (path, inode, modification and change times, size); the adapter looks the tag up here
(with the image's size and mode) and processes only
images it has not seen. Untagged images (built in memory) are always processed. Entries are evicted
least-recently-used past a byte budget, so a dataset larger than the budget costs what it did before.
Each DataLoader worker process holds a cache of its own (workers restart every epoch unless persistent).
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from tether.core.images import FILE_TAG

DEFAULT_MAX_BYTES = 512 * 2**20


class ImageInputCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple, dict] = OrderedDict()
        self.bytes = 0

    def get(self, key: tuple) -> dict | None:
        inputs = self.entries.get(key)
        if inputs is not None:
            self.entries.move_to_end(key)
        return inputs

    def put(self, key: tuple, inputs: dict) -> None:
        size = _nbytes(inputs)
        if size > self.max_bytes:
            return
        self.entries[key] = inputs
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self.entries.popitem(last=False)
            self.bytes -= _nbytes(evicted)


def file_tag(image) -> tuple | None:
    """The cache key of an image read by ``open_image``, else None. PIL copies ``info`` to images derived
    from it (resize, crop, convert), so the key includes the image's size and mode as well."""
    tag = getattr(image, "info", {}).get(FILE_TAG)
    return None if tag is None else (*tag, image.size, image.mode)


def concatenate(parts: list[dict]) -> dict:
    """Per-image inputs → one batch: every architecture's image tensors stack along their first dimension
    (LLaVA's ``[n, 3, H, W]`` pixels; Qwen2-VL's patch rows and ``[n, 3]`` grids). Per-image crop stacks of
    different lengths (LLaVA-NeXT's anyres tiles, Idefics3's crops: ``[n, crops, ...]``) are zero-padded to
    the longest, as the families' own image processors pad a batch; their models skip the padding."""
    return {name: _cat_padded([part[name] for part in parts]) for name in parts[0]}


def _cat_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    shape = [max(sizes) for sizes in zip(*(t.shape for t in tensors))]
    padded = []
    for t in tensors:
        pad = []
        for dim in reversed(range(1, t.dim())):
            pad += [0, shape[dim] - t.shape[dim]]
        padded.append(torch.nn.functional.pad(t, pad) if any(pad) else t)
    return torch.cat(padded)


def _nbytes(inputs: dict) -> int:
    return sum(t.numel() * t.element_size() for t in inputs.values() if torch.is_tensor(t))
