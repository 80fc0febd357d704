"""The one interface every method and evaluator uses to talk to a vision-language model.

``VisionLanguageModel`` wraps a Hugging Face image-text-to-text model with its tokenizer, image processor
and chat template. Subclasses (one module per family: ``llava.py``, ``qwen2_vl.py``, ...) supply only what differs
between architectures:

- ``image_token``: the placeholder token that the model replaces with projected visual features;
- ``process_images(images)``: pixel tensors (and grids) for a list of PIL images (``image_inputs`` calls it,
  through the cache of images already processed, ``image_cache.py``);
- ``image_token_counts(image_inputs)``: how many visual tokens each image becomes;
- ``image_span(n)``: token ids of a visual sequence of ``n`` tokens, with its delimiters (HACL's image-alone input);
- ``projector``: the module whose output is the projected visual tokens (NoiseBoost's hook point);
- ``vision_tower_name``: where the vision encoder sits (what freezing and LoRA's target pattern leave out);
- ``extra_inputs(input_ids)``: architecture-specific forward inputs (Qwen2-VL's token types);
- ``image_layouts(image_inputs)``: what each image's placeholder expands to, where more than a count;
- ``packed_attention_mask``, ``decoder_hidden_states``, ``lm_head``: for packed forwards and read-outs, where
  the family's mask or module layout differs (Gemma 3, InstructBLIP);
- ``instruction_inputs(image_inputs, prompts)``: image inputs that read the prompt (InstructBLIP's Q-Former).

Everything else is shared, and is what the rest of tether calls:

- ``encode(images, prompts, responses)`` → ``ModelBatch``: prompt through the chat template (or LLaVA's
  stage-1 ``plain`` template: the image alone), the image placeholder expanded to its visual tokens, the
  response (+ EOS) appended, padding on either side, and a ``response_mask`` that marks the response tokens;
- ``check_image_tokens(batch)``: the guard against "image features and image tokens do not match";
- ``response_logprobs(batch)``: per-token and summed log-probs of the response tokens (DPO, reward, PPO);
- ``visual_token_mask(input_ids)`` and ``projector_hook(fn)`` (NoiseBoost, attention analysis);
- ``visual_eos_representation(images)`` / ``text_eos_representation(texts)``: last-layer hidden state at an EOS
  appended to the visual sequence alone / the text alone (HACL's global representations);
- ``generate(images, prompts, settings)``: batched, left-padded generation with explicit decoding settings.

We build inputs ourselves from the tokenizer and image processor rather than through the HF processor
classes: some of those (Qwen2-VL's) refuse to load without torchvision even for images, and owning the
expansion lets us validate image-token spans and never truncate inside one. Families whose layout varies
per image (``llava_next.py``: anyres tiles and row newlines; ``internvl.py``: tiles; ``idefics3.py``: crop
grids with row/column tags; ``gemma3.py``: delimiters and bidirectional image blocks; ``expanded.py``)
describe each image by a *layout* (``image_layouts``), from which the placeholder's expansion and its
visual-token count follow; the tests compare the result with each family's HF processor.

Where NoiseBoost and HACL attach (each family's module says it for that family):

- NoiseBoost perturbs the output of ``projector``, always the module whose output *is* the sequence of
  vectors the LLM reads at the visual positions (after InternVL's and Idefics3's pixel shuffle, after
  InstructBLIP's Q-Former). Tokens added after the projector are not noised: LLaVA-NeXT/OneVision's learned
  row-newline embeddings, Qwen3-VL's DeepStack features.
- HACL's visual-only sequence is ``start_ids + image_span(layout) + EOS``: an image's whole expansion with its
  own delimiters. InstructBLIP's Q-Former reads the instruction (``instruction_inputs``), so its visual tokens
  depend on the prompt: HACL never shares the L_G row's visual prefix there, and the fast yes/no mode runs one
  forward per question instead of sharing a prefix.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from tether.core.errors import TetherError
from tether.models.batch import (
    IMAGES_PER_SAMPLE,
    ImageTokenMismatch,
    ModelBatch,
    ResponseLogProbs,
    at_last_token,
    image_groups,
    logprobs_from_logits,
    pad_rows,
    per_sample,
)
from tether.models.batch import model_image_inputs as model_image_inputs  # where eval imports it from
from tether.models.chat_templates import chat_prompt
from tether.models.generation import GenerationMixin, stop_token_ids
from tether.models.image_cache import ImageInputCache, concatenate, file_tag
from tether.models.unknown_tokens import UnknownTokenMonitor

TEMPLATES = ("chat", "plain")


class VisionLanguageModel(GenerationMixin):
    arch: str = ""
    image_token: str = ""
    # what stands for the image in a template that takes string content (LLaVA's training data: "<image>\n")
    image_prompt_text: str = "{image_token}\n"

    def __init__(
        self, model, tokenizer, image_processor, chat_template: str | None, path: str | Path | None = None
    ):
        self.model = model  # what forwards run through; may be replaced by a PEFT wrapper
        self.base_model = model  # the plain HF model, for looking up submodules (projector, vision tower)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.chat_template = chat_template or tokenizer.chat_template
        if not self.chat_template:
            raise TetherError(f"{path}: no chat template given (tether.models.load finds the checkpoint's)")
        self.path = str(path) if path is not None else None
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise TetherError(f"{path}: tokenizer has no image token {self.image_token!r}")
        if tokenizer.eos_token_id is None:
            raise TetherError(f"{path}: tokenizer has no EOS token")
        self.eos_token_id = tokenizer.eos_token_id
        self.stop_token_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))
        self.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_id
        )
        self.image_cache = ImageInputCache()
        self.unknown_tokens = UnknownTokenMonitor(tokenizer, self.path)
        # what the tokenizer puts before any text (BOS for Llama-family LLMs, nothing for Qwen2): sequences
        # built without the chat template (the image alone, a text alone) start with it too, like every
        # sequence the LLM was trained on
        bos = tokenizer.bos_token_id
        self.start_ids = [bos] if bos is not None and tokenizer("").input_ids[:1] == [bos] else []

    # ---- architecture-specific (overridden) -------------------------------------------------------------

    def process_images(self, images: Sequence) -> dict:
        raise NotImplementedError

    def image_token_counts(self, image_inputs: dict) -> list[int]:
        raise NotImplementedError

    def encode_images(self, images: Sequence) -> dict:
        """Image inputs for one entry of ``images`` per sample: an image, or a list of several (in the order
        of the prompt's placeholders). Several images per sample are recorded (``IMAGES_PER_SAMPLE``)."""
        groups = image_groups(images)
        image_inputs = self.image_inputs([image for group in groups for image in group])
        if all(len(group) == 1 for group in groups):
            return image_inputs
        return self.group_image_inputs(image_inputs, [len(group) for group in groups])

    def group_image_inputs(self, image_inputs: dict, per_sample: list[int]) -> dict:
        """Record how many images each sample has (families whose model needs it add their own key)."""
        return {**image_inputs, IMAGES_PER_SAMPLE: torch.tensor(per_sample)}

    def sample_layouts(self, image_inputs: dict) -> list[list]:
        """The layouts of each sample's images."""
        return per_sample(self.image_layouts(image_inputs), image_inputs)

    def image_layouts(self, image_inputs: dict) -> list:
        """What each image's placeholder expands to: its visual-token count, or (families whose expansion
        depends on more, such as Idefics3's crop grid) a description that ``_prompt_ids`` and ``image_span``
        accept."""
        return self.image_token_counts(image_inputs)

    def image_span(self, n_tokens: int) -> list[int]:
        return [self.image_token_id] * n_tokens

    @property
    def projector(self) -> torch.nn.Module:
        raise NotImplementedError

    # Where the family keeps its vision encoder: an attribute of the HF model's inner ``model`` (of the model
    # itself where there is none: InstructBLIP). LLaVA-style families call it ``vision_tower``; Qwen-style
    # ``visual``, Idefics3/SmolVLM and InstructBLIP ``vision_model``.
    vision_tower_name: str = "vision_tower"
    # whether the tower's last hidden states are one regular grid of patches per image (CLIP/SigLIP, after an
    # optional class token): what per-patch (dense) supervision of the tower needs
    vision_patch_grid: bool = True

    @property
    def vision_tower(self) -> torch.nn.Module:
        inner = getattr(self.base_model, "model", self.base_model)
        return getattr(inner, self.vision_tower_name)

    def lora_target_pattern(self, module_names: Sequence[str]) -> str:
        """PEFT ``target_modules``: the modules named ``module_names`` outside the vision tower (the tower is
        never adapted, so LoRA lands on the language model)."""
        names = "|".join(module_names)  # as given: a recipe may name them by regex
        return rf"^(?!.*{re.escape(self.vision_tower_name)}).*\.({names})$"

    def extra_inputs(self, input_ids: torch.Tensor) -> dict:
        return {}

    # image inputs that depend on each image's prompt (InstructBLIP's Q-Former reads the instruction)
    instruction_input_names: tuple[str, ...] = ()

    def instruction_inputs(self, image_inputs: dict, instructions: Sequence[str]) -> dict:
        """``image_inputs`` completed with what depends on each image's instruction; unchanged by default."""
        return image_inputs

    def decoder_hidden_states(self, **inputs) -> torch.Tensor:
        """Last-layer hidden states of the decoder (no LM head) for model ``inputs`` (ids, masks, positions,
        image inputs). PEFT injects LoRA layers in place, so adapters apply (and ``disable_adapter()`` turns
        them off) here too; ``self.model.model`` under PEFT would be the whole causal-LM."""
        return self.base_model.model(**inputs).last_hidden_state

    @property
    def lm_head(self) -> torch.nn.Module:
        return self.base_model.lm_head

    def continuation_position_ids(self, prefix_length: int, suffix_length: int, batch_size: int):
        """Position ids for tokens continuing a cached prefix (right-padded); None lets the model count on."""
        return None

    def packed_attention_mask(self, mask: torch.Tensor, input_ids: torch.Tensor, position_ids: torch.Tensor):
        """The attention mask a packed forward (shared-prefix DPO, HACL) passes to the model, from the block-
        causal additive ``mask`` ``[batch, 1, seq, seq]``; families whose own mask is more than causal (Gemma 3:
        bidirectional within an image, sliding-window layers) add what they add."""
        return mask

    def position_ids(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_inputs: dict
    ) -> torch.Tensor:
        """Rotary position ids the model would compute itself for this (2-D masked) batch.

        ``[batch, seq]`` here; Qwen2-VL returns its M-RoPE ``[3, batch, seq]``. Callers that pack several
        sequences into one row (shared-prefix DPO) start from these and shift a segment's positions.
        """
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    # ---- shared -------------------------------------------------------------------------------------------

    def image_inputs(self, images: Sequence) -> dict:
        """Pixel tensors (and grids) for ``images``; images opened from files are processed once and cached."""
        tags = [file_tag(image) for image in images]
        if not images or None in tags:
            return self.process_images(images)
        parts = []
        for image, tag in zip(images, tags):
            inputs = self.image_cache.get(tag)
            if inputs is None:
                inputs = self.process_images([image])
                self.image_cache.put(tag, inputs)
            parts.append(inputs)
        return concatenate(parts)

    # ---- properties -----------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hidden_size(self) -> int:
        return self.base_model.config.get_text_config().hidden_size

    def describe(self) -> dict:
        n_params = sum(p.numel() for p in self.model.parameters())
        return {
            "path": self.path,
            "architecture": self.arch,
            "model class": type(self.model).__name__,
            "parameters": f"{n_params:,}",
            "dtype": str(next(self.model.parameters()).dtype),
            "hidden size": self.hidden_size,
            "vocabulary": len(self.tokenizer),
            "image token": f"{self.image_token} ({self.image_token_id})",
            "eos token": f"{self.tokenizer.eos_token} ({self.eos_token_id})",
        }

    # ---- text building ---------------------------------------------------------------------------------

    def prompt_text(self, question: str, with_image: bool = True, n_images: int = 1) -> str:
        """The user turn through the checkpoint's chat template, ending where the assistant answers."""
        image_text = self.image_prompt_text.format(image_token=self.image_token) if with_image else None
        return chat_prompt(self.tokenizer, self.chat_template, question, image_text, n_images)

    def _prompt_ids(self, question: str, n_image_tokens: int | None) -> list[int]:
        text = self.prompt_text(question, with_image=n_image_tokens is not None)
        ids = self.tokenizer(text).input_ids
        self.unknown_tokens.count(ids, text)
        if n_image_tokens is None:
            return ids
        positions = [i for i, t in enumerate(ids) if t == self.image_token_id]
        if len(positions) != 1:
            raise TetherError(
                f"chat template produced {len(positions)} image tokens for one image; expected 1"
            )
        i = positions[0]
        return ids[:i] + [self.image_token_id] * n_image_tokens + ids[i + 1 :]

    def _multi_image_prompt_ids(self, question: str, layouts: list) -> list[int]:
        """A prompt with several images: each of the template's image tokens expanded in order."""
        ids = self.tokenizer(self.prompt_text(question, n_images=len(layouts))).input_ids
        positions = [i for i, t in enumerate(ids) if t == self.image_token_id]
        if len(positions) != len(layouts):
            raise TetherError(
                f"chat template produced {len(positions)} image tokens for {len(layouts)} images"
            )
        out, start = [], 0
        for position, n_tokens in zip(positions, layouts):
            out += ids[start:position] + [self.image_token_id] * n_tokens
            start = position + 1
        return out + ids[start:]

    def _sample_prompt_ids(self, question: str, layouts: list | None) -> list[int]:
        if layouts is None:
            return self._prompt_ids(question, None)
        if len(layouts) == 1:
            return self._prompt_ids(question, layouts[0])
        return self._multi_image_prompt_ids(question, layouts)

    def _plain_prompt_ids(self, n_image_tokens: int | None) -> list[int]:
        """LLaVA's stage-1 ``plain`` template: the image alone, then the response; the question is dropped."""
        if n_image_tokens is None:
            raise TetherError("the plain template needs an image in every sample")
        return self.start_ids + self.image_span(n_image_tokens)

    def _response_ids(self, response: str, add_eos: bool) -> list[int]:
        ids = self.tokenizer(response, add_special_tokens=False).input_ids
        self.unknown_tokens.count(ids, response, add_special_tokens=False)
        return ids + [self.eos_token_id] if add_eos else ids

    # ---- batching --------------------------------------------------------------------------------------

    def encode(
        self,
        images: Sequence | None,
        prompts: Sequence[str],
        responses: Sequence[str] | None = None,
        *,
        padding_side: str = "right",
        add_eos: bool = True,
        max_length: int | None = None,
        template: str = "chat",
    ) -> ModelBatch:
        """Tokenize (image, prompt[, response]) samples into one padded batch.

        ``template``: ``"chat"`` (the checkpoint's chat template) or ``"plain"`` (LLaVA's stage-1 alignment
        format: the image alone, then the response; the image-alone sequence of HACL is then a prefix of the
        row). With ``max_length``, only response tokens are cut; a prompt (with its visual tokens) that does
        not fit is an error, never silently truncated inside the image span.
        """
        if template not in TEMPLATES:
            raise TetherError(f"template must be one of {', '.join(TEMPLATES)}, not {template!r}")
        if images is not None and len(images) != len(prompts):
            raise TetherError(f"{len(images)} images for {len(prompts)} prompts")
        image_inputs = {}
        if images is not None:
            instructions = [prompt for prompt, group in zip(prompts, image_groups(images)) for _ in group]
            image_inputs = self.instruction_inputs(self.encode_images(images), instructions)
        layouts = self.sample_layouts(image_inputs) if images is not None else [None] * len(prompts)
        rows, masks = [], []
        for i, prompt in enumerate(prompts):
            if template == "plain":
                if layouts[i] is not None and len(layouts[i]) != 1:
                    raise TetherError("the plain template takes one image per sample")
                prompt_ids = self._plain_prompt_ids(None if layouts[i] is None else layouts[i][0])
            else:
                prompt_ids = self._sample_prompt_ids(prompt, layouts[i])
            response_ids = self._response_ids(responses[i], add_eos) if responses is not None else []
            if max_length is not None:
                if len(prompt_ids) >= max_length:
                    raise TetherError(
                        f"sample {i}: prompt with its visual tokens is {len(prompt_ids)} tokens, max_length is "
                        f"{max_length}; raise max_length (prompts are never truncated inside the image span)"
                    )
                response_ids = response_ids[: max_length - len(prompt_ids)]
            rows.append(prompt_ids + response_ids)
            masks.append([False] * len(prompt_ids) + [True] * len(response_ids))
        self.unknown_tokens.check()
        input_ids, attention_mask, response_mask = pad_rows(rows, masks, self.pad_token_id, padding_side)
        return ModelBatch(
            input_ids, attention_mask, response_mask, image_inputs, self.extra_inputs(input_ids)
        )

    def select_rows(self, batch: ModelBatch, images: Sequence, rows: Sequence[int]) -> ModelBatch:
        """The ``rows`` of a right-padded ``batch`` of ``images`` as a batch of its own, trimmed to its longest row."""
        rows = list(rows)
        if not bool(batch.attention_mask[:, 0].all()):
            raise ValueError("select_rows needs a right-padded batch")
        width = int(batch.attention_mask[rows].sum(dim=1).max())
        input_ids = batch.input_ids[rows, :width]
        image_inputs = self.encode_images([images[i] for i in rows])
        if self.instruction_input_names:  # the selected samples' images' rows
            image_rows = per_sample(
                list(range(len(self.image_layouts(batch.image_inputs)))), batch.image_inputs
            )
            index = torch.tensor([r for i in rows for r in image_rows[i]])
            image_inputs.update({k: batch.image_inputs[k][index] for k in self.instruction_input_names})
        return ModelBatch(
            input_ids,
            batch.attention_mask[rows, :width],
            batch.response_mask[rows, :width],
            image_inputs,
            self.extra_inputs(input_ids),
        )

    def encode_text(
        self, texts: Sequence[str], *, add_eos: bool = True, padding_side: str = "right"
    ) -> ModelBatch:
        """Text-only sequences (LM pretraining, HACL text representations); every text token counts as response.

        Each row starts like any tokenized text (BOS where the tokenizer adds one; it is not a response token).
        """
        start = self.start_ids
        rows = [start + self._response_ids(t, add_eos) for t in texts]
        masks = [[False] * len(start) + [True] * (len(r) - len(start)) for r in rows]
        self.unknown_tokens.check()
        input_ids, attention_mask, response_mask = pad_rows(rows, masks, self.pad_token_id, padding_side)
        return ModelBatch(input_ids, attention_mask, response_mask, {}, self.extra_inputs(input_ids))

    # ---- the guard --------------------------------------------------------------------------------------

    def visual_token_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        return input_ids == self.image_token_id

    def sample_token_counts(self, image_inputs: dict) -> list[list[int]]:
        """The visual-token counts of each sample's images."""
        return per_sample(self.image_token_counts(image_inputs), image_inputs)

    def check_image_tokens(self, batch: ModelBatch) -> None:
        """Raise before the forward if any sample's image-token count differs from its image's features."""
        found = self.visual_token_mask(batch.input_ids).sum(dim=1).tolist()
        if not batch.image_inputs:
            if any(found):
                raise ImageTokenMismatch(f"batch has image tokens {found} but no images")
            return
        expected = [sum(counts) for counts in self.sample_token_counts(batch.image_inputs)]
        if len(expected) != len(found):
            raise ImageTokenMismatch(f"{len(expected)} images for a batch of {len(found)} samples")
        for i, (n_found, n_expected) in enumerate(zip(found, expected)):
            if n_found != n_expected:
                raise ImageTokenMismatch(
                    f"sample {i}: {n_found} image tokens in the text but its image gives {n_expected} visual "
                    "features; was the sequence truncated inside the image span?"
                )

    # ---- forwards --------------------------------------------------------------------------------------

    def forward(self, batch: ModelBatch, **kwargs):
        self.check_image_tokens(batch)
        return self.model(**batch.to(self.device).model_inputs(), **kwargs)

    def response_logprobs(self, batch: ModelBatch, return_logits: bool = False, **kwargs) -> ResponseLogProbs:
        """Log-probs of response tokens given everything before them; prompt, image and padding are masked."""
        output = self.forward(batch, **kwargs)
        return logprobs_from_logits(
            output.logits,
            batch.input_ids.to(output.logits.device),
            batch.response_mask.to(output.logits.device),
            return_logits,
        )

    def last_hidden_states(self, batch: ModelBatch) -> torch.Tensor:
        """Last-layer hidden states ``[batch, seq, hidden]`` without the LM head (reward and value heads)."""
        self.check_image_tokens(batch)
        return self.decoder_hidden_states(**batch.to(self.device).model_inputs())

    def visual_only_batch(self, images: Sequence) -> ModelBatch:
        """Each image's visual tokens alone (with the architecture's delimiters, after BOS where the tokenizer
        adds one) followed by EOS."""
        image_inputs = self.instruction_inputs(self.image_inputs(images), [""] * len(images))
        start = self.start_ids
        rows = [start + self.image_span(n) + [self.eos_token_id] for n in self.image_layouts(image_inputs)]
        masks = [[False] * len(r) for r in rows]
        input_ids, attention_mask, response_mask = pad_rows(rows, masks, self.pad_token_id, "right")
        return ModelBatch(
            input_ids, attention_mask, response_mask, image_inputs, self.extra_inputs(input_ids)
        )

    def eos_representation(self, batch: ModelBatch) -> torch.Tensor:
        """Hidden state at each row's last token (the appended EOS) of a right-padded batch: [batch, hidden]."""
        return at_last_token(self.last_hidden_states(batch), batch.attention_mask)

    def visual_eos_representation(self, images: Sequence) -> torch.Tensor:
        """Last-layer hidden state at an EOS appended to each image's visual tokens alone: [batch, hidden]."""
        return self.eos_representation(self.visual_only_batch(images))

    def text_eos_representation(self, texts: Sequence[str]) -> torch.Tensor:
        """Last-layer hidden state at an EOS appended to each text alone: [batch, hidden]."""
        return self.eos_representation(self.encode_text(texts, add_eos=True))

    @contextlib.contextmanager
    def projector_hook(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        """Replace the projector's output by ``fn(output)`` inside the ``with`` block."""
        handle = self.projector.register_forward_hook(lambda module, args, output: fn(output))
        try:
            yield
        finally:
            handle.remove()

    def processor_kwargs(self) -> dict:
        """What the family's transformers processor needs besides its tokenizer and image processor, as it
        reads them from ``processor_config.json`` (LLaVA's patch size and feature strategy)."""
        return {}

    def save_pretrained(self, out_dir) -> None:
        """Save model (safetensors), tokenizer, image processor, processor config and chat template as a
        folder that ``tether.models.load`` and transformers' ``AutoProcessor`` both load."""
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(out_dir)
        self.image_processor.save_pretrained(out_dir)
        # the template lives in one home only (the tokenizer may have written its own there)
        (out_dir / "chat_template.jinja").write_text(self.chat_template)
        processor_class = PROCESSOR_MAPPING_NAMES.get(self.base_model.config.model_type)
        if processor_class:
            processor_config = {"processor_class": processor_class, **self.processor_kwargs()}
            (out_dir / "processor_config.json").write_text(json.dumps(processor_config, indent=2) + "\n")
