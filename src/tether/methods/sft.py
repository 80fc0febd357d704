"""Supervised fine-tuning (and language-model pretraining): next-token loss on response tokens.

NoiseBoost plugs in through ``visual_perturbation``: a module applied to the projected visual tokens in
training mode only.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tether.core.errors import TetherError
from tether.core.images import open_image
from tether.core.io import SkipLog
from tether.data.sft import SFTRecord, load_sft_records
from tether.methods.noise import NoiseSettings, noise_hook, noise_settings
from tether.methods.run_record import RunTimer, training_run
from tether.methods.settings import ModelSettings, TrainSettings, read_options
from tether.methods.sft_loss import next_token_loss
from tether.methods.trainer import MethodRun, load_records, run_method
from tether.models import ModelBatch, VisionLanguageModel


@dataclass
class SFTData:
    """The ``data:`` section of an SFT recipe.

    Parameters:
        train: JSONL/JSON files of SFT records (any format of ``tether.data.sft``).
        images: the folder that image paths are relative to.
        max_length: cuts responses only; prompts never lose visual tokens. None: no limit.
        skip_invalid: skip (and count) bad records instead of stopping at the first, which names file and line.
        streaming: Hugging Face datasets: read their rows lazily off the files, never whole (docs/pairs.md).
        template: "chat": prompts through the checkpoint's chat template; "plain": LLaVA's stage-1 alignment
            format, the image alone then the response (the prompt text is dropped, as LLaVA's pretraining does).
    """

    train: list[str] = field(default_factory=list)
    images: str = "."
    max_length: int | None = None
    skip_invalid: bool = False
    streaming: bool = False
    template: str = "chat"


@dataclass
class SFTConfig:
    """``tether train sft``: supervised fine-tuning (or LM pretraining) on (image, prompt, response) records.

    Parameters:
        model: the model to train and which parts train (``ModelSettings``).
        data: the records (``SFTData``).
        train: the ``transformers.TrainingArguments`` that apply (``TrainSettings``).
        noiseboost: NoiseBoost on the visual tokens while training (``NoiseSettings``); None: off.
        normalize: "token": mean NLL over every response token of the batch (LLaVA's); "sample": mean per
            response, then over responses, so one-word answers weigh as much as long descriptions in a mixed batch.
        split_by_length: run each batch as sub-batches of similar length: the same loss with less padding
            (``length_chunks``; NoiseBoost's draws then differ, not their distribution).
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    data: SFTData = field(default_factory=SFTData)
    train: TrainSettings = field(default_factory=TrainSettings)
    noiseboost: NoiseSettings | None = None
    normalize: str = "token"
    split_by_length: bool = True

    def __post_init__(self):
        self.noiseboost = noise_settings(self.noiseboost)


# What one more forward must save, in padded token positions, to be worth running: enough that mixed
# answer/description batches split and caption batches stay whole (docs/results/sft-length-chunks.md).
FORWARD_OVERHEAD_TOKENS = 256


def length_chunks(lengths: Sequence[int], overhead: int = FORWARD_OVERHEAD_TOKENS) -> list[list[int]]:
    """Row indices in sub-batches of similar length, minimising Σ (rows × longest row + ``overhead``).

    An SFT batch mixes one-word answers and long descriptions: padded to its longest row, much of it is
    padding (docs/results/sft-length-chunks.md). Sorted by length, the best
    split points are found exactly by dynamic programming over the (small) batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = [0.0] + [float("inf")] * len(order)  # best[k]: cost of the k shortest rows
    start_of = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        longest = lengths[order[end - 1]]
        for start in range(end):
            cost = best[start] + (end - start) * longest + overhead
            if cost < best[end]:
                best[end], start_of[end] = cost, start
    chunks, end = [], len(order)
    while end:
        # rows keep their batch order inside a chunk: an unsplit batch is summed exactly as before
        chunks.append(sorted(order[start_of[end] : end]))
        end = start_of[end]
    return chunks[::-1]


def batch_parts(raw) -> list:
    """An SFTCollator entry as a list of batches (it is None, one batch, or length-sorted sub-batches)."""
    if raw is None:
        return []
    return list(raw) if isinstance(raw, list | tuple) else [raw]


class SFTCollator:
    """Records → ``{"image_batch": ..., "text_batch": ...}`` (either may be None).

    With ``split_by_length`` (default), ``image_batch`` is a list of sub-batches of similar length: the loss
    is the same sum over the same rows, with less padding computed (``length_chunks``).
    """

    def __init__(
        self,
        vlm: VisionLanguageModel,
        images_root,
        max_length: int | None = None,
        split_by_length: bool = True,
        template: str = "chat",
    ):
        self.vlm = vlm
        self.images_root = images_root
        self.max_length = max_length
        self.split_by_length = split_by_length
        self.template = template

    def __call__(self, records: Sequence[SFTRecord]) -> dict:
        with_image = [r for r in records if r.image is not None]
        text_only = [r for r in records if r.image is None]
        out = {"image_batch": None, "text_batch": None}
        if with_image:
            images = [open_image(self.images_root, r.image) for r in with_image]
            batch = self.vlm.encode(
                images,
                [r.prompt for r in with_image],
                [r.response for r in with_image],
                max_length=self.max_length,
                template=self.template,
            )
            chunks = length_chunks(batch.attention_mask.sum(dim=1).tolist()) if self.split_by_length else []
            if len(chunks) > 1:
                out["image_batch"] = [self.vlm.select_rows(batch, images, rows).as_dict() for rows in chunks]
            else:  # nothing to gain: the batch as it is
                out["image_batch"] = batch.as_dict()
        if text_only:
            out["text_batch"] = self.vlm.encode_text([r.response for r in text_only]).as_dict()
        return out


class SFTModule(torch.nn.Module):
    """Mean next-token NLL of the batch's responses (image and text-only rows together), per token or per sample."""

    def __init__(
        self,
        vlm: VisionLanguageModel,
        visual_perturbation: torch.nn.Module | None = None,
        normalize: str = "token",
    ):
        super().__init__()
        if normalize not in ("token", "sample"):
            raise TetherError(f"normalize must be 'token' or 'sample', not {normalize!r}")
        self.model = vlm.model
        self.vlm = vlm
        self.visual_perturbation = visual_perturbation
        self.normalize = normalize

    def forward(self, image_batch=None, text_batch=None) -> dict:
        parts = [(raw, True) for raw in batch_parts(image_batch)] + [
            (raw, False) for raw in batch_parts(text_batch)
        ]
        results = []
        for raw, has_image in parts:
            batch = ModelBatch.from_dict(raw)
            if self.visual_perturbation is not None and self.training and has_image:
                with noise_hook(self.vlm, self.visual_perturbation):
                    result = self.vlm.response_logprobs(batch, return_logits=True)
            else:
                result = self.vlm.response_logprobs(batch, return_logits=True)
            results.append((result, batch.input_ids))
        return next_token_loss(results, self.normalize)


@training_run("train sft")
def train_sft(config: SFTConfig) -> Path:
    """Run SFT from a config; returns the folder of the exported (merged, loadable) model."""
    timer, skips = RunTimer(), SkipLog()
    if not config.data.train:
        raise TetherError("data.train lists no files")
    records = load_records(config.data.train, load_sft_records, **read_options(config.data, skips))
    skips.require(records, "no SFT records to train on")
    build = sft_method(config, records)
    return run_method(config, "train sft", build, timer=timer, skips=skips, record={"records": len(records)})


def sft_method(config, records: list[SFTRecord]):
    """``run_method``'s ``build`` for SFT (with the config's NoiseBoost) on ``records``. ``config`` is an
    SFTConfig or a config with the same data and SFT fields (SSLConfig)."""

    def build(vlm: VisionLanguageModel, perturbation) -> MethodRun:
        data = config.data
        return MethodRun(
            SFTModule(vlm, perturbation, config.normalize),
            SFTCollator(vlm, data.images, data.max_length, config.split_by_length, data.template),
            records,
        )

    return build
