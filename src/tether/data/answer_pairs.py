"""Preference pairs from yes/no questions with known answers: the second half of HA-DPO's data.

HA-DPO released two pair files: ``desc_data`` (corrected detailed descriptions, ``tether.data.pairs``) and
``pope_data`` (POPE-style existence questions). This builds the second kind from the model itself: it
answers every question (greedy); a wrong answer is a hallucination the model actually makes, and becomes
the pair (true answer, the other answer), both as the bare words "Yes"/"No".

A model that hallucinates errs one way (it says "yes" to absent objects that usually come with present
ones), so the wrong answers alone nearly all prefer "No", and DPO on those teaches the prior ("say no more
often"), not to look. ``balance`` (default) adds pairs for questions the model answered correctly, from the
short side, until as many pairs prefer "Yes" as prefer "No"; that helped POPE from one baseline, but from
others DPO moved the yes/no bias: the wrong answers are the hard "no" questions, the balancing ones easy
"yes" questions, and DPO learns the difference. The figures: docs/results/notes-from-code.md.
``select: all`` pairs every question (the true answer against the other; the short side repeated when
balancing); in the world study (with HA-DPO's SFT term) it raised POPE-random and POPE-adversarial F1 on
each of six baselines (docs/pairs.md, docs/results). ``wrong`` stays the default: it is HA-DPO's data.

Questions: a JSONL/JSON list in POPE's fields (``image``, ``text``, ``label`` yes|no) or tether's
(``image``, ``question``, ``answer``), an ``image_id`` or ``question_id`` optional.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from tether.core.errors import DataError
from tether.core.images import open_image
from tether.core.io import SkipLog, parse_records, require_fields, write_jsonl
from tether.decoding.yes_no import fast_yes_no
from tether.eval.concurrent import completed
from tether.eval.pope import parse_pope_answer
from tether.models.decoding import DecodingSettings

SOURCE = "tether data answer-pairs"


@dataclass
class YesNoQuestion:
    image: str  # path under the images root
    question: str
    answer: str  # "yes" | "no"
    source: str  # the questions file and line, for errors about the image
    line: int


@dataclass
class AnswerPairSettings:
    select: str = "wrong"  # "wrong": the questions answered wrongly (HA-DPO's); "all": every question
    # until chosen "Yes" == chosen "No": with "wrong", add correctly answered questions; with "all", repeat
    # the short side's questions
    balance: bool = True
    seed: int = 0  # which correct answers balance draws
    mode: str = "fast"  # fast: yes/no from the first answer token's logits (hf); generate: decode and parse
    max_new_tokens: int = 8  # generate mode


def load_yes_no_questions(
    path, skip_invalid: bool = False, skips: SkipLog | None = None, images=None, streaming: bool = False
):
    """Questions with their true yes/no answers (POPE's fields or tether's), errors naming file and line;
    with ``images`` (the root), a question whose image is missing is one of them."""

    def parse(record: dict, source, line: int) -> YesNoQuestion:
        if "text" in record:
            require_fields(record, {"image": str, "text": str, "label": str}, source, line)
            question, answer = record["text"], record["label"]
        else:
            require_fields(record, {"image": str, "question": str, "answer": str}, source, line)
            question, answer = record["question"], record["answer"]
        answer = answer.strip().lower().rstrip(".")
        if answer not in ("yes", "no"):
            raise DataError(f"answer must be yes or no, got {answer!r}", source, line)
        if not question.strip():
            raise DataError("empty question", source, line)
        return YesNoQuestion(record["image"], question, answer, str(source), line)

    return parse_records(
        path, parse, skip_invalid=skip_invalid, skips=skips, images=images, streaming=streaming
    )


def model_answers(
    vlm, questions: list[YesNoQuestion], images_root, settings: AnswerPairSettings, progress: bool = True
) -> list[str]:
    """The model's answer text to each question, the questions of one image asked together."""
    from tqdm.auto import tqdm

    if settings.mode not in ("fast", "generate"):
        raise DataError(f"unknown answer mode '{settings.mode}' (fast or generate)")
    by_image: dict[str, list[int]] = {}
    for index, q in enumerate(questions):
        by_image.setdefault(q.image, []).append(index)
    answers: list[str] = [""] * len(questions)
    decoding = DecodingSettings(max_new_tokens=settings.max_new_tokens, do_sample=False)
    if hasattr(vlm, "yes_no"):  # a served model (tether.eval.endpoint): one request per question
        return _endpoint_answers(vlm, questions, images_root, settings, decoding, progress)
    for image_file, indices in tqdm(by_image.items(), desc="answers", disable=not progress):
        first = questions[indices[0]]
        image = open_image(images_root, image_file, source=first.source, line=first.line)
        prompts = [questions[i].question for i in indices]
        if settings.mode == "fast":
            texts = fast_yes_no(vlm, image, prompts)
        else:
            texts = vlm.generate([image] * len(prompts), prompts, decoding)
        for i, text in zip(indices, texts):
            answers[i] = text
    return answers


