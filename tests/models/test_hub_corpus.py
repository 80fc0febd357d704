"""Checkpoints in and out as the Hub has them (``hub_corpus.py``): every layout loads, encodes exactly as
transformers' processor does, generates as transformers does, evaluates and trains; every export loads in
transformers and in tether with the same encodings."""

import json
import logging
import shutil

import pytest
import torch
from hub_corpus import (
    ANSWERS,
    FAMILIES,
    LAYOUTS,
    QUESTIONS,
    build,
    hf_processor,
    llama_tokenizer,
    place_template,
)
from PIL import Image

from tether.core.config import load_config
from tether.core.errors import TetherError
from tether.decoding.yes_no import fast_yes_no, yes_no_margins, yes_no_token_ids
from tether.methods.sft import SFTConfig, train_sft
from tether.models import DecodingSettings, load
from tether.models.chat_templates import DOCUMENTED_FORMATS

CHECKPOINTS = [(family, layout) for family in FAMILIES for layout in LAYOUTS]
IMAGES = [("red", (32, 32)), ("blue", (48, 20)), ("green", (64, 96))]  # square, wide, tall


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    return {(f, lay): build(f, lay, root / f"{f}-{lay}") for f, lay in CHECKPOINTS}


def _images():
    return [Image.new("RGB", size, colour) for colour, size in IMAGES]


def _hf_inputs(processor, image, question):
    """What a transformers user feeds the model: the processor's template (the tokenizer's when the
    processor has none, as transformers falls back), then the processor on text and image."""
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    templater = processor if processor.chat_template else processor.tokenizer
    text = templater.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return processor(images=[image], text=[text], return_tensors="pt")


def assert_same_encodings(vlm, processor):
    """tether's token ids, pixels and grids equal the processor's, image by image and question by question."""
    for image in _images():
        for question in QUESTIONS:
            expected = _hf_inputs(processor, image, question)
            batch = vlm.encode([image], [question])
            assert batch.input_ids[0].tolist() == expected["input_ids"][0].tolist(), (image.size, question)
            torch.testing.assert_close(batch.image_inputs["pixel_values"], expected["pixel_values"])
            if "image_grid_thw" in expected:
                assert batch.image_inputs["image_grid_thw"].tolist() == expected["image_grid_thw"].tolist()


