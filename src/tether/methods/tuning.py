"""Which parameters train: freeze toggles per part, and optional LoRA on the language model."""

import logging

from tether.core.errors import TetherError
from tether.methods.settings import ModelSettings
from tether.models import VisionLanguageModel, load
from tether.models.placement import check_load_settings

logger = logging.getLogger(__name__)


def load_for_training(settings: ModelSettings) -> VisionLanguageModel:
    vlm = load(settings.path, trust_remote_code=settings.trust_remote_code, **training_load_options(settings))
    configure_trainable(vlm, settings)
    return vlm


def training_load_options(settings: ModelSettings) -> dict:
    """``load`` keywords for a model that trains: loaded on the CPU in the asked dtype and attention; the
    trainer then moves it to its device (``run_training(model_device=...)``), which also covers DDP and
    DeepSpeed, where each process owns one GPU."""
    if settings.device not in (None, "cpu", "cuda"):
        raise TetherError(
            f"model.device: '{settings.device}' is for inference commands; training takes cpu or cuda "
            "(pick one GPU with CUDA_VISIBLE_DEVICES=N, several with --launcher)"
        )
    options = settings.load_options()
    if settings.device == "cuda":  # validated (a GPU must be visible), then placed by the trainer
        check_load_settings(**options)
    return {**options, "device": "cpu"}


def model_parts(vlm: VisionLanguageModel) -> dict:
    """The three parts of a VLM as modules: vision tower, projector, language model (with its head)."""
    projector = vlm.projector
    vision = vlm.vision_tower
    vision_params = {id(p) for p in vision.parameters()} - {id(p) for p in projector.parameters()}
    projector_params = {id(p) for p in projector.parameters()}
    return {"vision": vision_params, "projector": projector_params}


def configure_trainable(vlm: VisionLanguageModel, settings: ModelSettings) -> None:
    parts = model_parts(vlm)
    for param in vlm.base_model.parameters():
        if id(param) in parts["projector"]:
            param.requires_grad_(not settings.freeze_projector)
        elif id(param) in parts["vision"]:
            param.requires_grad_(not settings.freeze_vision)
        else:
            param.requires_grad_(not settings.freeze_llm and settings.lora is None)
    if settings.lora is not None:
        apply_lora(vlm, settings)
    trainable = sum(p.numel() for p in vlm.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in vlm.model.parameters())
    logger.info(
        "trainable parameters: %s of %s (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total
    )


def apply_lora(vlm: VisionLanguageModel, settings: ModelSettings) -> None:
    """LoRA on the language model's attention; the DPO/PPO reference is then the adapter-disabled model."""
    from peft import LoraConfig, get_peft_model

    lora = settings.lora
    target = vlm.lora_target_pattern(lora.target_modules)  # the language model's modules, never the tower's
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=target)
    keep = {name for name, p in vlm.base_model.named_parameters() if p.requires_grad}
    vlm.model = get_peft_model(vlm.base_model, config)
    # PEFT freezes everything but the adapters; give back what the settings asked to train (projector...)
    for name, param in vlm.base_model.named_parameters():
        if name in keep:
            param.requires_grad_(True)


def export_model(vlm: VisionLanguageModel, out_dir) -> None:
    """Save a plain, loadable checkpoint: LoRA adapters merged into the weights."""
    model = vlm.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    exported = type(vlm)(model, vlm.tokenizer, vlm.image_processor, vlm.chat_template, vlm.path)
    exported.save_pretrained(out_dir)
