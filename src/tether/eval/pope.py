"""POPE: yes/no object probing (random / popular / adversarial splits).

Parsing and metrics follow the official scorers (POPE ``evaluate.py``, LLaVA ``eval_pope.py``):
keep the text before the first '.', drop commas, split on single spaces; the reply is "no" when a
word equals "No", "no" or "not", otherwise "yes". "yes" is the positive class.

Question files come in two shapes: POPE's own (``label`` per line, one split per file, JSON list or
JSONL; two versions in use: v2023-08 and the current 3000-question files) and LLaVA's combined
``llava_pope_test.jsonl`` (a ``category`` per line, no labels). For the combined file the labels come
from the split files and are matched to the questions by line order within each category, exactly
as LLaVA's ``eval_pope.py`` does; tether checks that each pair asks the same question, so a file of
the wrong version fails loudly instead of scoring nonsense.
"""

from pathlib import Path

from tether.core.errors import DataError, TetherError
from tether.core.io import SkipLog, read_records, require_fields
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

SPLITS = ("random", "popular", "adversarial")
NO_WORDS = ("No", "no", "not")


def parse_pope_answer(text: str) -> str:
    """Official POPE rule: "no" if the first sentence, commas removed, has the word No/no/not."""
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if any(word in NO_WORDS for word in words) else "yes"


