"""HA-DPO's trainer: sigmoid DPO on summed response log-probs, with the image and prompt encoded once per pair.

Shared-prefix forward. Every peer (TRL, HA-DPO, LLaVA-RLHF) runs ``[image+prompt, chosen]`` and
``[image+prompt, rejected]`` as two sequences, so the vision tower and the (long: 576 visual tokens in
LLaVA-1.5) prefix go through the model twice. Here each pair is packed into ONE row::

    [ image + prompt | chosen | rejected ]      segment ids 0 | 1 | 2   (-1 = padding)

with a 4-D block attention mask (causal, and rejected tokens never see chosen tokens) and position ids that
restart after the prefix for the rejected segment (``position_ids`` shifted back by the chosen length; for
Qwen2-VL's M-RoPE all three axes shift alike, as text positions are equal on them). Every token then sees
exactly the context it sees in the two-sequence computation, so log-probs, loss and gradients are the same
(tests/dpo check it to 1e-5) while the prefix, the vision tower and the prompt pay once. The LM head and
softmax run only at the positions that predict response tokens.

The packed mask needs an attention implementation that takes a custom 4-D mask (``sdpa``, ``eager``); with
another one (flash attention) the trainer falls back to the two-sequence path.

Reference log-probs are computed once before training (the adapter-disabled model under LoRA, the initial
weights under full fine-tuning) and cached on disk under a fingerprint of the reference checkpoint, the pairs
and the tokenisation settings: no second model copy in memory, no reference forward per step, and it works for
image datasets (TRL refuses ``precompute_ref_log_probs`` for those).

NoiseBoost (noise on the projected visual tokens, training only): by default only the chosen branch is
perturbed, as in the paper. The two branches then see different visual tokens, so they cannot share a
prefix: that case runs the two-sequence path (chosen under the noise hook, rejected clean). With
``noise_branches: both`` one noise draw perturbs the shared prefix, so both branches see the same noisy image
and the packed path stays exact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from tether.core.errors import TetherError
from tether.core.hf_dataset import image_file_stat
from tether.core.images import open_image
from tether.data.preference import DEFAULT_IMAGE_PATTERN, PreferenceRecord
from tether.methods.dpo_loss import dpo_sigmoid_loss
from tether.methods.noise import NoiseSettings, noise_hook, noise_settings
from tether.methods.run_record import start_output, training_run
from tether.methods.settings import ModelSettings, TrainSettings
from tether.models import ModelBatch, VisionLanguageModel
from tether.models.adapter import model_image_inputs
from tether.models.chat_templates import chosen_template

logger = logging.getLogger(__name__)

PACKABLE_ATTENTION = ("sdpa", "eager")
CACHE_VERSION = "tether-dpo-reference-v1"


@dataclass
class DPOData:
    train: list[str] = field(default_factory=list)  # preference files (any format of tether.data.preference)
    format: str = "auto"
    images: str = "."  # root that image paths are relative to
    image_pattern: str = DEFAULT_IMAGE_PATTERN  # HA-DPO image ids -> file names under `images` (logged)
    max_length: int | None = None  # per branch (prefix + response); cuts responses only
    skip_invalid: bool = False
    sft_train: list[str] = field(
        default_factory=list
    )  # SFT records for the auxiliary loss (sft_target: data)


@dataclass
class DPOSettings:
    beta: float = 0.1
    sft_weight: float = 0.0  # γ: weight of the auxiliary SFT loss (0 = off)
    sft_target: str = "chosen"  # "chosen": NLL of the chosen responses; "data": records of data.sft_train
    shared_prefix: bool = True  # one packed row per pair; False = the two-sequence computation of every peer
    noise_branches: str = "chosen"  # NoiseBoost: "chosen" (paper) or "both" (one draw on the shared prefix)
    reference_batch_size: int | None = None  # pairs per reference forward; default: the training batch size


@dataclass
class DPOConfig:
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DPOData = field(default_factory=DPOData)
    train: TrainSettings = field(default_factory=TrainSettings)
    dpo: DPOSettings = field(default_factory=DPOSettings)
    noiseboost: NoiseSettings | None = None  # NoiseBoost on the visual tokens (tether.methods.noise)

    def __post_init__(self):
        self.noiseboost = noise_settings(self.noiseboost)


# ---- encoding ----------------------------------------------------------------------------------------------


def encode_packed_pairs(
    vlm: VisionLanguageModel,
    images: Sequence,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    max_length: int | None = None,
) -> dict:
    """Pack each pair as ``[prefix, chosen, rejected]`` (right-padded) with what the packed forward needs.

    ``{chosen,rejected}_source[b, j]`` is the row position whose hidden state predicts response token ``j``
    (``{chosen,rejected}_target``); the first token of both responses is predicted from the last prefix token.
    """
    image_inputs = vlm.instruction_inputs(vlm.image_inputs(images), list(prompts))
    counts = vlm.image_layouts(image_inputs)
    rows, segments = [], []
    sources = {"chosen": [], "rejected": []}  # per row: positions whose hidden state predicts each token
    targets = {"chosen": [], "rejected": []}  # per row: the response tokens
    for i, prompt in enumerate(prompts):
        prefix = vlm._prompt_ids(prompt, counts[i])
        chosen_ids, rejected_ids = vlm._response_ids(chosen[i], True), vlm._response_ids(rejected[i], True)
        if max_length is not None:
            if len(prefix) >= max_length:
                raise TetherError(
                    f"pair {i}: prompt with its visual tokens is {len(prefix)} tokens, max_length is {max_length}"
                )
            chosen_ids, rejected_ids = (
                chosen_ids[: max_length - len(prefix)],
                rejected_ids[: max_length - len(prefix)],
            )
        p, c = len(prefix), len(chosen_ids)
        rows.append(prefix + chosen_ids + rejected_ids)
        segments.append([0] * p + [1] * c + [2] * len(rejected_ids))
        sources["chosen"].append([p - 1 + j for j in range(c)])
        # the first rejected token follows the prefix, the others follow their predecessor in the rejected segment
        sources["rejected"].append([p - 1 if j == 0 else p + c + j - 1 for j in range(len(rejected_ids))])
        targets["chosen"].append(chosen_ids)
        targets["rejected"].append(rejected_ids)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), vlm.pad_token_id, dtype=torch.long)
    segment_ids = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, (row, seg) in enumerate(zip(rows, segments)):
        input_ids[i, : len(row)] = torch.tensor(row)
        segment_ids[i, : len(seg)] = torch.tensor(seg)
    out = {"input_ids": input_ids, "segment_ids": segment_ids, "image_inputs": image_inputs}
    for name in ("chosen", "rejected"):
        n = max(len(s) for s in sources[name])
        out[f"{name}_source"] = torch.zeros((len(rows), n), dtype=torch.long)
        out[f"{name}_target"] = torch.zeros((len(rows), n), dtype=torch.long)
        out[f"{name}_mask"] = torch.zeros((len(rows), n), dtype=torch.bool)
        for i, (source, target) in enumerate(zip(sources[name], targets[name])):
            out[f"{name}_source"][i, : len(source)] = torch.tensor(source, dtype=torch.long)
            out[f"{name}_target"][i, : len(target)] = torch.tensor(target, dtype=torch.long)
            out[f"{name}_mask"][i, : len(source)] = True
    return out


def block_causal_mask(segment_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive ``[batch, 1, seq, seq]`` mask: causal, no padding, rejected tokens blind to chosen tokens."""
    length = segment_ids.shape[1]
    query, key = segment_ids[:, :, None], segment_ids[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    allowed = causal & (key >= 0) & (query >= 0) & ~((query == 2) & (key == 1))
    # padding rows attend to themselves: a fully masked row would give NaN in some kernels
    allowed |= torch.eye(length, dtype=torch.bool, device=segment_ids.device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def packed_position_ids(vlm: VisionLanguageModel, packed: dict) -> torch.Tensor:
    """The model's own positions for the packed row, with the rejected segment moved back to follow the prefix."""
    segment_ids = packed["segment_ids"]
    positions = vlm.position_ids(packed["input_ids"], (segment_ids >= 0).long(), packed["image_inputs"])
    chosen_length = (segment_ids == 1).sum(dim=1, keepdim=True)
    return positions - (segment_ids == 2).long() * chosen_length.to(positions.device)


def packed_hidden_states(vlm: VisionLanguageModel, packed: dict) -> torch.Tensor:
    """Last-layer hidden states of a packed batch (``input_ids``, ``segment_ids``, ``image_inputs``) under its
    block mask and shifted positions; shared by DPO's pairs and HACL's shared visual prefix."""
    device = vlm.device
    input_ids = packed["input_ids"].to(device)
    segment_ids = packed["segment_ids"].to(device)
    image_inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in packed["image_inputs"].items()}
    vlm.check_image_tokens(ModelBatch(input_ids, (segment_ids >= 0).long(), segment_ids > 0, image_inputs))
    position_ids = packed_position_ids(vlm, {**packed, "input_ids": input_ids, "segment_ids": segment_ids})
    return vlm.decoder_hidden_states(
        input_ids=input_ids,
        attention_mask=vlm.packed_attention_mask(
            block_causal_mask(segment_ids, vlm.base_model.dtype), input_ids, position_ids
        ),
        position_ids=position_ids,
        **model_image_inputs(image_inputs),
        **vlm.extra_inputs(input_ids),
    )


def packed_pair_logprobs(
    vlm: VisionLanguageModel, packed: dict
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed log-probs of chosen and rejected responses from one packed forward; also chosen token counts."""
    device = vlm.device
    hidden = packed_hidden_states(vlm, packed)
    sums = []
    for name in ("chosen", "rejected"):
        source, target, mask = (packed[f"{name}_{k}"].to(device) for k in ("source", "target", "mask"))
        rows = torch.arange(source.shape[0], device=device)[:, None].expand_as(source)
        logits = vlm.lm_head(hidden[rows[mask], source[mask]]).float()
        token_logps = torch.gather(F.log_softmax(logits, dim=-1), 1, target[mask][:, None]).squeeze(1)
        per_token = torch.zeros(mask.shape, dtype=token_logps.dtype, device=device).masked_scatter(
            mask, token_logps
        )
        sums.append(per_token.sum(dim=1))
    return sums[0], sums[1], packed["chosen_mask"].sum(dim=1).to(device)


# ---- collator and module -----------------------------------------------------------------------------------


class DPOCollator:
    """Items ``{"index", "pair", "ref_chosen", "ref_rejected"}`` → the keyword arguments of ``DPOModule``.

    ``shared_prefix=True`` gives one packed batch; False gives separate chosen and rejected batches (the
    two-sequence computation). With ``sft_records``, each pair brings SFT record ``index mod len`` along,
    so the auxiliary batch is a function of the pair (and resume stays exact).
    """

    def __init__(
        self,
        vlm: VisionLanguageModel,
        images_root,
        max_length: int | None = None,
        shared_prefix: bool = True,
        sft_records: Sequence | None = None,
    ):
        self.vlm = vlm
        self.images_root = images_root
        self.max_length = max_length
        self.shared_prefix = shared_prefix
        self.sft_records = list(sft_records or [])
        self.sft_collator = None
        if self.sft_records:
            from tether.methods.sft import SFTCollator

            self.sft_collator = SFTCollator(vlm, images_root, max_length)

    def encode(self, pairs: Sequence[PreferenceRecord]) -> dict:
        images = [open_image(self.images_root, p.image) for p in pairs]
        prompts = [p.prompt for p in pairs]
        chosen, rejected = [p.chosen for p in pairs], [p.rejected for p in pairs]
        if self.shared_prefix:
            return {
                "packed": encode_packed_pairs(self.vlm, images, prompts, chosen, rejected, self.max_length)
            }
        kwargs = {"max_length": self.max_length}
        return {
            "chosen_batch": self.vlm.encode(images, prompts, chosen, **kwargs).as_dict(),
            "rejected_batch": self.vlm.encode(images, prompts, rejected, **kwargs).as_dict(),
        }

    def __call__(self, items: Sequence[dict]) -> dict:
        out = self.encode([item["pair"] for item in items])
        if items and items[0].get("ref_chosen") is not None:
            out["ref_chosen"] = torch.tensor([item["ref_chosen"] for item in items], dtype=torch.float32)
            out["ref_rejected"] = torch.tensor([item["ref_rejected"] for item in items], dtype=torch.float32)
        if self.sft_collator is not None:
            picked = [self.sft_records[item["index"] % len(self.sft_records)] for item in items]
            out["sft_batch"] = self.sft_collator(picked)
        return out


class DPOModule(torch.nn.Module):
    """Sigmoid DPO (+ γ·SFT) around a VLM; reference log-probs come in the batch (precomputed)."""

    def __init__(
        self,
        vlm: VisionLanguageModel,
        beta: float = 0.1,
        sft_weight: float = 0.0,
        visual_perturbation: torch.nn.Module | None = None,
        noise_branches: str = "chosen",
    ):
        super().__init__()
        if noise_branches not in ("chosen", "both"):
            raise TetherError(f"dpo.noise_branches must be 'chosen' or 'both', got {noise_branches!r}")
        self.model = vlm.model
        self.vlm = vlm
        self.beta = beta
        self.sft_weight = sft_weight
        self.visual_perturbation = visual_perturbation
        self.noise_branches = noise_branches

    def _noise(self, active: bool):
        if active and self.visual_perturbation is not None and self.training:
            return noise_hook(self.vlm, self.visual_perturbation)
        return contextlib.nullcontext()

    def pair_logprobs(self, packed=None, chosen_batch=None, rejected_batch=None):
        """Summed policy log-probs ``(chosen, rejected, chosen_token_counts)`` by either path."""
        if packed is not None:
            noisy = self.visual_perturbation is not None and self.training
            if noisy and self.noise_branches == "chosen":
                raise TetherError(
                    "chosen-only NoiseBoost needs the two-sequence batches (shared_prefix=False)"
                )
            with self._noise(True):
                return packed_pair_logprobs(self.vlm, packed)
        with self._noise(True):
            chosen = self.vlm.response_logprobs(ModelBatch.from_dict(chosen_batch))
        with self._noise(self.noise_branches == "both"):
            rejected = self.vlm.response_logprobs(ModelBatch.from_dict(rejected_batch))
        return chosen.summed, rejected.summed, chosen.mask.sum(dim=1)

    def forward(
        self,
        packed=None,
        chosen_batch=None,
        rejected_batch=None,
        ref_chosen=None,
        ref_rejected=None,
        sft_batch=None,
    ) -> dict:
        if ref_chosen is None or ref_rejected is None:
            raise TetherError("DPO batches need reference log-probs (compute_reference_logprobs)")
        chosen, rejected, chosen_tokens = self.pair_logprobs(packed, chosen_batch, rejected_batch)
        result = dpo_sigmoid_loss(chosen, rejected, ref_chosen, ref_rejected, self.beta)
        loss = result.loss
        metrics = result.metrics()
        metrics["logps/chosen"] = chosen.detach().mean()
        metrics["logps/rejected"] = rejected.detach().mean()
        if self.sft_weight:
            if sft_batch is not None:
                sft_loss = sft_nll(self.vlm, sft_batch)
            else:
                sft_loss = -chosen.sum() / chosen_tokens.sum().clamp(min=1)
            loss = loss + self.sft_weight * sft_loss
            metrics["sft_loss"] = sft_loss.detach()
        metrics["dpo_loss"] = result.loss.detach()
        return {"loss": loss, "metrics": metrics}


def sft_nll(vlm: VisionLanguageModel, sft_batch: dict) -> torch.Tensor:
    """Mean next-token NLL over the response tokens of an ``SFTCollator`` batch."""
    total, tokens = 0.0, 0
    from tether.methods.sft import batch_parts

    for raw in batch_parts(sft_batch.get("image_batch")) + batch_parts(sft_batch.get("text_batch")):
        result = vlm.response_logprobs(ModelBatch.from_dict(raw))
        total = total + result.summed.sum()
        tokens += int(result.mask.sum())
    return -total / max(tokens, 1)


# ---- reference log-probs, cached ---------------------------------------------------------------------------


@torch.no_grad()
def compute_reference_logprobs(
    vlm: VisionLanguageModel,
    pairs: Sequence[PreferenceRecord],
    collator: DPOCollator,
    batch_size: int,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed reference log-probs of every pair: the adapter-disabled model under LoRA, else the model as is."""
    from tqdm.auto import tqdm

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
    from tether.core.fingerprints import model_digest

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
    collator: DPOCollator,
    batch_size: int,
    cache_dir,
    fingerprint: str,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, Path, bool]:
    """Load ``cache_dir/ref_logps-<fingerprint>.safetensors`` or compute and write it; returns (c, r, path, hit)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(
        f"{path.name}.{os.getpid()}.tmp"
    )  # every rank computes; each writes its own temp file
    save_file({"chosen": chosen, "rejected": rejected}, str(tmp), metadata={"fingerprint": fingerprint})
    tmp.replace(path)
    return chosen, rejected, path, False


def supports_packing(vlm: VisionLanguageModel) -> bool:
    implementation = vlm.base_model.config.get_text_config()._attn_implementation
    return implementation in PACKABLE_ATTENTION


# ---- the command -------------------------------------------------------------------------------------------


def load_pairs(config: DPOConfig, skips) -> list[PreferenceRecord]:
    from tether.data.preference import load_preference_records

    if not config.data.train:
        raise TetherError("data.train lists no preference files")
    return [
        pair
        for path in config.data.train
        for pair in load_preference_records(
            path,
            format=config.data.format,
            skip_invalid=config.data.skip_invalid,
            skips=skips,
            image_pattern=config.data.image_pattern,
            images=config.data.images,
        )
    ]


@training_run("train dpo")
def train_dpo(config: DPOConfig):
    """Run DPO from a config; returns the folder of the exported (merged, loadable) model."""
    from tether.core.io import SkipLog
    from tether.methods.run_record import RunTimer, write_run_record
    from tether.methods.trainer import run_training
    from tether.methods.tuning import export_model, load_for_training

    timer = RunTimer()
    settings = config.dpo
    if settings.sft_target not in ("chosen", "data"):
        raise TetherError(f"dpo.sft_target must be 'chosen' or 'data', got {settings.sft_target!r}")
    skips = SkipLog()
    pairs = load_pairs(config, skips)
    skips.require(pairs, "no preference pairs to train on")
    sft_records = []
    if settings.sft_weight and settings.sft_target == "data":
        from tether.data.sft import load_sft_records

        if not config.data.sft_train:
            raise TetherError("dpo.sft_target is 'data' but data.sft_train lists no files")
        sft_records = [
            r
            for p in config.data.sft_train
            for r in load_sft_records(
                p, skip_invalid=config.data.skip_invalid, skips=skips, images=config.data.images
            )
        ]
    torch.manual_seed(config.train.seed)  # LoRA and head initialisation happen before the Trainer seeds
    vlm = load_for_training(config.model)
    from tether.methods.noise import training_noise

    perturbation, callbacks = training_noise(config.noiseboost)
    packable = supports_packing(vlm)
    if settings.shared_prefix and not packable:
        logger.warning("attention implementation takes no 4-D mask: two-sequence DPO forward")
    shared_prefix = settings.shared_prefix and packable
    train_shared = shared_prefix and not (perturbation is not None and settings.noise_branches == "chosen")

    # reference log-probs before any update: cached on disk, keyed by what they depend on
    reference_collator = DPOCollator(vlm, config.data.images, config.data.max_length, shared_prefix)
    fingerprint = reference_fingerprint(
        config.model.path,
        config.model.dtype,
        pairs,
        config.data.images,
        config.data.max_length,
        config.model.chat_template,
    )
    start_output(config.train.output_dir)
    ref_chosen, ref_rejected, cache_path, cache_hit = cached_reference_logprobs(
        vlm,
        pairs,
        reference_collator,
        settings.reference_batch_size or config.train.per_device_train_batch_size,
        config.train.output_dir,
        fingerprint,
        progress=config.train.progress_bar,
    )
    items = [
        {"index": i, "pair": p, "ref_chosen": float(c), "ref_rejected": float(r)}
        for i, (p, c, r) in enumerate(zip(pairs, ref_chosen.tolist(), ref_rejected.tolist()))
    ]
    module = DPOModule(vlm, settings.beta, settings.sft_weight, perturbation, settings.noise_branches)
    collator = DPOCollator(vlm, config.data.images, config.data.max_length, train_shared, sft_records)
    trainer = run_training(
        module, collator, items, config.train, callbacks=callbacks, model_device=config.model.device
    )
    out = Path(config.train.output_dir) / "model"
    if trainer.args.should_save:
        export_model(vlm, out)
        write_run_record(
            config.train.output_dir,
            command="train dpo",
            config=config,
            trainer=trainer,
            timer=timer,
            extra={
                "pairs": len(pairs),
                "sft_records": len(sft_records),
                "skipped": skips.skipped,
                "skip_reasons": skips.reasons,
                "shared_prefix": train_shared,
                "reference_cache": str(cache_path),
                "reference_cache_hit": cache_hit,
                "reference_fingerprint": fingerprint,
            },
        )
    skips.report()
    return out