def _endpoint_answers(endpoint, questions, images_root, settings, decoding, progress) -> list[str]:
    """Each question asked alone, ``endpoint.concurrency`` at a time; fast mode through the first token's
    logprobs (generation where the server has none)."""
    from tqdm.auto import tqdm

    def ask(index: int) -> str:
        q = questions[index]
        image = open_image(images_root, q.image, source=q.source, line=q.line)
        if settings.mode == "fast":
            return endpoint.yes_no(image, q.question, decoding)
        return endpoint.answer(image, q.question, decoding)

    answers = [""] * len(questions)
    with tqdm(total=len(questions), desc="answers", disable=not progress) as bar:
        for index, text in completed(ask, range(len(questions)), endpoint.concurrency):
            answers[index] = text
            bar.update(1)
    return answers


def answer_pairs(
    questions: list[YesNoQuestion], answers: list[str], settings: AnswerPairSettings, model: str | None = None
) -> tuple[list[dict], dict]:
    """Pairs (the selected questions, plus the balancing ones) and their counts."""
    if settings.select not in ("wrong", "all"):
        raise DataError(f"unknown answer-pair selection '{settings.select}' (wrong or all)")
    wrong, right = [], []
    for q, text in zip(questions, answers):
        (right if parse_pope_answer(text) == q.answer else wrong).append((q, text))
    selected = [(q, text, False) for q, text in wrong]
    if settings.select == "all":
        selected += [(q, text, True) for q, text in right]
    extra = _balancing(selected, right, settings) if settings.balance else []

    def pair(q: YesNoQuestion, text: str, correct: bool) -> dict:
        truth = q.answer.capitalize()
        return {
            "prompt": q.question,
            "chosen": truth,
            # the other answer, as a bare word like the chosen one (a generated sentence against a bare word
            # would teach length and style too); the model's own text is in the provenance
            "rejected": "No" if q.answer == "yes" else "Yes",
            "images": [q.image],
            "provenance": {
                "source": SOURCE,
                "model": model,
                "model_answer": text,
                "model_correct": correct,
                "settings": asdict(settings),
            },
        }

    pairs = [pair(q, text, correct) for q, text, correct in selected + extra]
    pairs.sort(key=lambda p: (p["images"][0], p["prompt"]))
    counts = {
        "questions": len(questions),
        "wrong": len(wrong),
        "wrong_chosen_yes": sum(q.answer == "yes" for q, _ in wrong),
        "selected": len(selected),
        "balancing": len(extra),
        "pairs": len(pairs),
        "chosen_yes": sum(p["chosen"] == "Yes" for p in pairs),
    }
    return pairs, counts


def _balancing(selected: list, right: list, settings: AnswerPairSettings) -> list:
    """Extra pairs from the short side (chosen "Yes" or "No") until both sides are equal.

    For ``wrong``, correctly answered questions of the short side (as many as there are); for ``all`` every
    question is already in, so the short side's questions are drawn again (without replacement per round).
    """
    chosen_yes = sum(q.answer == "yes" for q, _, _ in selected)
    needed = abs(len(selected) - 2 * chosen_yes)
    short_side = "yes" if 2 * chosen_yes < len(selected) else "no"
    rng = random.Random(settings.seed)
    if settings.select == "wrong":
        pool = [(q, text, True) for q, text in right if q.answer == short_side]
        return rng.sample(pool, min(needed, len(pool)))
    pool = [item for item in selected if item[0].answer == short_side]
    extra = []
    while pool and len(extra) < needed:
        extra += rng.sample(pool, min(needed - len(extra), len(pool)))
    return extra


def build_answer_pairs(
    vlm, questions, images_root, out_path, settings: AnswerPairSettings | None = None, progress: bool = True
) -> dict:
    """Answer ``questions`` with ``vlm``, write the pairs to ``out_path`` (atomically), return the counts.

    One forward per image in fast mode, so the file is written whole at the end rather than resumed.
    """
    settings = settings or AnswerPairSettings()
    answers = model_answers(vlm, questions, images_root, settings, progress)
    pairs, counts = answer_pairs(questions, answers, settings, model=getattr(vlm, "path", None))
    write_jsonl(out_path, pairs)
    return counts
