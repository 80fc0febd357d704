"""``load(path)``: a local Hugging Face checkpoint folder → a ``VisionLanguageModel`` adapter.

Safetensors only; ``trust_remote_code`` only when asked. Real checkpoints and tether's tiny ones take this
same path.
"""

import json
import logging
from pathlib import Path

from tether.core.errors import TetherError
from tether.models.adapter import VisionLanguageModel
from tether.models.chat_templates import resolve_chat_template
from tether.models.gemma3 import Gemma3Adapter
from tether.models.idefics3 import Idefics3Adapter, SmolVLMAdapter
from tether.models.instructblip import InstructBlipAdapter
from tether.models.internvl import InternVLAdapter
from tether.models.llava import LlavaAdapter
from tether.models.llava_next import LlavaNextAdapter, LlavaOnevisionAdapter
from tether.models.placement import from_pretrained_options, placement_record
from tether.models.qwen2_vl import Qwen2VLAdapter
from tether.models.qwen3_vl import LlavaOnevision15Adapter, Qwen3VLAdapter

ADAPTERS: dict[str, type[VisionLanguageModel]] = {
    "llava": LlavaAdapter,
    "qwen2_vl": Qwen2VLAdapter,
    "qwen2_5_vl": Qwen2VLAdapter,
    "llava_next": LlavaNextAdapter,
    "llava_onevision": LlavaOnevisionAdapter,
    "llava_onevision1_5": LlavaOnevision15Adapter,
    "qwen3_vl": Qwen3VLAdapter,
    "internvl": InternVLAdapter,
    "gemma3": Gemma3Adapter,
    "idefics3": Idefics3Adapter,
    "smolvlm": SmolVLMAdapter,
    "instructblip": InstructBlipAdapter,
}

logger = logging.getLogger(__name__)


def checkpoint_type(path) -> tuple[str, dict]:
    """``(model_type, config)`` of a local checkpoint folder, with clear errors for what is not one."""
    path = Path(path)
    if not path.is_dir():
        raise TetherError(
            f"{path}: not a local checkpoint folder (tether loads local folders; download first)"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise TetherError(f"{path}: no config.json; is this a Hugging Face checkpoint folder?")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise TetherError(f"{config_file}: invalid JSON ({e.msg}, line {e.lineno})") from None
    return config.get("model_type", ""), config


def load(
    path,
    *,
    trust_remote_code: bool = False,
    dtype: str = "float32",
    device: str | None = None,
    attn_implementation: str | None = None,
    adapter: str | None = None,
    chat_template: str | None = None,
) -> VisionLanguageModel:
    """Load model, tokenizer, image processor and chat template from ``path``.

    ``device``, ``dtype``, ``attn_implementation`` and ``chat_template`` are those of
    ``tether.models.placement`` (a ``ModelLoadSettings`` passes them as ``**settings.load_options()``).
    ``adapter`` forces an adapter by name (for architectures registered under another ``model_type``).
    ``chat_template``: a template file or a documented format's name (``--chat-template``) used instead of
    the checkpoint's own (``tether.models.chat_templates``).
    ``attn_implementation`` (``sdpa``, ``eager``, ``flash_attention_2``) is passed to transformers; None
    keeps its default (sdpa where the family supports it).
    """
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

    path = Path(path)
    model_type, config = checkpoint_type(path)
    name = adapter or model_type
    if name not in ADAPTERS:
        raise TetherError(
            f"{path}: architecture '{model_type}' is not supported; supported: {', '.join(sorted(ADAPTERS))}; "
            "a checkpoint that ships its own code (auto_map) can be tried with --trust-remote-code and "
            "--adapter NAME, naming the supported family whose layout and module names it follows"
        )
    if config.get("auto_map") and not trust_remote_code:
        raise TetherError(
            f"{path}: this checkpoint ships its own code (auto_map); pass --trust-remote-code "
            "only if you trust its author"
        )
    _require_safetensors(path)
    placement = from_pretrained_options(device, dtype, attn_implementation)
    template = resolve_chat_template(path, chat_template)  # before the weights: a missing one fails fast

    model = AutoModelForImageTextToText.from_pretrained(
        path, use_safetensors=True, trust_remote_code=trust_remote_code, **placement
    )
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    image_processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    logger.debug("%s loaded: %s", path, placement_record(model))
    return ADAPTERS[name](model, tokenizer, image_processor, template, path)


def _require_safetensors(path: Path) -> None:
    if any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file():
        return
    pickled = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
    if pickled:
        raise TetherError(
            f"{path}: only pickle weights found ({', '.join(pickled)}); tether loads safetensors "
            "only (pickle can run code). Convert them to safetensors first."
        )
    raise TetherError(f"{path}: no *.safetensors weights found")
