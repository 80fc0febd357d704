"""The seams between the world, tiny models and the tools: each world export is read by the command that
consumes it, and a tiny model for the world reads the world's words."""

import json
import logging
from pathlib import Path

import pytest
import yaml
from transformers import PreTrainedTokenizerFast

from tether.cli import main
from tether.data.negatives import load_negatives
from tether.data.rlhf import load_preference_records, load_prompt_records
from tether.data.sft import load_sft_records
from tether.methods.hacl import attach_negatives
from tether.world import vocab
from tether.world.exports import POPE_QUESTION
from tether.world.texts import DETAIL_PROMPT

REPO = Path(__file__).resolve().parents[2]
POPE_WORDINGS = [POPE_QUESTION.format(name=shape) for shape in vocab.SHAPES]


def tether(*args) -> None:
    assert main([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def default_tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "default"
    tether("models", "tiny", "--out", out)
    return out


@pytest.fixture(scope="module")
def world_tiny(smoke_world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "world"
    tether("models", "tiny", "--for-world", smoke_world, "--out", out)
    return out


def test_a_tiny_model_for_the_world_reads_every_pope_wording_and_caption(
    smoke_world, default_tiny, world_tiny
):
    default = PreTrainedTokenizerFast.from_pretrained(default_tiny)
    assert len({tuple(default(q).input_ids) for q in POPE_WORDINGS}) == 1  # the problem: one sequence for 8

    tokenizer = PreTrainedTokenizerFast.from_pretrained(world_tiny)
    assert len({tuple(tokenizer(q).input_ids) for q in POPE_WORDINGS}) == len(vocab.SHAPES)
    lines = (smoke_world / "text" / "train_captions.jsonl").read_text().splitlines()
    captions = [json.loads(line)["caption"] for line in lines]
    assert sum(tokenizer(c).input_ids.count(tokenizer.unk_token_id) for c in captions) == 0
    assert sum(default(c).input_ids.count(default.unk_token_id) for c in captions) > 0

    # and the model meets no unknown token in the shared encode path
    from tether.models import load

    world_vlm = load(world_tiny)
    world_vlm.encode(None, POPE_WORDINGS + captions)
    assert world_vlm.unknown_tokens.unknown == 0 and world_vlm.unknown_tokens.tokens > 0


def test_a_model_that_meets_unknown_tokens_warns_with_their_share(default_tiny, caplog):
    from tether.models import load

    vlm = load(default_tiny)
    with caplog.at_level(logging.WARNING, logger="tether.models.unknown_tokens"):
        vlm.encode(None, POPE_WORDINGS)
    ids = [vlm.tokenizer(vlm.prompt_text(q, with_image=False)).input_ids for q in POPE_WORDINGS]
    unknown, total = sum(i.count(vlm.tokenizer.unk_token_id) for i in ids), sum(len(i) for i in ids)
    assert unknown == len(POPE_WORDINGS)  # every shape name, and nothing else
    (warning,) = caplog.records
    assert f"{100 * unknown / total:.1f}% of the text tokens" in warning.getMessage()
    assert f"({unknown} of {total})" in warning.getMessage() and "'star'" in warning.getMessage()

    caplog.clear()  # once per model
    with caplog.at_level(logging.WARNING, logger="tether.models.unknown_tokens"):
        vlm.encode(None, POPE_WORDINGS)
    assert caplog.records == []


def test_sft_and_hacl_read_the_world_captions(smoke_world, tmp_path):
    from tether.data.sft import CAPTION_PROMPT, DESCRIPTION_PROMPT

    text = smoke_world / "text"
    captions = [json.loads(line) for line in (text / "train_captions.jsonl").read_text().splitlines()]
    records = load_sft_records(text / "train_captions.jsonl")
    assert [(r.image, r.prompt, r.response) for r in records] == [
        (c["image"], CAPTION_PROMPT, c["caption"]) for c in captions
    ]
    descriptions = load_sft_records(text / "train_descriptions.jsonl")
    assert {r.prompt for r in descriptions} == {DESCRIPTION_PROMPT} == {DETAIL_PROMPT}
    corpus = load_sft_records(text / "lm_corpus.txt")
    assert [r.response for r in corpus] == (text / "lm_corpus.txt").read_text().splitlines()
    assert all(r.image is None and r.prompt is None for r in corpus)

    # HACL pairs each caption with its rewrite from `tether data negatives` on the same file
    negatives = tmp_path / "negatives.jsonl"
    tether("data", "negatives", text / "train_captions.jsonl", "--out", negatives, "--synonyms",
           smoke_world / "bench/chair/synonyms.txt")  # fmt: skip
    examples = attach_negatives(records, load_negatives(negatives))
    assert all(e.negative is not None and e.negative != e.record.response for e in examples)


def test_the_hacl_tiny_config_names_files_the_world_writes(smoke_world):
    data = yaml.safe_load((REPO / "configs/hacl/tiny.yaml").read_text())["data"]
    for path in [*data["train"], data["images"]]:
        assert path.startswith("runs/world/"), path
        assert (smoke_world / path.removeprefix("runs/world/")).exists(), path


def test_chair_run_takes_the_world_images_and_prompts_from_its_question_file(
    smoke_world, default_tiny, tmp_path, monkeypatch
):
    from tether.models.adapter import VisionLanguageModel

    asked = []
    prompt_text = VisionLanguageModel.prompt_text

    def recording(self, question, with_image=True):
        asked.append(question)
        return prompt_text(self, question, with_image)

    monkeypatch.setattr(VisionLanguageModel, "prompt_text", recording)
    chair = smoke_world / "bench" / "chair"
    tether(
        "eval", "chair", "run", "--model", default_tiny, "--gt", chair / "gt_objects.json",
        "--synonyms", chair / "synonyms.txt", "--questions", chair / "questions.jsonl",
        "--images", smoke_world / "images", "--max-new-tokens", 2, "--out", tmp_path / "chair", "--no-progress",
    )  # fmt: skip
    n_images = len((chair / "questions.jsonl").read_text().splitlines())
    # every image is asked the world's prompt (`-v` logging may render the first prompt once more)
    assert set(asked) == {DETAIL_PROMPT} and len(asked) >= n_images
    results = json.loads((tmp_path / "chair" / "results.json").read_text())
    assert results["metrics"]["n"] == n_images


def test_rlhf_trainers_read_the_world_questions_and_answer_pairs(smoke_world, tmp_path):
    # PPO prompts: POPE questions (text, label) and QA records (question, answer) as they are
    pope = smoke_world / "bench" / "pope" / "world_pope_random.jsonl"
    questions = [json.loads(line) for line in pope.read_text().splitlines()]
    prompts = load_prompt_records(pope)
    assert [(p.image, p.prompt, p.answer) for p in prompts] == [
        (q["image"], q["text"], q["label"]) for q in questions
    ]
    qa = load_prompt_records(smoke_world / "text" / "train_qa.jsonl")
    assert qa[0].prompt.endswith("?") and qa[0].answer
    # the reward model: `tether data answer-pairs` output names its image in "images"
    pair = {"prompt": POPE_WORDINGS[0], "chosen": "Yes", "rejected": "No", "images": ["test_0.png"]}
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(pair) + "\n")
    (record,) = load_preference_records(path)
    assert (record.image, record.prompt, record.chosen, record.rejected) == (
        "test_0.png",
        *list(pair.values())[:3],
    )


def test_eval_amber_reads_the_world_generative_export(smoke_world):
    from tether.eval.amber import Amber

    amber = smoke_world / "bench" / "amber"
    benchmark = Amber()
    items = benchmark.load_items(amber / "query_generative.json", annotations=amber / "annotations.json")
    # one true shape and the absent shape the bias predicts most: half of the nouns are hallucinated
    answers = {i.id: f"There is a {i.meta['truth'][0]} and a {i.meta['hallu'][0]}." for i in items}
    metrics = benchmark.score(items, answers).metrics
    assert metrics["generative/n"] == len(items) > 0
    # official AMBER adds 0.001 to each denominator (docs/evaluation.md), hence approx
    assert metrics["generative/chair"] == pytest.approx(0.5, abs=1e-4)
    assert metrics["generative/hal"] == pytest.approx(1.0, abs=1e-4)


def test_the_world_vocabulary_is_world_words_plus_any_other_word_of_the_folder(smoke_world, tmp_path):
    from tether.world.show import world_vocabulary
    from tether.world.texts import world_words

    assert world_vocabulary(smoke_world) == world_words()  # the built world says nothing beyond its templates
    (tmp_path / "world.json").write_text("{}")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "train_captions.jsonl").write_text(
        '{"image": "zebra_0.png", "caption": "A zebra."}\n'
    )
    (tmp_path / "bench" / "mmhal").mkdir(parents=True)
    (tmp_path / "bench" / "mmhal" / "m.json").write_text('[{"question": "What is the okapi?"}]')
    assert world_vocabulary(tmp_path) == world_words() + ["okapi", "zebra"]
