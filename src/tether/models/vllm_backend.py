"""Generation through vLLM (optional: ``pip install tether[vllm]``), for evaluation and the pair pipeline.

``VllmGenerator`` has the one method the runner and ``tether.data.pairs`` call on a model,
``generate(images, prompts, settings) -> list[str]``, so either backend writes the same files. Prompts are
built with the checkpoint's own chat template through the same function the HF adapters use
(``tether.models.chat_templates.chat_prompt``); ``DecodingSettings`` map to ``vllm.SamplingParams``.
What vLLM does not do the HF way is refused rather than approximated: beam search, and the ``fast``
yes/no mode (it needs next-token logits from a forward pass).

``generator(path, backend)`` picks the backend by name: ``hf`` (``tether.models.load``) or ``vllm``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tether.core.errors import TetherError
from tether.models.chat_templates import chat_prompt, resolve_chat_template
from tether.models.decoding import DecodingSettings
from tether.models.generation import stop_token_ids
from tether.models.loading import ADAPTERS, _require_safetensors, checkpoint_type, load
from tether.models.placement import ModelLoadSettings

BACKENDS = ("hf", "vllm")
VLLM_ARCHITECTURES = ("llava", "qwen2_vl", "qwen2_5_vl")  # the architectures tether has adapters for
INSTALL_HINT = "pip install tether[vllm]"


def import_vllm():
    """The ``vllm`` module, or a one-line TetherError saying how to install it."""
    try:
        import vllm
    except ImportError as e:
        raise TetherError(f"the vllm backend needs vLLM ({e}); install it with `{INSTALL_HINT}`") from None
    return vllm


def generator(path, backend: str = "hf", load_settings: ModelLoadSettings | None = None, **options):
    """A model with ``generate(images, prompts, settings)`` for ``backend`` ('hf' or 'vllm').

    ``load_settings`` (device, dtype, attention) apply in full to ``hf``; vLLM places the model on its GPUs
    and picks its attention kernels itself, so only the dtype carries over (vLLM's own default: auto)."""
    if backend == "hf":
        return load(path, **(load_settings.load_options() if load_settings else {}), **options)
    if backend == "vllm":
        if load_settings is not None:
            if load_settings.device not in (None, "cuda", "auto") or load_settings.attn_implementation:
                raise TetherError(
                    "--backend vllm places the model on its GPUs and picks its attention kernel itself; "
                    "--device and --attn-implementation are for --backend hf"
                )
            options = {"dtype": load_settings.dtype, **options}
            if load_settings.chat_template is not None:
                options["chat_template"] = load_settings.chat_template
        return VllmGenerator(path, **options)
    raise TetherError(f"unknown generation backend '{backend}'; choose from {', '.join(BACKENDS)}")


def sampling_params(vllm, settings: DecodingSettings, stop_token_ids: list[int]):
    """``vllm.SamplingParams`` equal in meaning to ``settings.generate_kwargs()`` for ``model.generate``."""
    if settings.num_beams != 1:
        raise TetherError("the vllm backend does not do beam search; use --backend hf for num_beams > 1")
    sampling = dict(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or -1)
    if not settings.do_sample:
        sampling = dict(temperature=0.0, top_p=1.0, top_k=-1)  # vLLM's greedy decoding
    return vllm.SamplingParams(
        max_tokens=settings.max_new_tokens,
        repetition_penalty=settings.repetition_penalty,
        seed=settings.seed,
        stop_token_ids=stop_token_ids,  # the same stop ids as the HF path
        skip_special_tokens=True,
        **sampling,
    )


class VllmGenerator:
    """A local checkpoint served by ``vllm.LLM`` behind the adapters' ``generate`` signature."""

    def __init__(
        self,
        path,
        *,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        trust_remote_code: bool = False,
        chat_template: str | None = None,
    ):
        vllm = import_vllm()
        from transformers import AutoTokenizer, GenerationConfig

        path = Path(path)
        model_type, config = checkpoint_type(path)
        if model_type not in VLLM_ARCHITECTURES:
            raise TetherError(
                f"{path}: architecture '{model_type}' is not supported by the vllm backend; "
                f"supported: {', '.join(VLLM_ARCHITECTURES)}"
            )
        if config.get("auto_map") and not trust_remote_code:
            raise TetherError(
                f"{path}: this checkpoint ships its own code (auto_map); pass --trust-remote-code"
            )
        _require_safetensors(path)  # vLLM would also read pickle weights; tether never does
        self.path = str(path)
        self.vllm = vllm
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.chat_template = resolve_chat_template(path, chat_template)
        adapter = ADAPTERS[model_type]
        image_token = getattr(self.tokenizer, "image_token", None) or adapter.image_token or "<image>"
        self.image_text = adapter.image_prompt_text.format(image_token=image_token)
        if self.tokenizer.eos_token_id is None:
            raise TetherError(f"{path}: tokenizer has no EOS token")
        generation_config = (
            GenerationConfig.from_pretrained(path) if (path / "generation_config.json").is_file() else None
        )
        self.stop_token_ids = stop_token_ids(self.tokenizer, generation_config)
        engine = dict(
            model=self.path,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            trust_remote_code=trust_remote_code,
            limit_mm_per_prompt={"image": 1},  # tether's items carry one image each
        )
        if max_model_len is not None:
            engine["max_model_len"] = max_model_len
        self.llm = vllm.LLM(**engine)

    def prompt_text(self, question: str) -> str:
        return chat_prompt(self.tokenizer, self.chat_template, question, self.image_text)

    def generate(self, images, prompts, settings: DecodingSettings | None = None) -> list[str]:
        """One answer per (image, prompt), stripped like the HF adapters' answers."""
        if len(images) != len(prompts):
            raise TetherError(f"{len(images)} images for {len(prompts)} prompts")
        settings = settings or DecodingSettings()
        stop = self.stop_token_ids
        # one seed per request: identical prompts in a batch (the pair pipeline's samples) must differ,
        # as the rows of one seeded HF batch do
        params = [sampling_params(self.vllm, _request_seed(settings, i), stop) for i in range(len(prompts))]
        requests = [
            {"prompt": self.prompt_text(prompt), "multi_modal_data": {"image": image}}
            for image, prompt in zip(images, prompts)
        ]
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        return [output.outputs[0].text.strip() for output in outputs]


def _request_seed(settings: DecodingSettings, index: int) -> DecodingSettings:
    if settings.seed is None or not settings.do_sample:
        return settings
    return replace(settings, seed=settings.seed + index)
