"""MME: yes/no question pairs per image, 10 perception and 4 cognition subtasks.

Parsing and scoring follow the official ``eval_tool/calculation.py``: the reply is lower-cased; "yes" or
"no" exactly, else the first 4 characters decide ("yes" in them -> yes, else "no" in them -> no, else
"other", which is always wrong). Subtask score = 100 * (accuracy + accuracy+), accuracy+ being the share
of pairs with both answers right; perception and cognition are sums of their subtask scores. Pairs are
consecutive questions of a subtask, in the order of the eval-tool file (or of the answers, which is the
order LLaVA's converter writes), as the official tool pairs them: an odd count is refused, as the
official tool refuses it. ``corrected`` groups the questions by image instead (an image with one
question is then scored).

Inputs: the official release layout (a folder per subtask with images and ``question\\tYes|No`` txt files,
flat or under ``questions_answers_YN/``), the official eval-tool layout (a folder of ``<subtask>.txt``
files with ``image\\tquestion\\tground truth\\tprediction``) and LLaVA's ``llava_mme.jsonl`` (no answer
key: within each image the first question's answer is "Yes", the second "No", which is how MME is
built and reproduces LLaVA's published figures exactly).
"""

from pathlib import Path

from tether.core.errors import DataError, TetherError
from tether.core.io import SkipLog, read_records, read_text_lines, require_fields
from tether.eval.benchmark import (
    Benchmark,
    EvalItem,
    FileScore,
    Score,
    check_unique_ids,
    read_answer_lines,
    require_answers,
    safe_div,
)

