import json

from PIL import Image

from tether.core.config import load_config
from tether.methods.vision import VisionConfig, train_vision


def test_vision_pretraining_learns_colours(tiny_checkpoint, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0)}
    for i in range(12):
        names = [list(colours)[i % 3], list(colours)[(i // 3) % 3]]
        img = Image.new("RGB", (32, 32), "white")
        img.paste(colours[names[0]], (0, 0, 16, 32))
        img.paste(colours[names[1]], (16, 0, 32, 32))
        img.save(images / f"{i}.png")
        rows.append({"image": f"{i}.png", "labels": sorted(set(names))})
    data = tmp_path / "labels.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    config = load_config(
        VisionConfig,
        None,
        [
            f"model.path={tiny_checkpoint}",
            f"data.train=[{data}]",
            f"data.images={images}",
            f"train.output_dir={out}",
            "train.max_steps=80",
            "train.learning_rate=1e-2",
            "train.logging_steps=10",
            "train.per_device_train_batch_size=12",
            "train.progress_bar=false",
            "train.save_steps=1000",
        ],
    )
    train_vision(config)
    history = json.loads((out / "run.json").read_text())["log_history"]
    logged = [r for r in history if "exact_match" in r]
    assert logged[-1]["loss"] < logged[0]["loss"] * 0.5
    assert logged[-1]["exact_match"] >= 0.9
    assert json.loads((out / "labels.json").read_text()) == ["blue", "green", "red"]
    assert (out / "model" / "model.safetensors").is_file()
