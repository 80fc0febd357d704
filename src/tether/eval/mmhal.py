"""MMHal-Bench: 96 questions in 8 types, each response rated 0-6 by a text-only LLM judge.

Parsing follows the official ``eval_gpt4.py``: the lower-cased reply must contain exactly one of
"rating: 0" ... "rating: 6"; none or several gives 0. Hallucination rate = share of ratings below 3.
Judge replies are matched to questions by position (the official script assumes the template order);
the type of each question is the template's ``question_type`` (in the official template, position mod 8).
"""

from pathlib import PurePosixPath

from tether.core.errors import DataError, TetherError
from tether.core.io import SkipLog, read_json, read_records, require_fields
from tether.eval.benchmark import Benchmark, EvalItem, FileScore, Score, require_answers, safe_div

QUESTION_TYPES = (
    "attribute",
    "adversarial",
    "comparison",
    "counting",
    "relation",
    "environment",
    "holistic",
    "other",
)


def parse_mmhal_rating(reply: str) -> int:
    """Official rule: exactly one "rating: k" (k in 0..6, case-insensitive) gives k; otherwise 0."""
    found = [k for k in range(7) if f"rating: {k}" in reply.lower()]
    return found[0] if len(found) == 1 else 0


def mmhal_metrics(records: list[dict]) -> dict[str, float]:
    ratings = [r["rating"] for r in records]
    metrics = {
        "average_score": safe_div(sum(ratings), len(ratings)),
        "hallucination_rate": safe_div(sum(1 for s in ratings if s < 3), len(ratings)),
        "n": len(ratings),
    }
    for question_type in QUESTION_TYPES + tuple(sorted({r["type"] for r in records} - set(QUESTION_TYPES))):
        of_type = [r["rating"] for r in records if r["type"] == question_type]
        if of_type:
            metrics[f"{question_type}/average_score"] = sum(of_type) / len(of_type)
    return metrics


class MmhalBench(Benchmark):
    name = "mmhal"
    description = "MMHal-Bench, rated 0-6 by an LLM judge"
    record_metrics = staticmethod(mmhal_metrics)
    lower_is_better = ("hallucination_rate",)
    needs_judge = True

    def add_options(self, parser, *, run: bool) -> None:
        parser.add_argument(
            "--template",
            "--data",
            dest="data",
            required=True,
            help="MMHal-Bench template (mmhal-bench_answer_template.json or a response file)",
        )
        if not run:
            parser.add_argument(
                "--judge-output",
                required=True,
                help="judge replies in template order: JSON list of chat-completion objects or strings",
            )
            parser.add_argument(
                "--responses", help="the judged model responses (template shape), kept in samples.jsonl"
            )

    def score_files(self, args, skips: SkipLog) -> FileScore:
        items = self.load_items(args.data)
        responses = read_mmhal_responses(args.responses) if args.responses else None
        score = score_replies(items, read_judge_replies(args.judge_output), responses)
        judge = {"name": read_judge_model(args.judge_output), "replies": str(args.judge_output)}
        return FileScore(score, args.data, judge)

    def load_items(self, data_path, **_) -> list[EvalItem]:
        """Load the official template (or a response file of the same shape); ids are positions 0..95."""
        items = []
        for line, record in read_records(data_path):
            for name in ("question_type", "image_content", "question", "gt_answer"):
                if name not in record:
                    raise DataError(f"missing field '{name}'", data_path, line)
            require_fields(record, {"question": str, "gt_answer": str}, data_path, line)
            image = record.get("image") or record.get("image_src")
            if isinstance(image, str) and not record.get("image"):
                image = PurePosixPath(image).name  # the template's image_src URL: its file name
            if not isinstance(image, str) or not image:
                raise DataError("missing 'image_src' or 'image'", data_path, line)
            items.append(
                EvalItem(
                    id=str(line - 1),
                    image=image,
                    prompt=record["question"],
                    kind="free",
                    meta={
                        key: record[key]
                        for key in ("question_type", "image_content", "question", "gt_answer")
                    },
                )
            )
        return items

    def score(self, items: list[EvalItem], answers: dict[str, str], judge=None) -> Score:
        """Ask ``judge`` to rate each answer, then score the replies."""
        if judge is None:
            raise TetherError(
                "MMHal-Bench needs a judge (or score existing judge replies with score_replies)"
            )
        require_answers(items, answers)
        replies = [judge.mmhal(item, answers[item.id]) for item in items]
        return score_replies(items, replies, answers)


def score_replies(items: list[EvalItem], replies: list[str], answers: dict[str, str] | None = None) -> Score:
    """Score judge replies given in question order (the official judge-output file's order)."""
    if len(replies) != len(items):
        raise TetherError(f"{len(replies)} judge replies for {len(items)} questions")
    records = []
    for item, reply in zip(items, replies):
        found = [k for k in range(7) if f"rating: {k}" in reply.lower()]
        records.append(
            {
                "id": item.id,
                "type": item.meta["question_type"],
                "answer": (answers or {}).get(item.id),
                "judge_reply": reply,
                "parsed": found,
                "rating": parse_mmhal_rating(reply),
            }
        )
    unparsed = sum(1 for r in records if len(r["parsed"]) != 1)
    return Score(
        metrics=mmhal_metrics(records),
        per_sample=records,
        metrics_fn=mmhal_metrics,
        notes={"replies_without_exactly_one_rating": unparsed},
    )


def read_judge_replies(path) -> list[str]:
    """Read a judge-output file: a JSON list of chat-completion objects (or of plain strings), in order."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError("expected a JSON list of judge replies", path)
    replies = []
    for n, entry in enumerate(data, start=1):
        if isinstance(entry, str):
            replies.append(entry)
            continue
        try:
            replies.append(entry["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            raise DataError(f"item {n} is not a chat completion (choices[0].message.content)", path) from None
    return replies


def read_judge_model(path) -> str | None:
    """The judge model named in a judge-output file's chat completions (None for plain strings)."""
    models = {entry.get("model") for entry in read_json(path) if isinstance(entry, dict)} - {None}
    return ", ".join(sorted(models)) or None


def read_mmhal_responses(path) -> dict[str, str]:
    """Model answers from a response file in template shape (``model_answer`` per question, in order)."""
    answers = {}
    for line, record in read_records(path):
        if not isinstance(record.get("model_answer"), str):
            raise DataError("missing field 'model_answer'", path, line)
        answers[str(line - 1)] = record["model_answer"]
    return answers