@pytest.mark.parametrize("family,layout", CHECKPOINTS)
def test_every_layout_loads_and_encodes_as_the_hf_processor(corpus, family, layout):
    path = corpus[family, layout]
    vlm = load(path)
    processor = hf_processor(path)
    assert vlm.chat_template == (processor.chat_template or processor.tokenizer.chat_template)
    assert_same_encodings(vlm, processor)


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_equals_transformers(corpus, family):
    path = corpus[family, "single-jinja"]
    vlm = load(path)
    processor = hf_processor(path)
    image, question = _images()[1], QUESTIONS[1]
    inputs = _hf_inputs(processor, image, question)
    expected = vlm.model.generate(**inputs, max_new_tokens=6, do_sample=False)
    text = processor.tokenizer.decode(expected[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert vlm.generate([image], [question], DecodingSettings(max_new_tokens=6)) == [text.strip()]


def test_generation_stops_at_every_eos_of_generation_config(corpus):
    """Qwen's generation_config.json lists <|im_end|> and <|endoftext|>: a model that says <|endoftext|>
    stops there, as transformers' generate does, and the row counts as ended."""
    path = corpus["qwen2_5_vl", "single-jinja"]
    vlm = load(path)
    endoftext = vlm.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert endoftext != vlm.eos_token_id  # the tokenizer knows only <|im_end|>
    head = vlm.base_model.lm_head
    with torch.no_grad():  # every position predicts <|endoftext|>
        head.weight.zero_()
        head.bias = torch.nn.Parameter(torch.zeros(head.out_features))
        head.bias[endoftext] = 10.0
    image, question = _images()[0], QUESTIONS[0]
    batch = vlm.encode([image], [question], padding_side="left")
    expected = vlm.model.generate(**batch.model_inputs(), max_new_tokens=5, do_sample=False)
    assert expected.shape[1] == batch.input_ids.shape[1] + 1  # transformers stops after one token
    texts, ended = vlm.generate_with_eos([image], [question])
    assert texts == [""] and ended == [True]


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    rows = []
    for i, image in enumerate(_images()):
        image.save(root / f"{i}.png")
        rows += [{"image": f"{i}.png", "question": q, "answer": a} for q, a in zip(QUESTIONS, ANSWERS)]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.mark.parametrize("family,layout", CHECKPOINTS)
def test_every_layout_evaluates_trains_and_exports_for_transformers(
    corpus, sft_data, tmp_path, family, layout
):
    """Evaluate (fast yes/no, generation), train (SFT; LoRA on the sharded layout, merged at export), export;
    the export loads in transformers (model class + processor) and in tether, with the same encodings."""
    from transformers import AutoModelForImageTextToText

    path = corpus[family, layout]
    vlm = load(path)
    image = _images()[0]
    assert fast_yes_no(vlm, image, QUESTIONS[:1]) in (["Yes"], ["No"])
    assert torch.isfinite(yes_no_margins(vlm, image, QUESTIONS[:1])).all()
    assert len(vlm.generate([image], [QUESTIONS[1]], DecodingSettings(max_new_tokens=4))) == 1

    overrides = [
        f"model.path={path}",
        f"data.train=[{sft_data / 'train.jsonl'}]",
        f"data.images={sft_data}",
        f"train.output_dir={tmp_path / 'run'}",
        "train.max_steps=2",
        "train.per_device_train_batch_size=3",
        "train.learning_rate=1e-2",
        "train.progress_bar=false",
        "train.save_steps=100",
    ]
    if LAYOUTS[layout]["shards"]:
        overrides.append("model.lora={r: 4, alpha: 8, dropout: 0.0}")
    exported = train_sft(load_config(SFTConfig, None, overrides))

    before = dict(load(path).model.named_parameters())
    moved = [n for n, p in load(exported).model.named_parameters() if not torch.equal(p, before[n])]
    assert moved, "training changed no weight"
    model = AutoModelForImageTextToText.from_pretrained(exported)
    assert type(model).__name__ == type(vlm.base_model).__name__
    processor = hf_processor(exported)
    if family == "llava":  # its processor needs no torchvision: AutoProcessor itself must load the export
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(exported)
    reloaded = load(exported)
    assert reloaded.chat_template == vlm.chat_template == processor.chat_template
    assert_same_encodings(reloaded, processor)


def test_two_template_homes_follow_transformers_and_warn(corpus, tmp_path, caplog):
    """chat_template.json beats chat_template.jinja, processor_config.json beats both, as in transformers'
    processor; a disagreement is logged naming both homes."""
    path = tmp_path / "ckpt"
    shutil.copytree(corpus["llava", "sharded-json"], path)
    jinja = DOCUMENTED_FORMATS["llava-1.5"].replace("ASSISTANT:", "ASSISTANT (jinja):")
    (path / "chat_template.jinja").write_text(jinja)
    with caplog.at_level(logging.WARNING):
        vlm = load(path)
    assert vlm.chat_template == hf_processor(path).chat_template != jinja
    assert "chat_template.json (chat_template) and chat_template.jinja hold different" in caplog.text

    config = json.loads((path / "processor_config.json").read_text())
    in_config = jinja.replace("(jinja)", "(processor_config)")
    (path / "processor_config.json").write_text(json.dumps({**config, "chat_template": in_config}))
    assert load(path).chat_template == hf_processor(path).chat_template == in_config


TEXT_ONLY = {  # fine-tune exports whose templates take string content
    "llava": (
        "{% for m in messages %}{{ m['role'].upper() + ': ' + m['content'] + ' ' }}{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    ),
    "qwen2_5_vl": (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
}
TEXT_ONLY_PROMPTS = {
    "llava": "USER: <image>\n{q} ASSISTANT:",
    "qwen2_5_vl": "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{q}<|im_end|>\n<|im_start|>assistant\n",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_text_only_templates_take_string_content(corpus, tmp_path, family):
    path = tmp_path / "ckpt"
    shutil.copytree(corpus[family, "single-jinja"], path)
    place_template(path, TEXT_ONLY[family], "tokenizer_config.json")
    vlm = load(path)
    question = QUESTIONS[0]
    assert vlm.prompt_text(question) == TEXT_ONLY_PROMPTS[family].format(q=question)
    batch = vlm.encode(_images()[:1], [question])
    vlm.check_image_tokens(batch)
    assert vlm.response_logprobs(batch).per_token.shape[0] == 1


def test_no_template_names_every_home_and_takes_a_chosen_one(corpus, tmp_path, run_cli):
    path = tmp_path / "ckpt"
    shutil.copytree(corpus["llava", "tokenizer-config"], path)
    place_template(path, "", "nowhere")
    with pytest.raises(TetherError) as error:
        load(path)
    for home in (
        "processor_config.json",
        "chat_template.json",
        "chat_template.jinja",
        "tokenizer_config.json",
    ):
        assert home in str(error.value)
    assert "--chat-template" in str(error.value) and "llava-1.5" in str(error.value)

    template_file = tmp_path / "template.jinja"
    template_file.write_text(TEXT_ONLY["llava"])
    assert load(path, chat_template=str(template_file)).chat_template == TEXT_ONLY["llava"]
    # the documented format only by name; it is what llava-hf's own template renders
    documented = load(path, chat_template="llava-1.5")
    hf = load(corpus["llava", "single-jinja"])
    assert documented.prompt_text(QUESTIONS[0]) == hf.prompt_text(QUESTIONS[0])

    code, out, _ = run_cli("models", "info", path, "--chat-template", template_file)
    assert code == 0 and "llava" in out
    code, _, err = run_cli("models", "info", path)
    assert code != 0 and "--chat-template" in err

    # a benchmark run with the chosen template records it with the decoding
    Image.new("RGB", (32, 32), "red").save(tmp_path / "0.png")
    row = {"question_id": 1, "image": "0.png", "text": QUESTIONS[0], "label": "yes"}
    (tmp_path / "pope.jsonl").write_text(json.dumps(row) + "\n")
    argv = ["eval", "pope", "run", "--model", path, "--questions", tmp_path / "pope.jsonl"]
    argv += ["--images", tmp_path, "--out", tmp_path / "run", "--mode", "fast", "--no-progress"]
    code, _, err = run_cli(*argv, "--chat-template", "llava-1.5")
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["decoding"]["chat_template"] == "llava-1.5"


@pytest.mark.parametrize("family,name", [("llava", "llava-1.5"), ("qwen2_5_vl", "qwen2-vl")])
def test_documented_formats_render_as_the_publishers_templates(corpus, family, name):
    vlm = load(corpus[family, "single-jinja"])
    published = [vlm.prompt_text(QUESTIONS[0]), vlm.prompt_text(QUESTIONS[0], with_image=False)]
    vlm.chat_template = DOCUMENTED_FORMATS[name]
    assert [vlm.prompt_text(QUESTIONS[0]), vlm.prompt_text(QUESTIONS[0], with_image=False)] == published


def test_fast_yes_no_uses_only_tokens_that_tell_yes_from_no():
    """A LLaVA-style tokenizer splits " Yes" into "▁", "▁Yes" and " No" into "▁", "▁No": "▁" starts both
    answers and must count for neither."""
    tokenizer = llama_tokenizer()
    assert tokenizer.convert_ids_to_tokens(tokenizer(" Yes", add_special_tokens=False).input_ids) == [
        "▁",
        "▁Yes",
    ]
    yes, no = yes_no_token_ids(tokenizer)
    assert not set(yes) & set(no)
    assert tokenizer.convert_ids_to_tokens(yes) == ["▁Yes", "▁yes", "▁YES"]
    assert tokenizer.convert_ids_to_tokens(no) == ["▁No", "▁no", "▁NO"]


