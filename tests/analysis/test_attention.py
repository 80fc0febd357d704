import argparse
import json

import pytest
import torch
from PIL import Image

from tether.analysis.attention import (
    AttentionItem,
    aggregate_shares,
    attention_share_report,
    label_object_words,
    step_shares,
    word_map_lookup,
)
from tether.models.decoding import DecodingSettings


def test_step_shares_on_a_hand_built_attention():
    # 2 layers, 2 heads, 3 query rows (only the last one produced the token), 4 keys; keys 1-2 are visual
    layer0 = torch.zeros(1, 2, 3, 4)
    layer0[0, 0, -1] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    layer0[0, 1, -1] = torch.tensor([0.4, 0.3, 0.2, 0.1])
    layer0[0, :, 0] = torch.tensor([1.0, 0, 0, 0])  # an earlier query row: must be ignored
    layer1 = torch.zeros(1, 2, 3, 4)
    layer1[0, 0, -1] = torch.tensor([0.0, 0.6, 0.2, 0.2])
    layer1[0, 1, -1] = torch.tensor([0.2, 0.2, 0.2, 0.4])
    visual = torch.tensor([False, True, True, False, False])  # longer than the keys: later steps' positions
    shares = step_shares([layer0, layer1], visual)
    # layer 0: head mean [.25 .25 .25 .25] -> visual .5, text .5; layer 1: mean [.1 .4 .2 .3] -> .6 / .4
    torch.testing.assert_close(shares, torch.tensor([[0.5, 0.5], [0.6, 0.4]]))


def test_object_words_are_labelled_on_their_first_token():
    pieces = ["a", " red", " squ", "are", " and", " a", " circle", ".", " Squares"]
    lookup = word_map_lookup({"square": "square", "squares": "square", "circle": "circle"})
    labels = label_object_words(pieces, ["Square", "triangle"], lookup)
    assert labels == [None, None, "correct", None, None, None, "hallucinated", None, "correct"]


def test_aggregate_shares_by_group():
    shares = [torch.tensor([[0.2, 0.8], [0.4, 0.6]]), torch.tensor([[0.6, 0.4], [0.0, 1.0]])]
    shares.append(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    report = aggregate_shares(shares, ["correct", None, "correct"])
    assert report["all"]["tokens"] == 3
    assert report["all"]["visual"] == pytest.approx([0.6, 1.4 / 3])
    assert report["correct"] == {
        "tokens": 2,
        "visual": pytest.approx([0.6, 0.7]),
        "text": pytest.approx([0.4, 0.3]),
    }
    assert report["hallucinated"] == {"tokens": 0, "visual": [], "text": []}


WORDS = "red blue green square circle triangle".split()


def test_report_on_a_tiny_model(tiny_vlm):
    items = [
        AttentionItem(Image.new("RGB", (32, 32), "red"), "what is in the image ?", ["square"]),
        AttentionItem(Image.new("RGB", (32, 32), "blue"), "describe the image .", ["circle", "blue"]),
    ]
    implementation = tiny_vlm.base_model.config._attn_implementation
    report = attention_share_report(
        tiny_vlm, items, word_map_lookup({w: w for w in WORDS}), DecodingSettings(max_new_tokens=8)
    )
    assert tiny_vlm.base_model.config._attn_implementation == implementation  # restored
    assert report["layers"] == 2
    groups = report["groups"]
    answers = [a["answer"] for a in report["answers"]]
    assert answers == tiny_vlm.generate(
        [i.image for i in items], [i.prompt for i in items], DecodingSettings(8)
    )
    n_tokens = sum(len(tiny_vlm.tokenizer(a, add_special_tokens=False).input_ids) for a in answers)
    assert groups["all"]["tokens"] == n_tokens
    assert groups["correct"]["tokens"] + groups["hallucinated"]["tokens"] == sum(
        len(a["correct"]) + len(a["hallucinated"]) for a in report["answers"]
    )
    for visual, text in zip(groups["all"]["visual"], groups["all"]["text"]):
        assert visual + text == pytest.approx(1.0, abs=1e-5)
        assert 0 < visual < 1


def test_cli_compares_two_models(tiny_checkpoint, tmp_path, capsys):
    from tether.analysis.attention_cli import register_verb

    Image.new("RGB", (32, 32), "green").save(tmp_path / "a.png")
    items = tmp_path / "items.jsonl"
    items.write_text(
        json.dumps({"image": "a.png", "prompt": "describe it .", "objects": ["triangle"]}) + "\n"
    )
    word_map = tmp_path / "words.json"
    word_map.write_text(json.dumps({w: w for w in WORDS}))
    parser = argparse.ArgumentParser()
    register_verb(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(
        [
            "attention",
            "--model",
            f"{tiny_checkpoint}=before",
            "--model",
            f"{tiny_checkpoint}=after",
            "--items",
            str(items),
            "--images",
            str(tmp_path),
            "--word-map",
            str(word_map),
            "--out",
            str(out),
            "--max-new-tokens",
            "5",
        ]
    )
    assert args.handler(args) == 0
    result = json.loads((out / "attention.json").read_text())
    assert set(result["reports"]) == {"before", "after"}
    assert result["reports"]["before"]["groups"] == result["reports"]["after"]["groups"]  # same weights
    assert (out / "attention.png").stat().st_size > 1000
    assert "before: mean visual share over layers" in capsys.readouterr().out
