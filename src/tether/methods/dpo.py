"""HA-DPO's trainer: sigmoid DPO on summed response log-probs, with the image and prompt encoded once per pair.

The config, collator and module of DPO; the loss is ``dpo_loss.dpo_sigmoid_loss``. Each pair runs as one packed
row ``[image + prompt | chosen | rejected]`` (``tether.methods.packing``: the prefix and the vision tower pay
once, with the log-probs and gradients of the two-sequence computation). Reference log-probs are computed once
before training and cached on disk (``tether.methods.dpo_reference``).

NoiseBoost (noise on the projected visual tokens, training only): by default only the chosen branch is
perturbed, as in the paper. The two branches then see different visual tokens, so they cannot share a
prefix: that case runs the two-sequence path (chosen under the noise hook, rejected clean). With
``noise_branches: both`` one noise draw perturbs the shared prefix, so both branches see the same noisy image
and the packed path stays exact.
"""

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tether.core.errors import TetherError
from tether.core.images import open_image
from tether.core.io import SkipLog
from tether.data.preference import DEFAULT_IMAGE_PATTERN, PreferenceRecord, load_preference_records
from tether.data.sft import load_sft_records
from tether.methods.dpo_loss import dpo_sigmoid_loss
from tether.methods.dpo_reference import cached_reference_logprobs, reference_fingerprint
from tether.methods.noise import NoiseSettings, noise_hook, noise_settings
from tether.methods.packing import encode_packed_pairs, packed_pair_logprobs, supports_packing
from tether.methods.run_record import RunTimer, start_output, training_run
from tether.methods.settings import ModelSettings, TrainSettings, read_options
from tether.methods.sft import SFTCollator, batch_parts
from tether.methods.trainer import MethodRun, load_records, run_method
from tether.models import ModelBatch, VisionLanguageModel

logger = logging.getLogger(__name__)


@dataclass
class DPOData:
    """The ``data:`` section of a DPO recipe.

    Parameters:
        train: preference files (any format of ``tether.data.preference``).
        format: their format; "auto" detects it from the content.
        images: the folder that image paths are relative to.
        image_pattern: how HA-DPO image ids become file names under ``images`` (logged).
        max_length: per branch (prefix + response); cuts responses only. None: no limit.
        skip_invalid: skip (and count) bad records instead of stopping at the first.
        streaming: Hugging Face datasets: read their rows lazily off the files, never whole (docs/pairs.md).
        sft_train: SFT records for the auxiliary loss when ``dpo.sft_target`` is "data".
    """

    train: list[str] = field(default_factory=list)
    format: str = "auto"
    images: str = "."
    image_pattern: str = DEFAULT_IMAGE_PATTERN
    max_length: int | None = None
    skip_invalid: bool = False
    streaming: bool = False
    sft_train: list[str] = field(default_factory=list)


@dataclass
class DPOSettings:
    """The DPO objective (the ``dpo:`` section).

    Parameters:
        beta: the temperature of sigmoid DPO.
        sft_weight: γ, the weight of the auxiliary SFT loss (0 = off).
        sft_target: "chosen": NLL of the chosen responses; "data": records of ``data.sft_train``.
        shared_prefix: one packed row per pair; False: the two-sequence computation of every peer.
        noise_branches: NoiseBoost on "chosen" (the paper) or "both" (one draw on the shared prefix).
        reference_batch_size: pairs per reference forward; None: the training batch size.
    """

    beta: float = 0.1
    sft_weight: float = 0.0
    sft_target: str = "chosen"
    shared_prefix: bool = True
    noise_branches: str = "chosen"
    reference_batch_size: int | None = None


@dataclass
class DPOConfig:
    """``tether train dpo``: HA-DPO, sigmoid DPO on preference pairs.

    Parameters:
        model: the policy; the reference is its adapter-disabled self under LoRA, else its initial weights.
        data: the pairs (``DPOData``).
        train: ``TrainSettings``.
        dpo: the objective (``DPOSettings``).
        noiseboost: NoiseBoost on the visual tokens (``NoiseSettings``); None: off.
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    data: DPOData = field(default_factory=DPOData)
    train: TrainSettings = field(default_factory=TrainSettings)
    dpo: DPOSettings = field(default_factory=DPOSettings)
    noiseboost: NoiseSettings | None = None

    def __post_init__(self):
        self.noiseboost = noise_settings(self.noiseboost)


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

    for raw in batch_parts(sft_batch.get("image_batch")) + batch_parts(sft_batch.get("text_batch")):
        result = vlm.response_logprobs(ModelBatch.from_dict(raw))
        total = total + result.summed.sum()
        tokens += int(result.mask.sum())
    return -total / max(tokens, 1)


# ---- reference log-probs, cached ---------------------------------------------------------------------------

# ---- the command -------------------------------------------------------------------------------------------


@training_run("train dpo")
def train_dpo(config: DPOConfig) -> Path:
    """Run DPO from a config; returns the folder of the exported (merged, loadable) model."""
    timer, skips = RunTimer(), SkipLog()
    settings, data = config.dpo, config.data
    if settings.sft_target not in ("chosen", "data"):
        raise TetherError(f"dpo.sft_target must be 'chosen' or 'data', got {settings.sft_target!r}")
    if not data.train:
        raise TetherError("data.train lists no preference files")
    options = read_options(data, skips)
    pairs = load_records(
        data.train, load_preference_records, format=data.format, image_pattern=data.image_pattern, **options
    )
    skips.require(pairs, "no preference pairs to train on")
    sft_records = []
    if settings.sft_weight and settings.sft_target == "data":
        if not data.sft_train:
            raise TetherError("dpo.sft_target is 'data' but data.sft_train lists no files")
        sft_records = load_records(data.sft_train, load_sft_records, **options)

    def build(vlm: VisionLanguageModel, perturbation) -> MethodRun:
        packable = supports_packing(vlm)
        if settings.shared_prefix and not packable:
            logger.warning("attention implementation takes no 4-D mask: two-sequence DPO forward")
        shared_prefix = settings.shared_prefix and packable
        chosen_noise_only = perturbation is not None and settings.noise_branches == "chosen"
        train_shared = shared_prefix and not chosen_noise_only
        # reference log-probs before any update: cached on disk, keyed by what they depend on
        fingerprint = reference_fingerprint(
            config.model.path,
            config.model.dtype,
            pairs,
            data.images,
            data.max_length,
            config.model.chat_template,
        )
        start_output(config.train.output_dir)
        ref_chosen, ref_rejected, cache_path, cache_hit = cached_reference_logprobs(
            vlm,
            pairs,
            DPOCollator(vlm, data.images, data.max_length, shared_prefix),
            settings.reference_batch_size or config.train.per_device_train_batch_size,
            config.train.output_dir,
            fingerprint,
            progress=config.train.progress_bar,
        )
        items = [
            {"index": i, "pair": p, "ref_chosen": float(c), "ref_rejected": float(r)}
            for i, (p, c, r) in enumerate(zip(pairs, ref_chosen.tolist(), ref_rejected.tolist()))
        ]
        return MethodRun(
            DPOModule(vlm, settings.beta, settings.sft_weight, perturbation, settings.noise_branches),
            DPOCollator(vlm, data.images, data.max_length, train_shared, sft_records),
            items,
            {
                "shared_prefix": train_shared,
                "reference_cache": str(cache_path),
                "reference_cache_hit": cache_hit,
                "reference_fingerprint": fingerprint,
            },
        )

    record = {"pairs": len(pairs), "sft_records": len(sft_records)}
    return run_method(config, "train dpo", build, timer=timer, skips=skips, record=record)
