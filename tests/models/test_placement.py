"""Problem 2 of issue 23: device, dtype and attention implementation on every command that loads a model."""

import json

import pytest
import torch
from PIL import Image

from tether.core.config import load_config
from tether.core.errors import TetherError
from tether.models import DecodingSettings, load
from tether.models.placement import from_pretrained_options, placement_record


def test_load_puts_the_model_in_the_asked_dtype_and_attention_and_bf16_runs_on_cpu(tiny_llava):
    vlm = load(tiny_llava, device="cpu", dtype="bfloat16", attn_implementation="eager")
    assert {p.dtype for p in vlm.model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in vlm.model.parameters()} == {"cpu"}
    assert placement_record(vlm.model) == {
        "device": "cpu",
        "dtype": "bfloat16",
        "attn_implementation": "eager",
    }
    answers = vlm.generate(
        [Image.new("RGB", (32, 32), "red")], ["what color ?"], DecodingSettings(max_new_tokens=3)
    )
    assert len(answers) == 1 and isinstance(answers[0], str)
    default = load(tiny_llava)  # unchanged default: float32, transformers' attention
    assert placement_record(default.model)["dtype"] == "float32"


def test_device_auto_loads_through_device_map(tiny_llava, monkeypatch):
    from transformers import AutoModelForImageTextToText

    calls = []
    original = AutoModelForImageTextToText.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        calls.append(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", classmethod(recording))
    vlm = load(tiny_llava, device="auto", dtype="float16")
    assert calls[0]["device_map"] == "auto" and calls[0]["dtype"] == "float16"
    # accelerate found no GPU and put everything on the CPU
    assert placement_record(vlm.model)["device"] == "cpu" and vlm.model.dtype == torch.float16


def test_gpu_devices_go_to_from_pretrained_and_are_checked(monkeypatch):
    if not torch.cuda.is_available():
        with pytest.raises(TetherError, match="--device cuda: no CUDA GPU is visible"):
            from_pretrained_options("cuda", "float32", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    # the weights load straight onto the asked GPU, in the asked dtype
    assert from_pretrained_options("cuda:1", "bf16", "sdpa") == {
        "dtype": "bfloat16",
        "device_map": "cuda:1",
        "attn_implementation": "sdpa",
    }
    assert from_pretrained_options(None, "float16", None) == {"dtype": "float16", "device_map": "cuda"}
    assert from_pretrained_options("auto", "auto", None) == {"dtype": "auto", "device_map": "auto"}
    with pytest.raises(TetherError, match="only 2 CUDA GPU"):
        from_pretrained_options("cuda:2", "float32", None)
    with pytest.raises(TetherError, match="unknown device 'gpu'"):
        from_pretrained_options("gpu", "float32", None)
    with pytest.raises(TetherError, match="flash_attention_2 needs --dtype bfloat16"):
        monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
        from_pretrained_options("cuda", "float32", "flash_attention_2")


RECIPES = [
    ("tether.methods.sft", "SFTConfig"),
    ("tether.methods.vision", "VisionConfig"),
    ("tether.methods.hacl", "HACLConfig"),
    ("tether.methods.dpo", "DPOConfig"),
    ("tether.methods.reward", "RewardConfig"),
    ("tether.methods.ppo", "PPOConfig"),
    ("tether.methods.ssl", "SSLConfig"),
]


@pytest.mark.parametrize("module, name", RECIPES)
def test_every_recipe_takes_device_dtype_and_attention(module, name):
    import importlib

    cls = getattr(importlib.import_module(module), name)
    sets = ["model.dtype=bfloat16", "model.device=cpu", "model.attn_implementation=eager"]
    model = load_config(cls, None, sets).model
    assert (model.dtype, model.device, model.attn_implementation) == ("bfloat16", "cpu", "eager")
    assert model.load_options() == {"device": "cpu", "dtype": "bfloat16", "attn_implementation": "eager"}


def test_training_in_bfloat16_on_cpu_is_recorded_in_run_json(tiny_llava, tmp_path):
    from tether.methods.sft import SFTConfig, train_sft

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (32, 32), "red").save(images / "0.png")
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"image": "0.png", "question": "what color is it ?", "answer": "red"}) + "\n")
    out = tmp_path / "run"
    config = load_config(
        SFTConfig,
        None,
        [
            f"model.path={tiny_llava}",
            f"data.train=[{data}]",
            f"data.images={images}",
            f"train.output_dir={out}",
            "train.max_steps=2",
            "train.save_steps=0",
            "train.progress_bar=false",
            "model.dtype=bfloat16",
            "model.device=cpu",
            "model.attn_implementation=eager",
        ],
    )
    exported = train_sft(config)
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["model"]["dtype"] == "bfloat16" and record["config"]["model"]["device"] == "cpu"
    assert record["model_placement"] == {"device": "cpu", "dtype": "bfloat16", "attn_implementation": "eager"}
    assert record["global_step"] == 2
    assert json.loads((exported / "config.json").read_text())["dtype"] == "bfloat16"


def test_training_refuses_an_inference_only_device(tiny_llava):
    from tether.methods.settings import ModelSettings, TrainSettings
    from tether.methods.trainer import training_arguments
    from tether.methods.tuning import load_for_training

    for device in ("cuda:1", "auto"):
        with pytest.raises(TetherError, match="CUDA_VISIBLE_DEVICES"):
            load_for_training(ModelSettings(path=str(tiny_llava), device=device))
    assert training_arguments(TrainSettings(), model_device="cpu").use_cpu


def test_models_info_and_analyze_take_the_options(tiny_llava, run_cli):
    code, out, err = run_cli("models", "info", tiny_llava, "--dtype", "bfloat16", "--device", "cpu")
    assert code == 0, err
    assert "dtype: bfloat16" in out and "device: cpu" in out
    for command in (
        ["data", "pairs"],
        ["data", "answer-pairs"],
        ["analyze", "gap"],
        ["analyze", "attention"],
    ):
        with pytest.raises(SystemExit):
            run_cli(*command, "--help")
    # (the help of each names the options; a parse with them reaches the command's own checks)
    code, _, err = run_cli(
        "analyze",
        "gap",
        "--model",
        tiny_llava,
        "--negatives",
        "/nonexistent.jsonl",
        "--out",
        "/tmp/x",
        "--device",
        "cpu",
        "--dtype",
        "bfloat16",
    )
    assert code == 2 and "nonexistent.jsonl" in err


def test_vllm_refuses_placement_it_does_not_take():
    from tether.models.placement import ModelLoadSettings
    from tether.models.vllm_backend import generator

    with pytest.raises(TetherError, match="--device and --attn-implementation are for --backend hf"):
        generator("any", "vllm", ModelLoadSettings(device="cpu"))
