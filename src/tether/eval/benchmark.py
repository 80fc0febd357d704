"""What every benchmark unit shares: the item a model sees, the score a scorer returns, answer files.

A benchmark is one module with one ``Benchmark`` subclass, registered by name in ``registry.py``. The class
owns its whole surface:

- ``add_options(parser, run=...)``: its own options of ``tether eval <name> run|score`` (question files,
  ground truth, answer files); the generic ones (model, decoding, output folder...) belong to the command;
- ``items_from_args(args)`` / ``load_items(data_path, **options)``: the items a model answers;
- ``score_files(args, skips)``: score existing answer (and judge) files without a model;
- ``score(items, answers, judge=None)``: the official scorer, a pure function of answers and ground truth.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tether.core.errors import DataError, TetherError
from tether.core.io import SkipLog, parse_records
from tether.eval.stats import bootstrap_intervals


@dataclass
class EvalItem:
    """One question or image of a benchmark, as the model runner sees it."""

    id: str  # the question/item id as in the file (str(...) of ints)
    image: str  # image file name relative to the --images root
    prompt: str  # the text given to the model
    kind: str  # "yesno" (short answer, fast logit mode allowed) or "free" (generation)
    meta: dict = field(default_factory=dict)  # label, category, subtask, gt facts: whatever scoring needs


@dataclass
class Score:
    """Unrounded metrics, one record per scored sample, and how to recompute metrics from records.

    ``metrics_fn`` recomputes ``metrics`` from any list of per-sample records; the bootstrap resamples
    records (or whole clusters of records sharing ``cluster_key``, e.g. an MME image pair) through it.
    """

    metrics: dict[str, float]
    per_sample: list[dict]
    metrics_fn: Callable[[list[dict]], dict[str, float]] | None = None
    cluster_key: str | None = None
    notes: dict = field(default_factory=dict)  # counts worth reporting: dropped, unparsed, skipped lines
    scoring: dict = field(default_factory=dict)  # official rules or tether's corrections (Benchmark.scoring)

    def intervals(self, n_resamples: int = 1000, seed: int = 0) -> dict[str, list[float]]:
        """Percentile bootstrap 95% intervals of every metric (empty when no metrics_fn)."""
        if self.metrics_fn is None:
            return {}
        return bootstrap_intervals(
            self.per_sample, self.metrics_fn, n_resamples=n_resamples, seed=seed, cluster_key=self.cluster_key
        )


@dataclass
class FileScore:
    """What ``Benchmark.score_files`` gives back: the score, the data file it read and the judge it used."""

    score: Score
    data_file: str | None
    judge: dict | None = None  # {"name": judge model or None, "replies": file} when judge replies were scored


class Benchmark(ABC):
    """Base class of the benchmark units; subclasses set ``name`` and ``description`` and implement
    ``load_items`` and ``score``. The defaults of the CLI methods suit a benchmark with one data file
    (``--data``) and answers keyed by id (``--answers``); a benchmark with other files overrides them."""

    name: str = ""
    description: str = ""  # one line: `tether eval --help` and the benchmark's own --help
    needs_judge: bool = False  # MMHal-Bench and SHR score through a judge
    # The scorer's metrics from its per-sample records (``Score.metrics_fn``), with which `tether report`
    # recomputes them on resampled or shared items; records sharing ``cluster_key`` resample together.
    record_metrics: Callable[[list[dict]], dict[str, float]] | None = None
    cluster_key: str | None = None
    # How `tether report` reads a significant difference: metrics (last path part) where lower is better,
    # and those with no better side; any other non-count metric is better higher.
    lower_is_better: tuple[str, ...] = ()
    no_direction: tuple[str, ...] = ()
    # The official scorer's behaviour is the default, quirks included; ``corrected`` (``--corrected``)
    # applies tether's deliberate corrections, each described in ``corrections``.
    corrected: bool = False
    corrections: tuple[str, ...] = ()

    def scoring(self) -> dict:
        """What results.json records about the rules used."""
        return {
            "rules": "corrected" if self.corrected else "official",
            "corrections": list(self.corrections) if self.corrected else [],
        }

    @abstractmethod
    def load_items(self, data_path, **options) -> list[EvalItem]:
        """Read the benchmark's official files; errors name the file and line."""

    @abstractmethod
    def score(self, items: list[EvalItem], answers: dict[str, str], judge=None) -> Score:
        """Score answers keyed by item id with the official rules (unrounded metrics)."""

    # ---- the command line: `tether eval <name> run|score` --------------------------------------------

    def add_options(self, parser, *, run: bool) -> None:
        """Add this benchmark's own options to its ``run`` (``run=True``) or ``score`` parser."""
        parser.add_argument("--data", required=True, help=f"{self.name} question file")
        if not run:
            parser.add_argument("--answers", required=True, help="JSONL with question_id and text (or answer)")

    def data_file(self, args) -> str | None:
        """The file recorded (path and sha256) as the run's data."""
        return getattr(args, "data", None)

    def items_from_args(self, args) -> list[EvalItem]:
        """The items of a run, from the parsed options of ``add_options``."""
        return self.load_items(args.data)

    def score_files(self, args, skips: SkipLog) -> FileScore:
        """Score the answer files named by the parsed options (``score`` verb): official rules, no model.
        With ``args.skip_invalid`` bad answer lines are skipped and counted in ``skips``."""
        items = self.items_from_args(args)
        lines = read_answer_lines(args.answers, skip_invalid=args.skip_invalid, skips=skips)
        return FileScore(self.score(items, answers_by_id(lines, args.answers)), self.data_file(args))


