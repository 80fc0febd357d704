import json

import pytest

from tether.core.errors import TetherError
from tether.models import load


def test_missing_folder_and_config(tmp_path):
    with pytest.raises(TetherError, match="not a local checkpoint folder"):
        load(tmp_path / "nope")
    with pytest.raises(TetherError, match="no config.json"):
        load(tmp_path)


def test_unknown_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "blip-2"}))
    families = "gemma3, idefics3, instructblip, internvl, llava, llava_next, llava_onevision, llava_onevision1_5, qwen2_5_vl, qwen2_vl, qwen3_vl, smolvlm"
    with pytest.raises(
        TetherError, match=f"'blip-2' is not supported; supported: {families}; .*--trust-remote-code"
    ):
        load(tmp_path)


def test_pickle_weights_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(TetherError, match="only pickle weights found .*safetensors only"):
        load(tmp_path)


def test_remote_code_needs_explicit_flag(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "llava", "auto_map": {"AutoModel": "x.Y"}})
    )
    with pytest.raises(TetherError, match="--trust-remote-code"):
        load(tmp_path)
