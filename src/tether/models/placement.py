"""Where and how a checkpoint is loaded: device, dtype and attention implementation, in one place.

Every command that loads a model takes the same three options (``add_model_load_options``) and reads them
back as one ``ModelLoadSettings`` (``ModelLoadSettings.from_args``); training recipes carry the same fields
in their ``model:`` section (``tether.methods.settings.ModelSettings`` extends this class), so
``--set model.dtype=bfloat16`` works for every method. ``tether.models.load`` takes them as keywords, and
``placement_record`` states where a loaded model really is, for ``results.json`` and ``run.json``.

Devices: ``cpu``, ``cuda``, ``cuda:N``, or ``auto`` (Hugging Face ``device_map="auto"``: accelerate spreads
the layers over the visible GPUs, then CPU). Left unset, the model goes to ``cuda`` when a GPU is visible
and to ``cpu`` otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
from dataclasses import dataclass

from tether.core.errors import TetherError
from tether.models.chat_templates import DOCUMENTED_FORMATS

DTYPES = ("float32", "bfloat16", "float16", "auto")  # auto: the dtype the checkpoint was saved in
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
_DEVICE = re.compile(r"cpu|cuda(:\d+)?|auto")


@dataclass
class ModelLoadSettings:
    device: str | None = None  # cpu, cuda, cuda:N, auto (device_map); None: cuda if visible, else cpu
    dtype: str = "float32"  # float32, bfloat16, float16, auto (the checkpoint's own)
    attn_implementation: str | None = None  # sdpa, eager, flash_attention_2; None: transformers' default
    chat_template: str | None = None  # a template file or a documented format's name; None: the checkpoint's

    @classmethod
    def from_args(cls, args: argparse.Namespace, default_dtype: str = "float32") -> ModelLoadSettings:
        """The options of ``add_model_load_options``; ``default_dtype`` when ``--dtype`` was not given."""
        return cls(
            device=args.device,
            dtype=args.dtype or default_dtype,
            attn_implementation=getattr(args, "attn_implementation", None),
            chat_template=getattr(args, "chat_template", None),
        )

    def load_options(self) -> dict:
        """Keywords for ``tether.models.load`` (the load settings only, none of a subclass's fields)."""
        options = {"device": self.device, "dtype": self.dtype, "attn_implementation": self.attn_implementation}
        if self.chat_template is not None:  # only when chosen: fingerprints without one stay as they were
            options["chat_template"] = self.chat_template
        return options


def check_load_settings(device: str | None, dtype: str, attn_implementation: str | None) -> tuple:
    """``(device, dtype, attn_implementation)`` validated and normalised, with errors that say what to use."""
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPES:
        raise TetherError(f"unknown dtype '{dtype}'; choose from {', '.join(DTYPES)}")
    if device is not None and not _DEVICE.fullmatch(device):
        raise TetherError(f"unknown device '{device}'; use cpu, cuda, cuda:N or auto")
    if attn_implementation is not None and attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise TetherError(
            f"unknown attention implementation '{attn_implementation}'; "
            f"choose from {', '.join(ATTN_IMPLEMENTATIONS)}"
        )
    import torch

    resolved = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if resolved.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TetherError(f"--device {resolved}: no CUDA GPU is visible (use --device cpu)")
        index = int(resolved.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise TetherError(f"--device {resolved}: only {torch.cuda.device_count()} CUDA GPU(s) visible")
    if attn_implementation == "flash_attention_2":
        if resolved == "cpu":
            raise TetherError("flash_attention_2 runs on CUDA GPUs only; use sdpa or eager on cpu")
        if importlib.util.find_spec("flash_attn") is None:
            raise TetherError("flash_attention_2 needs the flash-attn package (pip install flash-attn)")
        if dtype == "float32":
            raise TetherError("flash_attention_2 needs --dtype bfloat16 or float16")
    return resolved, dtype, attn_implementation


def from_pretrained_options(device: str | None, dtype: str, attn_implementation: str | None) -> dict:
    """Keywords for ``from_pretrained``: the weights load straight onto the asked device (a 7B model in bf16
    never exists as fp32 copy on the CPU first); ``cpu`` keeps transformers' plain load."""
    device, dtype, attn_implementation = check_load_settings(device, dtype, attn_implementation)
    options: dict = {"dtype": dtype}
    if device != "cpu":
        options["device_map"] = device
    if attn_implementation is not None:
        options["attn_implementation"] = attn_implementation
    return options


def placement_record(model) -> dict:
    """Where a loaded model is, read from the model itself: device(s), dtype, attention implementation."""
    device_map = getattr(model, "hf_device_map", None)
    devices = sorted({str(d) for d in device_map.values()}) if device_map else []
    if len(devices) > 1:
        device = "auto: " + ", ".join(devices)
    else:
        device = str(next(model.parameters()).device)
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return {
        "device": device,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "attn_implementation": getattr(config, "_attn_implementation", None),
    }


def add_model_load_options(parser: argparse.ArgumentParser, attention: bool = True) -> None:
    """``--chat-template``, ``--device``, ``--dtype`` and ``--attn-implementation`` on a command that loads a
    model (without the last for a command that fixes the attention kernel itself)."""
    add_chat_template_option(parser)
    group = parser.add_argument_group("model placement")
    group.add_argument(
        "--device",
        help="cpu, cuda, cuda:N, or auto (device_map='auto': layers spread over the GPUs); "
        "default: cuda when a GPU is visible, else cpu",
    )
    group.add_argument(
        "--dtype",
        choices=DTYPES + tuple(DTYPE_ALIASES),
        help="weight dtype (default float32, or auto under --backend vllm; auto: as the checkpoint was saved)",
    )
    if not attention:
        return
    group.add_argument(
        "--attn-implementation",
        choices=ATTN_IMPLEMENTATIONS,
        help="attention kernel (default: transformers' choice, sdpa where supported)",
    )


def add_chat_template_option(parser: argparse.ArgumentParser) -> None:
    """``--chat-template FILE|FORMAT``: the template used instead of the checkpoint's own."""
    parser.add_argument(
        "--chat-template",
        metavar="FILE|FORMAT",
        help="chat template to use instead of the checkpoint's: a Jinja file (or a chat_template.json), or "
        f"a family's documented prompt format by name ({', '.join(sorted(DOCUMENTED_FORMATS))}); needed "
        "for checkpoints that ship none",
    )