def check_unique_ids(items: list[EvalItem], path) -> None:
    seen = set()
    for n, item in enumerate(items, start=1):
        if item.id in seen:
            raise DataError(f"duplicate id '{item.id}'", path, n)
        seen.add(item.id)


def require_answers(items: list[EvalItem], answers: dict[str, str]) -> None:
    """Every item needs an answer; extra answers for unknown ids are a mistake too."""
    missing = [item.id for item in items if item.id not in answers]
    if missing:
        raise TetherError(f"{len(missing)} of {len(items)} items have no answer (first: '{missing[0]}')")
    known = {item.id for item in items}
    extra = [key for key in answers if key not in known]
    if extra:
        raise TetherError(f"{len(extra)} answers are for ids not in the questions (first: '{extra[0]}')")


@dataclass
class AnswerLine:
    line: int  # line number (JSONL) or item number (JSON list) in the answers file
    id: str | None  # None only for a skipped line without an id (read_answer_lines' keep_skipped)
    text: str | None  # None only for a skipped line (keep_skipped)
    record: dict


ANSWER_TEXT_FIELDS = ("text", "answer", "response", "caption", "model_answer")
ANSWER_ID_FIELDS = ("question_id", "id", "image_id")


def read_answer_lines(
    path, *, skip_invalid: bool = False, skips: SkipLog | None = None, keep_skipped: bool = False
) -> list[AnswerLine]:
    """Read an answers file: JSONL or a JSON list of objects with an id field and a text field.

    The id is the first of ``question_id``, ``id``, ``image_id``; the text the first of ``text``,
    ``answer``, ``response``, ``caption``, ``model_answer``. A missing field or an empty answer is a
    DataError naming the line (or, with ``skip_invalid``, skipped and counted in ``skips``).
    ``keep_skipped`` keeps such a skipped record in its place, with ``text`` None (and ``id`` None
    without an id field), so that matching by line order can skip its question with it.
    """
    if not (skip_invalid and keep_skipped):
        return parse_records(Path(path), _answer_line, skip_invalid=skip_invalid, skips=skips)

    def parse_or_placeholder(record: dict, path, line: int) -> AnswerLine:
        try:
            return _answer_line(record, path, line)
        except DataError as e:
            if skips is not None:
                skips.add(str(e))
            id_field = next((f for f in ANSWER_ID_FIELDS if f in record), None)
            answer_id = str(record[id_field]) if id_field else None
            return AnswerLine(line=line, id=answer_id, text=None, record=record)

    return parse_records(Path(path), parse_or_placeholder, skip_invalid=True, skips=skips)


def _answer_line(record: dict, path, line: int) -> AnswerLine:
    id_field = next((f for f in ANSWER_ID_FIELDS if f in record), None)
    if id_field is None:
        raise DataError(f"missing an id field (one of {', '.join(ANSWER_ID_FIELDS)})", path, line)
    text_field = next((f for f in ANSWER_TEXT_FIELDS if f in record), None)
    if text_field is None:
        raise DataError(f"missing an answer field (one of {', '.join(ANSWER_TEXT_FIELDS)})", path, line)
    text = record[text_field]
    if not isinstance(text, str):
        raise DataError(f"field '{text_field}' must be a string", path, line)
    if not text.strip():
        raise DataError("empty answer", path, line)
    return AnswerLine(line=line, id=str(record[id_field]), text=text, record=record)


def answers_by_id(lines: list[AnswerLine], path) -> dict[str, str]:
    """Key answers by id; a repeated id is a DataError at its second line."""
    answers: dict[str, str] = {}
    for answer in lines:
        if answer.id in answers:
            raise DataError(f"duplicate answer for id '{answer.id}'", path, answer.line)
        answers[answer.id] = answer.text
    return answers


def safe_div(numerator: float, denominator: float) -> float:
    """Ratio that is 0.0 for an empty denominator (e.g. precision when a model never says yes)."""
    return numerator / denominator if denominator else 0.0
