"""DPO's reference log-probs: computed once before training and cached on disk.

The reference is the adapter-disabled model under LoRA, the initial weights under full fine-tuning. Its
summed log-probs of every pair are cached under a fingerprint of the reference checkpoint, the pairs and the
tokenisation settings: no second model copy in memory, no reference forward per step, and it works for image
datasets (TRL refuses ``precompute_ref_log_probs`` for those).
"""

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from tether.core.fingerprints import is_main_process, model_digest
from tether.core.hf_dataset import image_file_stat
from tether.data.preference import PreferenceRecord
from tether.methods.packing import packed_pair_logprobs
from tether.models import ModelBatch, VisionLanguageModel
from tether.models.chat_templates import chosen_template

logger = logging.getLogger(__name__)

CACHE_VERSION = "tether-dpo-reference-v1"


class PairEncoder(Protocol):
    """What encodes pairs for a forward (``DPOCollator``): ``{"packed": ...}`` or the two branch batches."""

    def encode(self, pairs: Sequence[PreferenceRecord]) -> dict: ...


@torch.no_grad()
def compute_reference_logprobs(
    vlm: VisionLanguageModel,
    pairs: Sequence[PreferenceRecord],
    collator: PairEncoder,
    batch_size: int,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed reference log-probs of every pair: the adapter-disabled model under LoRA, else the model as is."""

    was_training = vlm.model.training
    vlm.model.eval()
    disable = getattr(vlm.model, "disable_adapter", None)
    chosen, rejected = [], []
    try:
        with disable() if disable is not None else contextlib.nullcontext():
            starts = range(0, len(pairs), batch_size)
            for start in tqdm(starts, desc="reference log-probs", unit="batch", disable=not progress):
                batch = collator.encode(pairs[start : start + batch_size])
                if "packed" in batch:
                    c, r, _ = packed_pair_logprobs(vlm, batch["packed"])
                else:
                    c = vlm.response_logprobs(ModelBatch.from_dict(batch["chosen_batch"])).summed
                    r = vlm.response_logprobs(ModelBatch.from_dict(batch["rejected_batch"])).summed
                chosen.append(c.float().cpu())
                rejected.append(r.float().cpu())
    finally:
        vlm.model.train(was_training)
    return torch.cat(chosen), torch.cat(rejected)


def reference_fingerprint(
    model_path,
    dtype: str,
    pairs: Sequence[PreferenceRecord],
    images_root,
    max_length: int | None,
    chat_template: str | None = None,
) -> str:
    """Hash of what reference log-probs depend on: checkpoint files, dtype, pairs, their images, max_length,
    and the chat template when one is chosen instead of the checkpoint's."""

    digest = hashlib.sha256(CACHE_VERSION.encode())
    digest.update(bytes.fromhex(model_digest(model_path)))
    chosen = {"chat_template": chosen_template(chat_template)} if chat_template else {}
    digest.update(json.dumps({"dtype": dtype, "max_length": max_length, **chosen}).encode())
    root = Path(images_root)
    seen: set[str] = set()
    for pair in pairs:
        digest.update(json.dumps([pair.prompt, pair.chosen, pair.rejected, pair.images]).encode())
        for image in pair.images:
            if image not in seen:  # image contents by size and modification time (hashing COCO is too slow)
                seen.add(image)
                size, mtime = image_file_stat(root, image)
                digest.update(f"{image}:{size}:{mtime}".encode())
    return digest.hexdigest()


def cached_reference_logprobs(
    vlm: VisionLanguageModel,
    pairs: Sequence[PreferenceRecord],
    collator: PairEncoder,
    batch_size: int,
    cache_dir,
    fingerprint: str,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, Path, bool]:
    """Load ``cache_dir/ref_logps-<fingerprint>.safetensors`` or compute and write it; returns (c, r, path, hit)."""

    path = Path(cache_dir) / f"ref_logps-{fingerprint[:16]}.safetensors"
    if path.is_file():
        try:
            cached = load_file(str(path))
            if cached["chosen"].shape == cached["rejected"].shape == (len(pairs),):
                logger.info("reference log-probs from cache %s", path)
                return cached["chosen"], cached["rejected"], path, True
            logger.warning("%s: reference cache does not match these %d pairs; recomputing", path, len(pairs))
        except (SafetensorError, OSError, KeyError) as e:
            logger.warning("%s: damaged reference cache (%s); recomputing", path, e)
    logger.info("computing reference log-probs for %d pairs", len(pairs))
    chosen, rejected = compute_reference_logprobs(vlm, pairs, collator, batch_size, progress)
    # every rank computes; only the main one writes: another rank's file could reach the output folder
    # before the main rank has checked that folder's record, which would then refuse it as a stranger's
    if is_main_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        save_file({"chosen": chosen, "rejected": rejected}, str(tmp), metadata={"fingerprint": fingerprint})
        tmp.replace(path)
    return chosen, rejected, path, False
