"""HACL: Hallucination Augmented Contrastive Learning (arXiv 2312.06968).

Stage-1 alignment (or SFT) with an extra contrastive term that pulls the LLM's representation of an image
towards that of its caption and away from other captions and from hallucinated rewrites of the caption:

    loss = L_G + w * (L_v + L_t) / 2

L_G is the usual next-token loss on (image, prompt, caption) (``tether.methods.sft.SFTModule``); L_v / L_t are the
image→text / text→image InfoNCE terms of ``tether.methods.hacl_loss``. Global representations: the last-layer
hidden state at an EOS appended to the visual tokens alone (image) and to the text alone (caption, negative),
each through its own linear head (hidden → hidden/4) and L2-normalised. Per step the extra forwards are two
batched ones: all visual-only sequences together, and all captions *and* negatives together.

Shared visual prefix. Under an image-first template (``data.template: plain``, LLaVA's stage-1 format) the
visual-only sequence ``[BOS?, image span]`` is a prefix of the L_G row ``[BOS?, image span, caption, EOS]``, and
causal attention gives those positions the same hidden states in both. The visual-only forward is then folded
into L_G's: each row gains one token, a representation EOS right after its last token that attends only to the
prefix and itself and takes the position the EOS has in the visual-only sequence (DPO's block mask and position
shift, segments ``prefix | rest of the row | EOS``). Representations, loss and gradients are those of the
separate forward (tests check it to 1e-5); the image costs one token instead of ``|V| + 1``. Chat templates put
tokens before the image, NoiseBoost perturbs L_G's visual tokens only, and flash attention takes no 4-D mask:
those run the separate forward.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from tether.core.errors import TetherError
from tether.core.images import open_image
from tether.core.io import SkipLog
from tether.data.negatives import load_negatives
from tether.data.sft import SFTRecord, load_sft_records
from tether.methods.hacl_loss import TEMPERATURE_INIT, LearnableTemperature, hacl_contrastive_loss
from tether.methods.noise import NoiseSettings, noise_settings
from tether.methods.packing import packed_hidden_states, supports_packing
from tether.methods.run_record import RunTimer, training_run
from tether.methods.settings import ModelSettings, TrainSettings, read_options
from tether.methods.sft import SFTData, SFTModule
from tether.methods.sft_loss import next_token_loss
from tether.methods.trainer import MethodRun, load_records, run_method
from tether.methods.tuning import export_model
from tether.models import ModelBatch, ResponseLogProbs, VisionLanguageModel
from tether.models.batch import logprobs_from_logits

HEADS_FILE = "hacl_heads.safetensors"


@dataclass
class HACLData(SFTData):
    """The ``data:`` section of a HACL recipe: ``SFTData``'s fields (the captioned images), and

    Parameters:
        negatives: files from ``tether data negatives``: hallucinated rewrites of the captions, matched to the
            records by (image, caption), else by caption.
    """

    negatives: list[str] = field(default_factory=list)


@dataclass
class HACLSettings:
    """HACL's contrastive term (the ``hacl:`` section).

    Parameters:
        weight: w in L_G + w * (L_v + L_t) / 2.
        temperature_init: the learnable temperature's starting value.
        negatives_both_sides: also use each caption's hallucinated twin on the text→image side.
        gather_across_processes: contrast against the whole global batch under DDP.
        head_dim: output size of the image and text heads; None: hidden_size // 4.
    """

    weight: float = 1.0
    temperature_init: float = TEMPERATURE_INIT
    negatives_both_sides: bool = False
    gather_across_processes: bool = True
    head_dim: int | None = None


@dataclass
class Stage1ModelSettings(ModelSettings):
    """Stage-1 alignment defaults: the projector (and HACL's heads) train, LLM and vision tower stay frozen.

    A subclass rather than a factory so a recipe's ``model:`` section keeps these defaults. For HACL in SFT,
    set ``model.freeze_llm: false`` (or ``model.lora``).
    """

    freeze_llm: bool = True


@dataclass
class HACLConfig:
    """``tether train hacl``: stage-1 alignment (or SFT) plus HACL's contrastive loss with hallucinated negatives.

    Parameters:
        model: the model, with stage-1 defaults (``Stage1ModelSettings``: projector and heads train).
        data: captioned images and their negatives (``HACLData``).
        train: ``TrainSettings``.
        hacl: the contrastive term (``HACLSettings``).
        noiseboost: NoiseBoost on the L_G forward, as in SFT (``NoiseSettings``); None: off.
    """

    model: Stage1ModelSettings = field(default_factory=Stage1ModelSettings)
    data: HACLData = field(default_factory=HACLData)
    train: TrainSettings = field(default_factory=TrainSettings)
    hacl: HACLSettings = field(default_factory=HACLSettings)
    noiseboost: NoiseSettings | None = None

    def __post_init__(self):
        self.noiseboost = noise_settings(self.noiseboost)


@dataclass
class HACLExample:
    record: SFTRecord  # image, prompt, caption (the response)
    negative: str | None  # a hallucinated rewrite of the caption, when one is known


def attach_negatives(records: Sequence[SFTRecord], pairs) -> list[HACLExample]:
    """Pair each image record with a negative of its caption: matched by (image, caption), else by caption."""
    by_image_caption, by_caption = {}, {}
    for p in pairs:
        by_image_caption.setdefault((p.image, p.caption.strip()), p.negative)
        by_caption.setdefault(p.caption.strip(), p.negative)
    examples = []
    for r in records:
        key = r.response.strip()
        negative = by_image_caption.get((r.image, key), by_caption.get(key))
        examples.append(HACLExample(r, negative))
    return examples


def encode_shared_visual_prefix(
    vlm: VisionLanguageModel, lm_batch: ModelBatch, visual_batch: ModelBatch
) -> dict | None:
    """The right-padded L_G batch with each row's representation EOS appended, or None if some row does not
    start with its visual-only sequence (the image is not first under the template).

    ``segment_ids``: 0 = the visual prefix, 1 = the rest of the L_G row, 2 = the representation EOS, -1 =
    padding; ``representation_index[b]`` is where row b's representation EOS sits.
    """
    if vlm.instruction_input_names:
        return None  # the visual tokens read the prompt: the L_G row's are not the image's alone
    lengths = lm_batch.attention_mask.sum(dim=1).tolist()
    prefix_lengths = (visual_batch.attention_mask.sum(dim=1) - 1).tolist()
    for i, (length, prefix) in enumerate(zip(lengths, prefix_lengths)):
        if length <= prefix or not torch.equal(
            lm_batch.input_ids[i, :prefix], visual_batch.input_ids[i, :prefix]
        ):
            return None
    rows, width = len(lengths), max(lengths) + 1
    input_ids = torch.full((rows, width), vlm.pad_token_id, dtype=torch.long)
    segment_ids = torch.full((rows, width), -1, dtype=torch.long)
    response_mask = torch.zeros((rows, width), dtype=torch.bool)
    input_ids[:, : width - 1] = lm_batch.input_ids
    response_mask[:, : width - 1] = lm_batch.response_mask
    for i, (length, prefix) in enumerate(zip(lengths, prefix_lengths)):
        input_ids[i, length] = vlm.eos_token_id
        segment_ids[i, :prefix] = 0
        segment_ids[i, prefix:length] = 1
        segment_ids[i, length] = 2
    return {
        "input_ids": input_ids,
        "segment_ids": segment_ids,
        "response_mask": response_mask,
        "image_inputs": lm_batch.image_inputs,
        "representation_index": torch.tensor(lengths, dtype=torch.long),
    }


def shared_prefix_forward(vlm: VisionLanguageModel, packed: dict) -> tuple[ResponseLogProbs, torch.Tensor]:
    """One forward of a ``encode_shared_visual_prefix`` batch: the caption log-probs (with logits) of L_G and
    the image representations ``[batch, hidden]`` read at the representation EOS."""
    device = vlm.device
    hidden = packed_hidden_states(vlm, packed)
    input_ids = packed["input_ids"].to(device)
    response_mask = packed["response_mask"].to(device)
    lm = logprobs_from_logits(vlm.lm_head(hidden), input_ids, response_mask, return_logits=True)
    rows = torch.arange(hidden.shape[0], device=device)
    return lm, hidden[rows, packed["representation_index"].to(device)]


class HACLCollator:
    """Examples → the L_G batch plus the two representation batches (visual-only; captions + negatives).

    With ``share_visual_prefix`` and an image-first ``template``, the L_G and visual-only batches come as one
    ``packed`` batch (``encode_shared_visual_prefix``).
    """

    def __init__(
        self,
        vlm: VisionLanguageModel,
        images_root,
        max_length: int | None = None,
        template: str = "chat",
        share_visual_prefix: bool = True,
    ):
        self.vlm = vlm
        self.images_root = images_root
        self.max_length = max_length
        self.template = template
        self.share_visual_prefix = share_visual_prefix

    def __call__(self, examples: Sequence[HACLExample]) -> dict:
        images = [open_image(self.images_root, e.record.image) for e in examples]
        lm_batch = self.vlm.encode(
            images,
            [e.record.prompt for e in examples],
            [e.record.response for e in examples],
            max_length=self.max_length,
            template=self.template,
        )
        visual_batch = self.vlm.visual_only_batch(images)
        negatives = [e.negative for e in examples if e.negative is not None]
        # captions first, then negatives: one text batch, one forward
        texts = [e.record.response for e in examples] + negatives
        negative_index, row = [], len(examples)
        for e in examples:
            negative_index.append(row if e.negative is not None else -1)
            row += e.negative is not None
        out = {
            "text_batch": self.vlm.encode_text(texts, add_eos=True).as_dict(),
            "negative_index": torch.tensor(negative_index, dtype=torch.long),
        }
        packed = (
            encode_shared_visual_prefix(self.vlm, lm_batch, visual_batch)
            if self.share_visual_prefix
            else None
        )
        if packed is not None:
            out["packed"] = packed
        else:
            out["image_batch"], out["visual_batch"] = lm_batch.as_dict(), visual_batch.as_dict()
        return out


class HACLModule(torch.nn.Module):
    """The VLM's model, the two projection heads and the temperature; ``forward`` returns loss and metrics."""

    def __init__(
        self,
        vlm: VisionLanguageModel,
        settings: HACLSettings | None = None,
        visual_perturbation: torch.nn.Module | None = None,
    ):
        super().__init__()
        self.settings = settings or HACLSettings()
        self.model = vlm.model
        self.vlm = vlm
        self.language_modelling = SFTModule(vlm, visual_perturbation)
        head_dim = self.settings.head_dim or vlm.hidden_size // 4
        self.image_head = torch.nn.Linear(vlm.hidden_size, head_dim)
        self.text_head = torch.nn.Linear(vlm.hidden_size, head_dim)
        self.temperature = LearnableTemperature(self.settings.temperature_init)
        self.image_head.to(vlm.device)
        self.text_head.to(vlm.device)
        self.temperature.to(vlm.device)

    def language_modelling_and_images(self, image_batch, visual_batch, packed) -> tuple[dict, torch.Tensor]:
        """L_G's loss and metrics, and the image representations ``[B, hidden]`` (one forward when packed)."""
        if packed is None:
            lm = self.language_modelling(image_batch=image_batch)
            return lm, self.vlm.eos_representation(ModelBatch.from_dict(visual_batch))
        if self.training and self.language_modelling.visual_perturbation is not None:
            raise TetherError(
                "NoiseBoost perturbs L_G's visual tokens only: use the separate visual-only forward"
            )
        result, image_hidden = shared_prefix_forward(self.vlm, packed)
        return next_token_loss([(result, packed["input_ids"])]), image_hidden

    def embeddings(self, image_hidden: torch.Tensor, text_batch: dict, negative_index: torch.Tensor):
        """Normalised image, caption and negative embeddings ``[B, d]`` and the ``has_negative`` mask."""
        text_hidden = self.vlm.eos_representation(ModelBatch.from_dict(text_batch))
        n = image_hidden.shape[0]
        head_dtype = self.image_head.weight.dtype
        image = F.normalize(self.image_head(image_hidden.to(head_dtype)), dim=-1)
        texts = F.normalize(self.text_head(text_hidden.to(head_dtype)), dim=-1)
        negative_index = negative_index.to(texts.device)
        has_negative = negative_index >= 0
        # rows without a negative get the caption's own embedding as a placeholder; the loss masks them out
        negatives = texts[torch.where(has_negative, negative_index, torch.arange(n, device=texts.device))]
        return image, texts[:n], negatives, has_negative

    def forward(self, text_batch, negative_index, image_batch=None, visual_batch=None, packed=None) -> dict:
        lm, image_hidden = self.language_modelling_and_images(image_batch, visual_batch, packed)
        image, captions, negatives, has_negative = self.embeddings(image_hidden, text_batch, negative_index)
        if self.settings.gather_across_processes:
            image, captions, negatives, has_negative = gather_across_processes(
                image, captions, negatives, has_negative
            )
        temperature = self.temperature()
        loss_v, loss_t = hacl_contrastive_loss(
            image,
            captions,
            negatives,
            has_negative,
            temperature,
            negatives_both_sides=self.settings.negatives_both_sides,
        )
        loss = lm["loss"] + self.settings.weight * (loss_v + loss_t) / 2
        with torch.no_grad():
            target = torch.arange(image.shape[0], device=image.device)
            i2t_accuracy = ((image @ captions.T).argmax(-1) == target).float().mean()
            beats_negative = ((image * captions).sum(-1) > (image * negatives).sum(-1))[has_negative].float()
        metrics = {
            "lm_loss": lm["loss"].detach(),
            "loss_v": loss_v.detach(),
            "loss_t": loss_t.detach(),
            "temperature": temperature.detach(),
            "i2t_accuracy": i2t_accuracy,
            "token_accuracy": lm["metrics"]["token_accuracy"],
        }
        if beats_negative.numel():
            metrics["caption_beats_negative"] = beats_negative.mean()
        return {"loss": loss, "metrics": metrics}


def gather_across_processes(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Concatenate each tensor over all processes, keeping gradients; unchanged when not distributed.

    ``torch.distributed.nn.functional.all_gather`` backpropagates into every process's share. All processes
    must bring the same batch size (the Trainer's distributed sampler pads the last batch to ensure it).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensors
    from torch.distributed.nn.functional import all_gather

    out = []
    for t in tensors:
        if t.dtype == torch.bool:  # all_gather needs a differentiable-friendly dtype; masks carry no grad
            parts = [torch.zeros_like(t, dtype=torch.uint8) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, t.to(torch.uint8))
            out.append(torch.cat(parts).bool())
        else:
            out.append(torch.cat(all_gather(t)))
    return tuple(out)


@training_run("train hacl")
def train_hacl(config: HACLConfig) -> Path:
    """Run HACL from a config; returns the folder of the exported model (heads saved beside the run)."""
    timer, skips = RunTimer(), SkipLog()
    if not config.data.train:
        raise TetherError("data.train lists no files")
    options = read_options(config.data, skips)
    records = load_records(config.data.train, load_sft_records, **options)
    text_only = sum(r.image is None for r in records)
    records = [r for r in records if r.image is not None]  # contrast needs an image
    del options["images"]  # load_negatives takes no images folder: a negative joins a caption record above
    examples = attach_negatives(records, load_records(config.data.negatives, load_negatives, **options))
    skips.require(examples, "no captioned images to train on")
    with_negative = sum(e.negative is not None for e in examples)
    if config.data.negatives and with_negative == 0:
        raise TetherError(
            "no training caption has a negative in data.negatives (captions must match exactly)"
        )

    def build(vlm: VisionLanguageModel, perturbation) -> MethodRun:
        module = HACLModule(vlm, config.hacl, perturbation)
        # one forward for L_G and the images where the template puts the image first (module docstring)
        share = supports_packing(vlm) and perturbation is None
        data = config.data
        collator = HACLCollator(vlm, data.images, data.max_length, data.template, share)
        visual_prefix = "shared" if "packed" in collator(examples[:1]) else "separate forward"

        def save(trainer, out: Path) -> None:
            export_model(vlm, out)
            save_file(head_weights(module), Path(config.train.output_dir) / HEADS_FILE)

        return MethodRun(module, collator, examples, {"visual_prefix": visual_prefix}, save)

    record = {
        "examples": len(examples),
        "with_negative": with_negative,
        "text_only_records_dropped": text_only,
    }
    return run_method(config, "train hacl", build, timer=timer, skips=skips, record=record)


def head_weights(module: HACLModule) -> dict[str, torch.Tensor]:
    """The projection heads and the temperature, as saved in ``hacl_heads.safetensors``."""
    heads = {f"image_head.{k}": v for k, v in module.image_head.state_dict().items()}
    heads.update({f"text_head.{k}": v for k, v in module.text_head.state_dict().items()})
    heads["log_temperature"] = module.temperature.log_temperature.detach()
    return {k: v.detach().cpu().contiguous() for k, v in heads.items()}
