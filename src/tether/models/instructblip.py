"""InstructBLIP (decoder-only LLMs: Vicuna, OPT): ViT → Q-Former (``num_query_tokens`` learned queries that
cross-attend to the image and read the instruction) → ``language_projection`` → the LLM, which finds the
query tokens at ``num_query_tokens`` ``<image>`` tokens in front of the prompt (before its BOS, as the HF
processor writes them).

The Q-Former reads each image's instruction, tokenized with its own (BERT) tokenizer from the checkpoint's
``qformer_tokenizer/`` folder: those ``qformer_input_ids`` are image inputs that depend on the prompt
(``instruction_inputs``). The instruction is the prompt as the LLM reads it, without image tokens; HACL's
visual-only sequence gives the Q-Former the empty prompt. NoiseBoost's hook is ``language_projection``, whose
output is exactly the query tokens the LLM reads. The model class keeps the LLM as a whole causal LM
(``language_model``), so hidden states are read by embedding the inputs here and running its decoder.
"""

from pathlib import Path

import torch

from tether.core.errors import TetherError
from tether.models.adapter import VisionLanguageModel
from tether.models.batch import model_image_inputs

QFORMER_KEYS = ("qformer_input_ids", "qformer_attention_mask")
ONE_IMAGE = (
    "InstructBLIP reads one image per prompt: its processor puts one image's query tokens in front of the "
    "prompt, and the model was trained that way"
)


class InstructBlipAdapter(VisionLanguageModel):
    arch = "instructblip"
    vision_tower_name = "vision_model"
    vision_patch_grid = False  # read through the Q-Former's queries
    instruction_input_names = QFORMER_KEYS

    def __init__(self, model, tokenizer, image_processor, chat_template, path=None, qformer_tokenizer=None):
        from transformers import AutoTokenizer

        if not model.config.use_decoder_only_language_model:
            raise TetherError(f"{path}: InstructBLIP with an encoder-decoder LLM (Flan-T5) is not supported")
        self.image_token = getattr(tokenizer, "image_token", None) or "<image>"
        super().__init__(model, tokenizer, image_processor, chat_template, path)
        folder = Path(path or "") / "qformer_tokenizer"
        if qformer_tokenizer is None and not folder.is_dir():
            raise TetherError(f"{path}: InstructBLIP checkpoint without its qformer_tokenizer/ folder")
        self.qformer_tokenizer = qformer_tokenizer or AutoTokenizer.from_pretrained(folder)

    def process_images(self, images) -> dict:
        pixel_values = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixel_values.to(self.base_model.dtype)}

    def image_token_counts(self, image_inputs: dict) -> list[int]:
        return [self.base_model.config.num_query_tokens] * image_inputs["pixel_values"].shape[0]

    def instruction_inputs(self, image_inputs: dict, instructions) -> dict:
        texts = [self.prompt_text(text, with_image=False) for text in instructions]
        encoded = self.qformer_tokenizer(texts, padding=True, return_tensors="pt")
        return {
            **image_inputs,
            "qformer_input_ids": encoded["input_ids"],
            "qformer_attention_mask": encoded["attention_mask"],
        }

    def _prompt_ids(self, question: str, n_image_tokens) -> list[int]:
        ids = self.tokenizer(self.prompt_text(question, with_image=False)).input_ids
        return ids if n_image_tokens is None else [self.image_token_id] * n_image_tokens + ids

    def _multi_image_prompt_ids(self, question: str, layouts: list) -> list[int]:
        raise TetherError(ONE_IMAGE)

    def decoder_hidden_states(self, *, input_ids, attention_mask, position_ids=None, **image_inputs):
        base = self.base_model
        embeds = base.get_input_embeddings()(input_ids)
        if image_inputs.get("pixel_values") is not None:
            features = base.get_image_features(
                **model_image_inputs(image_inputs), return_dict=True
            ).pooler_output
            mask = (input_ids == self.image_token_id)[..., None].expand_as(embeds)
            embeds = embeds.masked_scatter(mask, features.to(embeds.dtype))
        decoder = base.language_model.model
        return decoder(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids
        ).last_hidden_state

    @property
    def lm_head(self) -> torch.nn.Module:
        return self.base_model.language_model.lm_head

    @property
    def projector(self) -> torch.nn.Module:
        return self.base_model.language_projection

    def save_pretrained(self, out_dir) -> None:
        super().save_pretrained(out_dir)
        self.qformer_tokenizer.save_pretrained(Path(out_dir) / "qformer_tokenizer")
