"""Generation for ``VisionLanguageModel``: batched, left-padded, with explicit decoding settings."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tether.models.decoding import DecodingSettings


class GenerationMixin:
    """``generate``, ``generate_with_eos`` and ``generate_ids`` of a ``VisionLanguageModel`` (which brings
    ``encode``, ``check_image_tokens``, ``model``, ``tokenizer``, ``device``, ``pad_token_id`` and
    ``stop_token_ids``)."""

    @torch.no_grad()
    def generate(
        self,
        images: Sequence | None,
        prompts: Sequence[str],
        settings: DecodingSettings | None = None,
        **kwargs,
    ) -> list[str]:
        """Batched generation; left padding so every row's answer starts right after its prompt."""
        return self.generate_with_eos(images, prompts, settings, **kwargs)[0]

    @torch.no_grad()
    def generate_with_eos(
        self,
        images: Sequence | None,
        prompts: Sequence[str],
        settings: DecodingSettings | None = None,
        **kwargs,
    ) -> tuple[list[str], list[bool]]:
        """Like ``generate``, also saying for each row whether it ended with EOS (False: cut by the budget)."""
        new_tokens = self.generate_ids(images, prompts, settings, **kwargs)[0]
        texts = [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
        stopped = torch.isin(new_tokens, torch.tensor(self.stop_token_ids, device=new_tokens.device))
        return texts, stopped.any(dim=1).tolist()

    @torch.no_grad()
    def generate_ids(
        self,
        images: Sequence | None,
        prompts: Sequence[str],
        settings: DecodingSettings | None = None,
        output_logits: bool = False,
        batch=None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The generated token ids ``[batch, new]`` (EOS, then padding, after a finished row), the raw
        next-token logits at each step ``[batch, new, vocab]`` when ``output_logits`` (else None), and the
        prompt lengths without padding ``[batch]``. A left-padded ``batch`` (a ``ModelBatch``) built by the
        caller (checked already: ``tether.decoding``'s contrast rows) replaces the encoding of ``images`` and
        ``prompts``."""
        settings = settings or DecodingSettings()
        if batch is None:
            batch = self.encode(images, prompts, padding_side="left")
            self.check_image_tokens(batch)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        was_training = self.model.training
        self.model.eval()
        try:
            output = self.model.generate(
                **batch.to(self.device).model_inputs(),
                **settings.generate_kwargs(),
                eos_token_id=self.stop_token_ids,
                pad_token_id=self.pad_token_id,
                output_logits=output_logits,
                return_dict_in_generate=True,
                **kwargs,
            )
        finally:
            self.model.train(was_training)
        new_tokens = output.sequences[:, batch.input_ids.shape[1] :]
        logits = torch.stack(output.logits, dim=1) if output_logits else None
        return new_tokens, logits, batch.attention_mask.sum(dim=1)


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """The tokenizer's EOS and every EOS id of the checkpoint's ``generation_config.json``: transformers'
    ``generate`` stops at all of them (Qwen2-VL's lists ``<|im_end|>`` and ``<|endoftext|>``)."""
    ids = [tokenizer.eos_token_id]
    configured = getattr(generation_config, "eos_token_id", None)
    for token_id in configured if isinstance(configured, list) else [configured]:
        if token_id is not None and token_id not in ids:
            ids.append(token_id)
    return ids
