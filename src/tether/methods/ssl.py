"""Semi-supervised NoiseBoost: a frozen teacher pseudo-labels unlabeled images; the noised student learns.

1. The teacher (a trained checkpoint, loaded read-only, eval mode) answers every unlabeled (image, prompt)
   greedily. Each answer's confidence is the mean (or min) probability of its tokens under the teacher,
   from ``response_logprobs`` of the generated text. Every pseudo-label is appended to a JSONL file (one
   fsync'd line per item, with its confidence and whether it passed the threshold): the file can be read,
   and a rerun skips the items already in it.
2. The student trains by SFT on labeled + kept pseudo-labeled records, with NoiseBoost on the visual tokens.

Unlabeled input: JSONL of ``{"image", "prompt"}``; or ``{"image"}`` alone, asked every prompt of
``pseudo.prompts`` (descriptions and/or questions).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tether.core.errors import DataError, TetherError
from tether.core.images import open_image
from tether.core.io import SkipLog, append_jsonl, iter_jsonl, read_records, require_image
from tether.data.sft import SFTRecord, load_sft_records
from tether.methods.noise import NoiseSettings, noise_settings
from tether.methods.run_record import RunTimer, start_output, training_run
from tether.methods.settings import ModelSettings, TrainSettings, read_options
from tether.methods.sft import sft_method
from tether.methods.trainer import load_records, run_method
from tether.models import load
from tether.models.adapter import TEMPLATES
from tether.models.decoding import DecodingSettings

CONFIDENCE_REDUCTIONS = ("mean", "min")


@dataclass
class SSLData:
    """The ``data:`` section of a semi-supervised recipe.

    Parameters:
        labeled: SFT record files (any format of ``tether.data.sft``).
        unlabeled: JSONL of {"image", "prompt"} or {"image"} (asked every prompt of ``pseudo.prompts``).
        images: the folder that image paths (labeled and unlabeled) are relative to.
        max_length: the student's, as ``SFTData.max_length``.
        skip_invalid: skip (and count) bad records instead of stopping at the first.
        streaming: Hugging Face datasets: read their rows lazily off the files, never whole (docs/pairs.md).
        template: the student's format, as ``SFTData.template``. The teacher always answers through its chat
            template: it is asked a question either way.
    """

    labeled: list[str] = field(default_factory=list)
    unlabeled: list[str] = field(default_factory=list)
    images: str = "."
    max_length: int | None = None
    skip_invalid: bool = False
    streaming: bool = False
    template: str = "chat"


@dataclass
class PseudoLabelSettings:
    """The teacher's pass (the ``pseudo:`` section).

    Parameters:
        teacher: checkpoint folder of the trained teacher (read-only).
        prompts: asked of unlabeled items that have no prompt.
        confidence: mean | min token probability of the teacher's answer.
        threshold: pseudo-labels whose confidence is >= this are kept.
        batch_size: items per generation batch.
        max_new_tokens: the teacher's answer budget.
        output: the pseudo-label JSONL; None: <train.output_dir>/pseudo_labels.jsonl.
    """

    teacher: str = ""
    prompts: list[str] = field(default_factory=list)
    confidence: str = "mean"
    threshold: float = 0.5
    batch_size: int = 8
    max_new_tokens: int = 64
    output: str | None = None


@dataclass
class SSLConfig:
    """``tether train ssl``: semi-supervised NoiseBoost (a teacher pseudo-labels, the noised student learns by SFT).

    Parameters:
        model: the student (``ModelSettings``).
        data: labeled and unlabeled data (``SSLData``).
        pseudo: the teacher's pass (``PseudoLabelSettings``).
        train: ``TrainSettings``.
        noiseboost: NoiseBoost on the student's visual tokens (``NoiseSettings``, on by default); None: off.
        normalize: loss mean per token or per sample, as ``SFTConfig.normalize``.
        split_by_length: sub-batches of similar length, as ``SFTConfig.split_by_length``.
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    data: SSLData = field(default_factory=SSLData)
    pseudo: PseudoLabelSettings = field(default_factory=PseudoLabelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    noiseboost: NoiseSettings | None = field(default_factory=NoiseSettings)
    normalize: str = "token"
    split_by_length: bool = True

    def __post_init__(self):
        self.noiseboost = noise_settings(self.noiseboost)


@dataclass
class UnlabeledItem:
    image: str
    prompt: str


def load_unlabeled_items(
    path,
    prompts: Sequence[str] = (),
    *,
    skip_invalid: bool = False,
    skips: SkipLog | None = None,
    images=None,
    streaming: bool = False,
) -> list[UnlabeledItem]:
    """Items to pseudo-label; an item without a prompt is expanded to one item per entry of ``prompts``.
    With ``images`` (the root), an item whose image is missing is a ``path:line`` error."""

    items = []
    for line, raw in read_records(path, skip_invalid=skip_invalid, skips=skips, streaming=streaming):
        image, prompt = raw.get("image"), raw.get("prompt")
        problem = None
        if not isinstance(image, str) or not image:
            problem = "field 'image' must be a file name"
        elif prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
            problem = "field 'prompt' must be a non-empty string"
        elif prompt is None and not prompts:
            problem = "item has no 'prompt' and pseudo.prompts is empty"
        elif images is not None:
            try:
                require_image(images, image, path, line)
            except DataError as e:
                problem = str(e).removeprefix(f"{path}:{line}: ")
        if problem:
            if not skip_invalid:
                raise DataError(problem, path, line)
            if skips is not None:
                skips.add(f"{path}:{line}: {problem}")
            continue
        items.extend(UnlabeledItem(image, p) for p in ([prompt] if prompt is not None else prompts))
    return items


def answer_confidence(per_token_logprobs: torch.Tensor, mask: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-row mean or min token probability over ``mask``; 0 for a row with no tokens."""
    probs = per_token_logprobs.exp()
    counts = mask.sum(dim=1)
    if reduction == "mean":
        value = (probs * mask).sum(dim=1) / counts.clamp(min=1)
    elif reduction == "min":
        value = probs.masked_fill(~mask, float("inf")).min(dim=1).values
    else:
        raise TetherError(f"pseudo.confidence '{reduction}' unknown; choose from {CONFIDENCE_REDUCTIONS}")
    return torch.where(counts > 0, value, torch.zeros_like(value))


@torch.no_grad()
def pseudo_label(
    teacher,
    items: Sequence[UnlabeledItem],
    images_root,
    out_path,
    settings: PseudoLabelSettings,
    progress: bool = True,
) -> list[dict]:
    """Pseudo-label ``items`` with ``teacher``, appending one JSONL line per item to ``out_path``.

    Items already in ``out_path`` (same image and prompt) are not asked again. Returns every line of the
    file for these items: ``{"image", "prompt", "response", "confidence", "kept"}``.
    """
    from tqdm.auto import tqdm

    if settings.confidence not in CONFIDENCE_REDUCTIONS:
        raise TetherError(
            f"pseudo.confidence '{settings.confidence}' unknown; choose from {CONFIDENCE_REDUCTIONS}"
        )
    out_path = Path(out_path)
    done = {}
    if out_path.is_file():
        done = {(r["image"], r["prompt"]): r for _, r in iter_jsonl(out_path)}
    todo = [it for it in items if (it.image, it.prompt) not in done]
    teacher.model.eval()
    decoding = DecodingSettings(max_new_tokens=settings.max_new_tokens)
    bar = tqdm(total=len(todo), desc="pseudo-labels", unit="item", disable=not progress)
    for start in range(0, len(todo), settings.batch_size):
        chunk = todo[start : start + settings.batch_size]
        images = [open_image(images_root, it.image) for it in chunk]
        prompts = [it.prompt for it in chunk]
        answers = teacher.generate(images, prompts, decoding)
        scored = teacher.response_logprobs(teacher.encode(images, prompts, answers, add_eos=False))
        confidence = answer_confidence(scored.per_token, scored.mask, settings.confidence).tolist()
        for item, answer, conf in zip(chunk, answers, confidence):
            record = {
                "image": item.image,
                "prompt": item.prompt,
                "response": answer,
                "confidence": conf,
                "kept": bool(answer) and conf >= settings.threshold,
            }
            append_jsonl(out_path, record)
            done[(item.image, item.prompt)] = record
        bar.update(len(chunk))
    bar.close()
    return [done[(it.image, it.prompt)] for it in items]


@training_run("train ssl")
def train_ssl(config: SSLConfig) -> Path:
    """Pseudo-label with the teacher, then SFT the noised student on labeled + kept pseudo-labels."""
    timer, skips = RunTimer(), SkipLog()
    if not config.pseudo.teacher:
        raise TetherError("pseudo.teacher names no checkpoint")
    if config.data.template not in TEMPLATES:  # before the teacher's pass, not at the student's first batch
        raise TetherError(
            f"data.template must be one of {', '.join(TEMPLATES)}, not {config.data.template!r}"
        )
    if not config.data.unlabeled:
        raise TetherError("data.unlabeled lists no files")
    options = read_options(config.data, skips)
    labeled = load_records(config.data.labeled, load_sft_records, **options)
    items = load_records(
        config.data.unlabeled, load_unlabeled_items, prompts=config.pseudo.prompts, **options
    )
    pseudo_path = Path(config.pseudo.output or Path(config.train.output_dir) / "pseudo_labels.jsonl")
    start_output(config.train.output_dir)
    teacher = load(config.pseudo.teacher, **config.model.load_options())  # inference: placed at load
    pseudo = pseudo_label(
        teacher, items, config.data.images, pseudo_path, config.pseudo, progress=config.train.progress_bar
    )
    del teacher  # the student never needs it; free its memory before training
    kept = [SFTRecord(r["image"], r["prompt"], r["response"]) for r in pseudo if r["kept"]]
    record = {
        "labeled_records": len(labeled),
        "unlabeled_items": len(items),
        "pseudo_labels_kept": len(kept),
        "pseudo_labels_file": str(pseudo_path),
        "mean_confidence": sum(r["confidence"] for r in pseudo) / max(len(pseudo), 1),
    }
    skips.require(labeled + kept, "no labeled records or kept pseudo-labels to train on")
    build = sft_method(config, labeled + kept)
    return run_method(config, "train ssl", build, timer=timer, skips=skips, record=record)
