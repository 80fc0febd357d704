import json

import pytest
import torch
from PIL import Image

from tether.core.config import load_config
from tether.core.errors import DataError, TetherError
from tether.methods.ssl import (
    PseudoLabelSettings,
    SSLConfig,
    UnlabeledItem,
    answer_confidence,
    load_unlabeled_items,
    pseudo_label,
    train_ssl,
)
from tether.models.decoding import DecodingSettings


def test_answer_confidence_mean_and_min():
    probs = torch.tensor([[0.5, 0.25, 1.0], [0.8, 1.0, 1.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    logps = probs.log()
    assert answer_confidence(logps, mask, "mean").tolist() == pytest.approx([0.375, 0.8, 0.0])
    assert answer_confidence(logps, mask, "min").tolist() == pytest.approx([0.25, 0.8, 0.0])


def test_unlabeled_items_expand_prompt_templates(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text('{"image": "a.png", "prompt": "what ?"}\n{"image": "b.png"}\n')
    items = load_unlabeled_items(path, ["describe .", "count ."])
    assert items == [
        UnlabeledItem("a.png", "what ?"),
        UnlabeledItem("b.png", "describe ."),
        UnlabeledItem("b.png", "count ."),
    ]
    with pytest.raises(DataError, match=r"u\.jsonl:2: item has no 'prompt'"):
        load_unlabeled_items(path)


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for i, colour in enumerate(["red", "blue", "green"]):
        Image.new("RGB", (32, 32), colour).save(root / f"{i}.png")
    return root


def test_pseudo_labels_confidence_and_resume(tiny_vlm, images, tmp_path):
    items = [UnlabeledItem(f"{i}.png", "what color is it ?") for i in range(3)]
    out = tmp_path / "pseudo.jsonl"
    settings = PseudoLabelSettings(batch_size=1, max_new_tokens=5, threshold=0.0)
    records = pseudo_label(tiny_vlm, items[:2], images, out, settings)
    assert len(out.read_text().splitlines()) == 2

    # confidence = mean probability of the generated tokens, as the teacher scored them while generating
    image = Image.open(images / "0.png").convert("RGB")
    batch = tiny_vlm.encode([image], ["what color is it ?"], padding_side="left")
    with torch.no_grad():
        generated = tiny_vlm.model.generate(
            **batch.model_inputs(),
            **DecodingSettings(max_new_tokens=5).generate_kwargs(),
            eos_token_id=tiny_vlm.eos_token_id,
            pad_token_id=tiny_vlm.pad_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
    new_ids = generated.sequences[0, batch.input_ids.shape[1] :].tolist()
    probs = [torch.softmax(s[0].float(), -1)[t].item() for s, t in zip(generated.scores, new_ids)]
    if tiny_vlm.eos_token_id in new_ids:
        probs = probs[: new_ids.index(tiny_vlm.eos_token_id)]
    assert records[0]["response"] == tiny_vlm.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    assert records[0]["confidence"] == pytest.approx(sum(probs) / len(probs), rel=1e-4)
    assert all(r["kept"] == bool(r["response"]) for r in records)

    # a rerun asks only the new item and returns the stored labels for the others
    again = pseudo_label(tiny_vlm, items, images, out, settings)
    assert again[:2] == records
    assert len(out.read_text().splitlines()) == 3
    strict = pseudo_label(
        tiny_vlm,
        items,
        images,
        tmp_path / "strict.jsonl",
        PseudoLabelSettings(threshold=1.01, max_new_tokens=5),
    )
    assert not any(r["kept"] for r in strict)
    assert [r["confidence"] for r in strict] == pytest.approx([r["confidence"] for r in again], rel=1e-4)


def test_train_ssl_end_to_end(tiny_checkpoint, images, tmp_path):
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text(
        json.dumps({"image": "0.png", "question": "what color is it ?", "answer": "red"}) + "\n"
    )
    unlabeled = tmp_path / "unlabeled.jsonl"
    unlabeled.write_text('{"image": "1.png"}\n{"image": "2.png", "prompt": "what color is it ?"}\n')
    out = tmp_path / "run"
    config = load_config(
        SSLConfig,
        None,
        [
            f"model.path={tiny_checkpoint}",
            f"pseudo.teacher={tiny_checkpoint}",
            "pseudo.prompts=[describe the image .]",
            "pseudo.threshold=0.0",
            "pseudo.max_new_tokens=4",
            f"data.labeled=[{labeled}]",
            f"data.unlabeled=[{unlabeled}]",
            f"data.images={images}",
            f"train.output_dir={out}",
            "train.max_steps=3",
            "train.per_device_train_batch_size=2",
            "train.progress_bar=false",
            "noiseboost.schedule=cosine",
        ],
    )
    assert (config.noiseboost.scale, config.noiseboost.schedule) == (0.5, "cosine")
    exported = train_ssl(config)
    record = json.loads((out / "run.json").read_text())
    pseudo = [json.loads(line) for line in (out / "pseudo_labels.jsonl").read_text().splitlines()]
    assert [p["image"] for p in pseudo] == ["1.png", "2.png"]
    assert record["labeled_records"] == 1
    assert record["unlabeled_items"] == 2
    assert record["pseudo_labels_kept"] == sum(p["kept"] for p in pseudo)
    assert record["global_step"] == 3
    from tether.models import load

    assert load(exported).generate([Image.new("RGB", (32, 32), "red")], ["what ?"], DecodingSettings(3))


def test_train_ssl_plain_template_is_the_students_only(tiny_checkpoint, images, tmp_path, monkeypatch):
    # under data.template: plain the student trains on LLaVA's stage-1 format; the teacher is still asked
    # its question through the chat template (generation and scoring)
    from tether.models.adapter import VisionLanguageModel

    calls = []
    encode = VisionLanguageModel.encode

    def spy(self, images, prompts, responses=None, **kwargs):
        student = responses is not None and kwargs.get("add_eos", True)
        calls.append(("student" if student else "teacher", kwargs.get("template", "chat")))
        return encode(self, images, prompts, responses, **kwargs)

    monkeypatch.setattr(VisionLanguageModel, "encode", spy)
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text(json.dumps({"image": "0.png", "prompt": "describe .", "response": "red"}) + "\n")
    unlabeled = tmp_path / "unlabeled.jsonl"
    unlabeled.write_text('{"image": "1.png", "prompt": "describe ."}\n')
    config = load_config(
        SSLConfig,
        None,
        [
            f"model.path={tiny_checkpoint}",
            f"pseudo.teacher={tiny_checkpoint}",
            "pseudo.threshold=0.0",
            "pseudo.max_new_tokens=3",
            f"data.labeled=[{labeled}]",
            f"data.unlabeled=[{unlabeled}]",
            f"data.images={images}",
            "data.template=plain",
            f"train.output_dir={tmp_path / 'run'}",
            "train.max_steps=2",
            "train.per_device_train_batch_size=2",
            "train.progress_bar=false",
        ],
    )
    train_ssl(config)
    assert {t for who, t in calls if who == "student"} == {"plain"}
    assert {t for who, t in calls if who == "teacher"} == {"chat"}
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["config"]["data"]["template"] == "plain"


def test_train_ssl_rejects_an_unknown_template_before_the_teacher_runs(tmp_path):
    unlabeled = tmp_path / "u.jsonl"
    unlabeled.write_text('{"image": "a.png", "prompt": "what ?"}\n')
    config = SSLConfig()
    config.pseudo.teacher = str(tmp_path / "no-such-teacher")  # loading it would fail differently
    config.data.unlabeled = [str(unlabeled)]
    config.data.template = "llava_v1"
    with pytest.raises(TetherError, match="data.template must be one of chat, plain, not 'llava_v1'"):
        train_ssl(config)


def test_cli_reports_a_missing_teacher_as_a_user_error(tmp_path, capsys):
    from tether.cli import main

    unlabeled = tmp_path / "u.jsonl"
    unlabeled.write_text('{"image": "a.png", "prompt": "what ?"}\n')
    assert main(["train", "ssl", "--set", f"data.unlabeled=[{unlabeled}]"]) == 2
    assert "pseudo.teacher names no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["sft_noiseboost_tiny.yaml", "ssl_tiny.yaml", "ssl_llava15_7b_lora.yaml"])
def test_recipes_load(name):
    from pathlib import Path

    from tether.methods.sft import SFTConfig

    path = Path(__file__).resolve().parents[2] / "configs" / "noiseboost" / name
    config = load_config(SFTConfig if name.startswith("sft") else SSLConfig, path)
    assert config.noiseboost is not None