def pope_metrics(records: list[dict]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (yes = positive), yes-ratio and the confusion counts."""
    tp = sum(1 for r in records if r["parsed"] == "yes" and r["label"] == "yes")
    fp = sum(1 for r in records if r["parsed"] == "yes" and r["label"] == "no")
    tn = sum(1 for r in records if r["parsed"] == "no" and r["label"] == "no")
    fn = sum(1 for r in records if r["parsed"] == "no" and r["label"] == "yes")
    n = len(records)
    precision = safe_div(tp, tp + fp)
    recall = safe_div(tp, tp + fn)
    return {
        "accuracy": safe_div(tp + tn, n),
        "precision": precision,
        "recall": recall,
        "f1": safe_div(2 * precision * recall, precision + recall),
        "yes_ratio": safe_div(tp + fp, n),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "n": n,
    }


def pope_split_metrics(records: list[dict]) -> dict[str, float]:
    """One split: the plain metric names; several: ``<split>/<metric>`` plus ``f1_mean`` over splits."""
    categories = sorted({r["category"] for r in records}, key=_split_order)
    if len(categories) <= 1:
        return pope_metrics(records)
    metrics: dict[str, float] = {}
    for category in categories:
        for name, value in pope_metrics([r for r in records if r["category"] == category]).items():
            metrics[f"{category}/{name}"] = value
    metrics["f1_mean"] = sum(metrics[f"{c}/f1"] for c in categories) / len(categories)
    metrics["accuracy_mean"] = sum(metrics[f"{c}/accuracy"] for c in categories) / len(categories)
    return metrics


def _split_order(category: str):
    return (SPLITS.index(category) if category in SPLITS else len(SPLITS), category)


class Pope(Benchmark):
    name = "pope"
    description = "POPE yes/no object probing (random/popular/adversarial)"
    record_metrics = staticmethod(pope_split_metrics)
    no_direction = ("yes_ratio",)

    def add_options(self, parser, *, run: bool) -> None:
        parser.add_argument(
            "--questions",
            "--data",
            dest="data",
            required=True,
            nargs="+" if run else None,
            help="POPE question file (coco_pope_<split>[_v2023-08].jsonl, or LLaVA's llava_pope_test.jsonl)"
            + ("; give several split files to run all splits at once (scores per split and their means)"
               if run else ""),
        )  # fmt: skip
        parser.add_argument(
            "--labels",
            action="append",
            default=[],
            metavar="SPLIT=FILE",
            help="for LLaVA's combined file: the labelled split file of each category (repeatable)",
        )
        parser.add_argument("--category", help=f"keep one split of a combined file ({', '.join(SPLITS)})")
        if not run:
            parser.add_argument("--answers", required=True, help="JSONL with question_id and text (or answer)")
            parser.add_argument(
                "--match",
                choices=("order", "id"),
                default="order",
                help="pair answers with questions by line order within a split (official; default) or by "
                "question_id",
            )

    def items_from_args(self, args) -> list[EvalItem]:
        labels = {}
        for entry in args.labels:
            split, sep, path = entry.partition("=")
            if not sep:
                raise TetherError(f"--labels expects SPLIT=FILE, got '{entry}'")
            labels[split] = path
        if isinstance(args.data, list):  # `run` takes several split files
            return self.load_splits(args.data, labels=labels, category=args.category)
        return self.load_items(args.data, labels=labels, category=args.category)

    def score_files(self, args, skips: SkipLog) -> FileScore:
        items = self.items_from_args(args)
        by_order = args.match == "order"
        lines = read_answer_lines(
            args.answers, skip_invalid=args.skip_invalid, skips=skips, keep_skipped=by_order
        )
        notes = {}
        if by_order:
            answers, mismatched = align_answers_by_line_order(items, lines, args.answers)
            notes["answers_with_other_question_id"] = mismatched
            # A skipped answer line is skipped with the question it stands against.
            notes["skipped_questions"] = len(items) - len(answers)
            items = [item for item in items if item.id in answers]
        else:
            answers = answers_by_id(lines, args.answers)
        score = self.score(items, answers)
        score.notes.update(notes)
        return FileScore(score, args.data)

    def load_items(
        self, data_path, *, labels: dict[str, str] | None = None, category: str | None = None, **_
    ) -> list[EvalItem]:
        """Load a POPE question file.

        ``labels`` maps a category to its split file; it is required for LLaVA's combined file (whose
        lines carry ``category`` but no ``label``). ``category`` keeps one split of a combined file.
        """
        path = Path(data_path)
        items = []
        for line, record in read_records(path):
            require_fields(record, {"question_id": (str, int), "image": str, "text": str}, path, line)
            if "category" in record:
                require_fields(record, {"category": str}, path, line)
            split = record.get("category") or _split_from_name(path)
            if category is not None and split != category:
                continue
            meta = {
                "category": split,
                "line": line,
                "combined": "category" in record,
                "only_category": category,
            }
            if "label" in record:
                meta["label"] = _check_label(record["label"], path, line)
            items.append(
                EvalItem(
                    id=str(record["question_id"]),
                    image=record["image"],
                    prompt=record["text"],
                    kind="yesno",
                    meta=meta,
                )
            )
        if not items:
            raise DataError("no questions" + (f" of category '{category}'" if category else ""), path)
        check_unique_ids(items, path)
        unlabelled = [item for item in items if "label" not in item.meta]
        if unlabelled:
            if not labels:
                raise DataError(
                    "questions have no 'label' (LLaVA's combined file): give the split files with labels",
                    path,
                    unlabelled[0].meta["line"],
                )
            _attach_labels_by_line_order(unlabelled, labels, path)
        return items

    def load_splits(self, paths, **options) -> list[EvalItem]:
        """Several split files in one run (random, popular, adversarial): their items together, each id
        prefixed with its split (``adversarial/17``), since every split file numbers its questions from 1.
        Scores then come per split plus the means (``pope_split_metrics``)."""
        if len(paths) == 1:
            return self.load_items(paths[0], **options)
        items, seen = [], {}
        for path in paths:
            split_items = self.load_items(path, **options)
            for split in {item.meta["category"] for item in split_items}:
                if split in seen:
                    raise DataError(f"split '{split}' is already given by {seen[split]}", path)
                seen[split] = path
            for item in split_items:
                item.id = f"{item.meta['category']}/{item.id}"
            items += split_items
        return items

    def score(self, items: list[EvalItem], answers: dict[str, str], judge=None) -> Score:
        require_answers(items, answers)
        records = [
            {
                "id": item.id,
                "category": item.meta["category"],
                "answer": answers[item.id],
                "parsed": parse_pope_answer(answers[item.id]),
                "label": item.meta["label"],
            }
            for item in items
        ]
        for record in records:
            record["correct"] = record["parsed"] == record["label"]
        return Score(metrics=pope_split_metrics(records), per_sample=records, metrics_fn=pope_split_metrics)


def _check_label(label, path, line: int) -> str:
    if label not in ("yes", "no"):
        raise DataError(f"unknown label {label!r} (expected 'yes' or 'no')", path, line)
    return label


def _split_from_name(path: Path) -> str:
    """``coco_pope_random_v2023-08.jsonl`` -> ``random``; unknown names keep the file stem."""
    for split in SPLITS:
        if f"_{split}" in path.stem:
            return split
    return path.stem


def _attach_labels_by_line_order(items: list[EvalItem], labels: dict[str, str], questions_path) -> None:
    by_category: dict[str, list[EvalItem]] = {}
    for item in items:
        by_category.setdefault(item.meta["category"], []).append(item)
    for category, group in by_category.items():
        if category not in labels:
            raise DataError(f"no label file given for category '{category}'", questions_path)
        label_path = Path(labels[category])
        label_lines = read_records(label_path)
        if len(label_lines) != len(group):
            raise DataError(
                f"{len(label_lines)} labelled questions but {len(group)} questions of category "
                f"'{category}' in {questions_path} (another POPE version?)",
                label_path,
            )
        for item, (line, record) in zip(group, label_lines):
            require_fields(record, {"label": str, "text": str}, label_path, line)
            # LLaVA appends an instruction to the question; the question itself must be the same.
            if not item.prompt.startswith(record["text"]):
                raise DataError(
                    f"question differs from line {item.meta['line']} of {questions_path} "
                    f"({record['text']!r} vs {item.prompt!r}): not the file these questions were made from",
                    label_path,
                    line,
                )
            item.meta["label"] = _check_label(record["label"], label_path, line)


def align_answers_by_line_order(
    items: list[EvalItem], answer_lines, answers_path
) -> tuple[dict[str, str], int]:
    """Official matching: the k-th answer of a split is scored against the k-th question of that split.

    An answer's split is looked up by its id (as LLaVA's ``eval_pope.py`` does for the combined file);
    with a single-split question file every answer belongs to it. Returns the answers keyed by the id of
    the question they are scored against, and how many answers carried a different id than that question.
    A skipped answer line (``text`` None, from ``read_answer_lines(keep_skipped=True)``) keeps its place:
    its question is left out of the answers, to be skipped with it.
    """
    by_id = {item.id: item for item in items}
    categories = {item.meta["category"] for item in items}
    combined = items[0].meta.get("combined", False)
    # Answers to the other splits of a combined file, when one split was selected, are left out.
    filtered = combined and items[0].meta.get("only_category") is not None
    item_groups: dict[str, list[EvalItem]] = {}
    for item in items:
        item_groups.setdefault(item.meta["category"], []).append(item)
    answer_groups: dict[str, list] = {category: [] for category in item_groups}
    for answer in answer_lines:
        if not combined:
            answer_groups[next(iter(categories))].append(answer)
        elif answer.id in by_id:
            answer_groups[by_id[answer.id].meta["category"]].append(answer)
        elif answer.id is None:
            raise DataError(
                "a skipped answer without a question_id has no split to skip it in (use --match id)",
                answers_path,
                answer.line,
            )
        elif not filtered:
            raise DataError(f"answer for unknown question_id '{answer.id}'", answers_path, answer.line)
    answers: dict[str, str] = {}
    id_mismatches = 0
    for category, group in item_groups.items():
        got = answer_groups[category]
        if len(got) != len(group):
            where = got[len(group)].line if len(got) > len(group) else None
            raise DataError(
                f"{len(got)} answers but {len(group)} questions of category '{category}'", answers_path, where
            )
        for item, answer in zip(group, got):
            if answer.text is not None:
                answers[item.id] = answer.text
            id_mismatches += answer.id != item.id
    return answers, id_mismatches
