"""SHR (sentence-level hallucination ratio, HA-DPO): a judge labels each sentence of a description.

Follows HA-DPO's ``shr_eval``: the description is split on '.', stripped, and a sentence that repeats
(or is contained in) an earlier one is dropped; the judge sees them numbered. Its reply must contain a
"Judgement:" line followed by one line per sentence ("1. hallucination: reason"); the label is the text
before the first ':' with the number dropped. If the number of labels differs from the number of
sentences, the image's sentences stay unlabelled (the official behaviour): they count in
``sents_per_image`` but in no ratio, and the image counts in the per-image averages, as does an image
whose description has no sentence; ``misaligned_images`` counts them. ``corrected`` drops both kinds of
image from the averages instead. A reply without a "Judgement:" line (the official script crashes on
it) counts as misaligned. SHR = hallucinated / (hallucination + correct + cannot judge), pooled over
sentences.

Items (tether's format, JSONL one per image): ``{"image_id", "image", "prompt", "facts": [region
descriptions], "factual": [optional extra facts]}``.
"""

from tether.core.errors import DataError, TetherError
from tether.core.io import SkipLog, read_records
from tether.core.text import split_sentences
from tether.eval.benchmark import (
    Benchmark,
    EvalItem,
    FileScore,
    Score,
    answers_by_id,
    check_unique_ids,
    read_answer_lines,
    require_answers,
    safe_div,
)

LABELS = ("hallucination", "correct", "cannot judge")


def numbered_sentences(description: str) -> str:
    """The sentences as the judge sees them: ``1. first\\n2. second\\n``."""
    return "".join(f"{n}. {s}\n" for n, s in enumerate(split_sentences(description), start=1))


def parse_shr_judgement(reply: str, n_sentences: int) -> list[str] | None:
    """One label per sentence, or None when the reply does not align (no "Judgement:", wrong count)."""
    lines = [line for line in reply.split("\n") if line]
    start = next((i for i, line in enumerate(lines) if "Judgement:" in line), None)
    if start is None:
        return None
    entries = [" ".join(line.split(" ")[1:]).strip() for line in lines[start + 1 :]]
    labels = [entry.split(":")[0].lower() for entry in entries if entry]
    return labels if len(labels) == n_sentences else None


def shr_metrics(records: list[dict]) -> dict[str, float]:
    """Ratios pooled over sentences whose label is one of the three known ones; per-image averages over
    every image with a record (an image without sentences has one record with no sentence)."""
    judged = [r for r in records if r["label"] in LABELS]
    hallucinated = [r for r in judged if r["label"] == "hallucination"]
    images = {r["image_id"] for r in records}
    sentences = [r for r in records if r["sentence"] is not None]
    return {
        "shr": safe_div(len(hallucinated), len(judged)),
        "hal_words_ratio": safe_div(sum(r["words"] for r in hallucinated), sum(r["words"] for r in judged)),
        "hal_sents_per_image": safe_div(len(hallucinated), len(images)),
        "sents_per_image": safe_div(len(sentences), len(images)),
        "n_sentences": len(judged),
        "n_images": len(images),
    }


class Shr(Benchmark):
    name = "shr"
    description = "SHR sentence-level hallucination ratio, labelled by an LLM judge"
    record_metrics = staticmethod(shr_metrics)
    cluster_key = "image_id"  # a description's sentences
    lower_is_better = ("shr",)
    needs_judge = True
    corrections = (
        "images whose judgement does not align with their sentences, or without a sentence, are left "
        "out of the per-image averages",
    )

    def load_items(self, data_path, **_) -> list[EvalItem]:
        items = []
        for line, record in read_records(data_path):
            for name, kind in (("image_id", (str, int)), ("image", str), ("facts", list)):
                if not isinstance(record.get(name), kind):
                    raise DataError(f"missing or mistyped field '{name}'", data_path, line)
            for name, kind in (("prompt", str), ("factual", list)):  # optional, typed where given
                if name in record and not isinstance(record[name], kind):
                    raise DataError(f"mistyped field '{name}' (expected {kind.__name__})", data_path, line)
            if not all(isinstance(fact, str) for fact in record["facts"]):
                raise DataError("field 'facts' must list texts", data_path, line)
            items.append(
                EvalItem(
                    id=str(record["image_id"]),
                    image=record["image"],
                    prompt=record.get("prompt", "Describe this image in detail."),
                    kind="free",
                    meta={"facts": record["facts"], "factual": record.get("factual", [])},
                )
            )
        check_unique_ids(items, data_path)
        return items

    def add_options(self, parser, *, run: bool) -> None:
        parser.add_argument(
            "--items",
            "--data",
            dest="data",
            required=True,
            help='SHR items JSONL: {"image_id", "image", "prompt", "facts": [...]}',
        )
        if not run:
            parser.add_argument("--answers", required=True, help="descriptions: JSONL with image_id and text")
            parser.add_argument(
                "--judge-output", required=True, help="judge replies: JSONL with image_id and text"
            )

    def score_files(self, args, skips: SkipLog) -> FileScore:
        items = self.load_items(args.data)
        lines = read_answer_lines(args.answers, skip_invalid=args.skip_invalid, skips=skips)
        answers = answers_by_id(lines, args.answers)
        replies = answers_by_id(read_answer_lines(args.judge_output), args.judge_output)
        score = score_judgements(items, answers, replies, corrected=self.corrected)
        return FileScore(score, args.data, {"name": None, "replies": str(args.judge_output)})

    def score(self, items: list[EvalItem], answers: dict[str, str], judge=None) -> Score:
        """Ask ``judge`` about each description, then score the replies."""
        if judge is None:
            raise TetherError("SHR needs a judge (or score existing judge replies with score_judgements)")
        require_answers(items, answers)
        replies = {item.id: judge.shr(item, answers[item.id]) for item in items}
        return score_judgements(items, answers, replies, corrected=self.corrected)


def score_judgements(
    items: list[EvalItem], answers: dict[str, str], replies: dict[str, str], corrected: bool = False
) -> Score:
    """Score judge replies keyed by image id, as HA-DPO's ``get_metric`` (``corrected``: see Shr)."""
    records, misaligned = [], []
    for item in items:
        if item.id not in replies:
            raise TetherError(f"no judge reply for image '{item.id}'")
        sentences = split_sentences(answers[item.id])
        labels = parse_shr_judgement(replies[item.id], len(sentences))
        if labels is None or not sentences:
            misaligned.append(item.id)
            if corrected:
                continue
        if not sentences:  # the image still counts in the per-image averages
            records.append({"id": f"{item.id}#0", "image_id": item.id, "sentence": None, "label": None})
        for n, (sentence, label) in enumerate(zip(sentences, labels or [None] * len(sentences)), start=1):
            records.append(
                {
                    "id": f"{item.id}#{n}",
                    "image_id": item.id,
                    "sentence": sentence,
                    "label": label,
                    "words": len((sentence + ".").split(" ")),
                }
            )
    return Score(
        metrics=shr_metrics(records),
        per_sample=records,
        metrics_fn=shr_metrics,
        cluster_key="image_id",
        notes={"misaligned_images": len(misaligned), "misaligned_ids": misaligned[:20]},
    )