PERCEPTION = (
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
)
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def parse_mme_answer(text: str) -> str:
    """Official MME rule: exact yes/no, else look for "yes" then "no" in the first 4 characters."""
    text = text.lower()
    if text in ("yes", "no"):
        return text
    prefix = text[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def mme_metrics(records: list[dict]) -> dict[str, float]:
    """Per-subtask ``<subtask>/score`` (0-200), ``perception`` and ``cognition`` totals (subtasks present);
    accuracy+ over the records' ``pair`` groups."""
    by_subtask: dict[str, list[dict]] = {}
    for record in records:
        by_subtask.setdefault(record["subtask"], []).append(record)
    metrics: dict[str, float] = {}
    for subtask, group in by_subtask.items():
        images: dict[str, list[bool]] = {}
        for record in group:
            images.setdefault(record["pair"], []).append(record["correct"])
        accuracy = safe_div(sum(r["correct"] for r in group), len(group))
        accuracy_plus = safe_div(sum(all(v) for v in images.values()), len(images))
        metrics[f"{subtask}/accuracy"] = accuracy
        metrics[f"{subtask}/accuracy_plus"] = accuracy_plus
        metrics[f"{subtask}/score"] = 100 * (accuracy + accuracy_plus)
    metrics["perception"] = sum(metrics.get(f"{s}/score", 0.0) for s in PERCEPTION)
    metrics["cognition"] = sum(metrics.get(f"{s}/score", 0.0) for s in COGNITION)
    metrics["total"] = metrics["perception"] + metrics["cognition"]
    return metrics


class Mme(Benchmark):
    name = "mme"
    description = "MME perception and cognition yes/no pairs"
    record_metrics = staticmethod(mme_metrics)
    cluster_key = "pair"  # an image's two questions
    corrections = ("accuracy+ over each image's questions instead of consecutive pairs of lines",)

    def load_items(self, data_path, **_) -> list[EvalItem]:
        """Load ``llava_mme.jsonl``, the release folder or the eval-tool folder (predictions ignored here)."""
        path = Path(data_path)
        if path.is_dir():
            if _is_eval_tool_layout(path):
                items, _ = load_eval_tool(path)
                return items
            return _load_release(path)
        return _load_llava_jsonl(path)

    def add_options(self, parser, *, run: bool) -> None:
        data_help = "llava_mme.jsonl or the MME release folder"
        if run:
            parser.add_argument("--questions", "--data", dest="data", required=True, help=data_help)
            return
        parser.add_argument("--questions", "--data", dest="data", help=data_help)
        parser.add_argument("--answers", help="JSONL with question_id, text (and prompt), LLaVA style")
        parser.add_argument(
            "--eval-tool", help="folder of <subtask>.txt files: image, question, ground truth, prediction"
        )

    def score_files(self, args, skips: SkipLog) -> FileScore:
        if args.eval_tool:
            items, answers = load_eval_tool(args.eval_tool)
            return FileScore(self.score(items, answers), args.eval_tool)
        if not (args.data and args.answers):
            raise TetherError("give --eval-tool DIR, or --questions and --answers")
        items = self.load_items(args.data)
        lines = read_answer_lines(args.answers, skip_invalid=args.skip_invalid, skips=skips)
        return FileScore(self.score(items, align_mme_answers(items, lines, args.answers)), args.data)

    def score(self, items: list[EvalItem], answers: dict[str, str], judge=None) -> Score:
        require_answers(items, answers)
        by_id = {item.id: item for item in items}
        ordered = [by_id[item_id] for item_id in answers if item_id in by_id]
        pairs = _image_pairs(ordered) if self.corrected else _consecutive_pairs(ordered)
        records = []
        for item, pair in zip(ordered, pairs):
            parsed = parse_mme_answer(answers[item.id])
            records.append(
                {
                    "id": item.id,
                    "subtask": item.meta["subtask"],
                    "pair": pair,
                    "answer": answers[item.id],
                    "parsed": parsed,
                    "label": item.meta["label"],
                    "correct": parsed == item.meta["label"],
                }
            )
        return Score(
            metrics=mme_metrics(records), per_sample=records, metrics_fn=mme_metrics, cluster_key="pair"
        )


def _image_pairs(items: list[EvalItem]) -> list[str]:
    return [f"{item.meta['subtask']}/{item.image}" for item in items]


def _consecutive_pairs(items: list[EvalItem]) -> list[str]:
    """The official pairing: lines 1-2, 3-4, ... of each subtask; an odd count stops the official tool."""
    position: dict[str, int] = {}
    pairs = []
    for item in items:
        subtask = item.meta["subtask"]
        k = position[subtask] = position.get(subtask, -1) + 1
        pairs.append(f"{subtask}/pair{k // 2}")
    for subtask, last in position.items():
        if last % 2 == 0:
            item = [i for i in items if i.meta["subtask"] == subtask][-1]
            raise DataError(
                f"subtask '{subtask}' has an odd number of questions ({last + 1}): the official tool pairs "
                "consecutive questions and refuses this (an image with one question?); --corrected "
                "groups questions by image",
                item.meta.get("file"),
                item.meta.get("line"),
            )
    return pairs


def occurrence_ids(raw_ids: list[str]) -> list[str]:
    """MME repeats a question id per image (two questions); the k-th occurrence becomes ``id#k``."""
    seen: dict[str, int] = {}
    out = []
    for raw in raw_ids:
        seen[raw] = seen.get(raw, 0) + 1
        out.append(f"{raw}#{seen[raw]}")
    return out


def _load_llava_jsonl(path: Path) -> list[EvalItem]:
    lines = read_records(path)
    for line, record in lines:
        require_fields(
            record, {"question_id": (str, int), "image": str, "text": str, "category": str}, path, line
        )
    ids = occurrence_ids([str(record["question_id"]) for _, record in lines])
    items = []
    for item_id, (line, record) in zip(ids, lines):
        # No answer key ships with LLaVA's file: MME asks a "Yes" question first, then a "No" one.
        occurrence = int(item_id.rsplit("#", 1)[1])
        if occurrence > 2:
            raise DataError(f"image '{record['question_id']}' has more than two questions", path, line)
        items.append(
            EvalItem(
                id=item_id,
                image=record["image"],
                prompt=record["text"],
                kind="yesno",
                meta={
                    "subtask": record["category"],
                    "label": "yes" if occurrence == 1 else "no",
                    "file": str(path),
                    "line": line,
                },
            )
        )
    return items


def _is_eval_tool_layout(path: Path) -> bool:
    names = {p.stem for p in path.glob("*.txt")}
    return bool(names & set(PERCEPTION + COGNITION))


def load_eval_tool(folder) -> tuple[list[EvalItem], dict[str, str]]:
    """Read the official eval-tool folder: items and the predictions it holds, keyed alike."""
    folder = Path(folder)
    items, answers = [], {}
    for txt in sorted(folder.glob("*.txt")):
        subtask = txt.stem
        rows = []
        for line_no, raw in enumerate(_official_lines(txt), start=1):
            if not raw.strip():
                continue
            parts = raw.split("\t")
            if len(parts) != 4:
                raise DataError(f"expected 4 tab-separated fields, got {len(parts)}", txt, line_no)
            rows.append((line_no, parts))
        ids = occurrence_ids([f"{subtask}/{parts[0]}" for _, parts in rows])
        for item_id, (line_no, (image, question, truth, prediction)) in zip(ids, rows):
            label = _label(truth, txt, line_no)
            items.append(
                EvalItem(
                    id=item_id,
                    image=f"{subtask}/{image}",
                    prompt=question,
                    kind="yesno",
                    meta={"subtask": subtask, "label": label, "file": str(txt), "line": line_no},
                )
            )
            answers[item_id] = prediction
    if not items:
        raise DataError("no MME subtask txt files found", folder)
    return items, answers


def _official_lines(path: Path) -> list[str]:
    """Lines as the official tool's ``readlines()`` gives them: split on line ends only (\\n, \\r\\n,
    \\r), not on the other Unicode separators (U+2028, U+0085, form feed) that ``splitlines`` uses."""
    lines = read_text_lines(path, line_ends_only=True)
    return lines[:-1] if lines and lines[-1] == "" else lines


def _load_release(root: Path) -> list[EvalItem]:
    items = []
    for subtask_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        subtask = subtask_dir.name
        qa_dir = subtask_dir / "questions_answers_YN"
        image_dir = subtask_dir / "images" if (subtask_dir / "images").is_dir() else subtask_dir
        txt_files = sorted((qa_dir if qa_dir.is_dir() else subtask_dir).glob("*.txt"))
        for txt in txt_files:
            image = next(
                (image_dir / (txt.stem + s) for s in IMAGE_SUFFIXES if (image_dir / (txt.stem + s)).exists()),
                None,
            )
            if image is None:
                raise DataError("no image with this name", txt)
            for line_no, raw in enumerate(_official_lines(txt), start=1):
                if not raw.strip():
                    continue
                parts = raw.split("\t")
                if len(parts) != 2:
                    raise DataError(f"expected 'question<TAB>Yes|No', got {len(parts)} fields", txt, line_no)
                relative = image.relative_to(root).as_posix()
                items.append(
                    EvalItem(
                        id=f"{relative}#{line_no}",
                        image=relative,
                        prompt=parts[0],
                        kind="yesno",
                        meta={
                            "subtask": subtask,
                            "label": _label(parts[1], txt, line_no),
                            "file": str(txt),
                            "line": line_no,
                        },
                    )
                )
    if not items:
        raise DataError("no MME subtask folders with question files found", root)
    check_unique_ids(items, root)
    return items


def _label(text: str, path, line: int) -> str:
    label = text.strip().lower()
    if label not in ("yes", "no"):
        raise DataError(f"unknown ground truth {text!r} (expected Yes or No)", path, line)
    return label


def align_mme_answers(items: list[EvalItem], answer_lines, answers_path) -> dict[str, str]:
    """Key LLaVA-style MME answers like the items, in the answers' order (the order the official chain
    scores them in). An answer that carries its question (``prompt``) is matched to the question of its
    image with that text, as LLaVA's ``convert_answer_to_mme.py`` matches it to the answer key; one
    without is the k-th question of its image for the k-th answer with its ``question_id``."""
    by_image: dict[str, list[EvalItem]] = {}
    for item in items:
        by_image.setdefault(item.id.rsplit("#", 1)[0], []).append(item)
    answers: dict[str, str] = {}
    seen: dict[str, int] = {}
    for answer in answer_lines:
        questions = by_image.get(answer.id)
        if questions is None:
            raise DataError(f"answer for unknown question '{answer.id}'", answers_path, answer.line)
        seen[answer.id] = seen.get(answer.id, 0) + 1
        prompt = answer.record.get("prompt")
        if isinstance(prompt, str):
            matches = [q for q in questions if q.prompt == prompt]
            if not matches:
                raise DataError(
                    f"answer's prompt is none of the questions of image '{answer.id}'", answers_path, answer.line
                )
        else:
            matches = questions[seen[answer.id] - 1 : seen[answer.id]]
            if not matches:
                raise DataError(f"more answers than questions for '{answer.id}'", answers_path, answer.line)
        question = matches[0]
        if question.id in answers:
            raise DataError(f"second answer to question '{question.id}'", answers_path, answer.line)
        answers[question.id] = answer.text
    return answers
