import json

import pytest
import torch
from PIL import Image

from tether.core.errors import DataError
from tether.decoding.yes_no import fast_yes_no, yes_no_margins, yes_no_token_ids
from tether.eval.runner import read_finished

QUESTIONS = [
    "is there a red square in the image ?",
    "is there a blue circle ?",
    "is there a green triangle left of it ?",
]


def full_forward_answers(vlm, image, prompts):
    """Reference: a full forward per question, reading the next-token distribution after the prompt."""
    yes_ids, no_ids = yes_no_token_ids(vlm.tokenizer)
    answers, margins = [], []
    for prompt in prompts:
        batch = vlm.encode([image], [prompt])
        with torch.no_grad():
            logits = vlm.forward(batch).logits[0, -1].float().log_softmax(-1)
        margin = (torch.logsumexp(logits[yes_ids], 0) - torch.logsumexp(logits[no_ids], 0)).item()
        answers.append("Yes" if margin > 0 else "No")
        margins.append(margin)
    return answers, margins


def test_fast_mode_equals_full_forward(tiny_vlm):
    image = Image.new("RGB", (32, 32), "red")
    image.paste((0, 0, 255), (8, 8, 20, 20))
    expected, margins = full_forward_answers(tiny_vlm, image, QUESTIONS)
    assert fast_yes_no(tiny_vlm, image, QUESTIONS) == expected
    assert fast_yes_no(tiny_vlm, image, QUESTIONS[:1]) == expected[:1]  # a single question per image


def test_fast_mode_margins_match_full_forward(tiny_vlm):
    """Compare the actual yes-no margins, not only their signs."""
    image = Image.new("RGB", (32, 32), "green")
    _, margins = full_forward_answers(tiny_vlm, image, QUESTIONS)
    torch.testing.assert_close(
        yes_no_margins(tiny_vlm, image, QUESTIONS), torch.tensor(margins), atol=1e-4, rtol=1e-4
    )


def test_read_finished_tolerates_torn_last_line_only(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"id": "1", "answer": "Yes"}) + "\n" + '{"id": "2", "ans')
    assert read_finished(path) == {"1": "Yes"}
    assert path.read_text() == json.dumps({"id": "1", "answer": "Yes"}) + "\n"  # torn record removed
    path.write_text('{"id": "1", "ans\n' + json.dumps({"id": "2", "answer": "No"}) + "\n")
    with pytest.raises(DataError, match="samples.jsonl:1: damaged record"):
        read_finished(path)


def test_several_images_in_one_forward_equal_one_image_at_a_time(tiny_vlm):
    from tether.decoding.yes_no import multi_image_margins

    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue", "green")]
    questions = [
        (0, QUESTIONS[0]),
        (1, QUESTIONS[0]),
        (1, QUESTIONS[1]),
        (2, QUESTIONS[2]),
        (0, QUESTIONS[2]),
    ]
    together = multi_image_margins(tiny_vlm, images, questions)
    alone = torch.stack([yes_no_margins(tiny_vlm, images[i], [q])[0] for i, q in questions])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
