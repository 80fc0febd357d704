"""AMBER: generative (captions checked against annotated objects) and discriminative (yes/no) halves.

Discriminative, as the official ``inference.py``: a reply counts only if it is exactly "Yes" or "No"
(anything else is wrong and is not a "No"). "No" is the positive class: precision = right "No" / all
"No" replies, recall = right "No" / questions whose truth is no. Dimensions: existence
(``discriminative-hallucination``), attribute (state, number, action) and relation.

Generative: nouns of the reply that are in the association vocabulary (``relation.json``) and not in
``safe_words.txt`` are matched to the image's ``truth`` objects (and their associated words) and
``hallu`` objects. CHAIR = unmatched nouns / nouns; Cover = truth objects mentioned / truth objects;
Hal = replies with >= 1 unmatched noun; Cog = hallu objects mentioned / hallu objects. A word listed
under several objects credits the first (association words before names, as the official search).
Official arithmetic by default: 0.001 added to every denominator, F1 from precision and recall rounded
to 0.1 % (``corrected`` drops both). Two deviations forced by missing data: nouns are the vocabulary
words among NLTK's tokens, singularised for the vocabulary, instead of NLTK's NN* tags and WordNet
lemmas (tagger and WordNet data do not install from PyPI), and the spaCy ``en_core_web_lg`` similarity
> 0.8 fallback is not applied (exact matches only).
"""

from functools import partial
from pathlib import Path

from tether.core.errors import DataError
from tether.core.io import read_json, read_records, read_text_lines, require_fields
from tether.core.text import corrected_singularize, tokenize
from tether.eval.benchmark import Benchmark, EvalItem, Score, check_unique_ids, require_answers, safe_div

DIMENSIONS = {
    "discriminative-hallucination": "existence",
    "discriminative-attribute-state": "attribute",
    "discriminative-attribute-number": "attribute",
    "discriminative-attribute-action": "attribute",
    "discriminative-relation": "relation",
    "relation": "relation",
}


# The official script starts every denominator at 0.001 (``metrics.txt``); attribute sums three of them.
EPSILON = {"": 0.001, "existence/": 0.001, "attribute/": 0.003, "relation/": 0.001}
# ... and adds this to P + R in its F1 (existence uses a larger one).
F1_EPSILON = {"": 0.0001, "existence/": 0.001, "attribute/": 0.0001, "relation/": 0.0001}


def discriminative_metrics(records: list[dict], corrected: bool = False) -> dict[str, float]:
    metrics: dict[str, float] = {}
    groups = {"": records}
    for dimension in ("existence", "attribute", "relation"):
        groups[f"{dimension}/"] = [r for r in records if r["dimension"] == dimension]
    for prefix, group in groups.items():
        if not group:
            continue
        eps = 0.0 if corrected else EPSILON[prefix]
        said_no = [r for r in group if r["answer"] == "No"]
        truth_no = [r for r in group if r["label"] == "no"]
        precision = _ratio(sum(r["label"] == "no" for r in said_no), len(said_no), eps)
        recall = _ratio(sum(r["answer"] == "No" for r in truth_no), len(truth_no), eps)
        metrics[f"{prefix}accuracy"] = _ratio(sum(r["correct"] for r in group), len(group), eps)
        metrics[f"{prefix}precision"] = precision
        metrics[f"{prefix}recall"] = recall
        if corrected:
            metrics[f"{prefix}f1"] = safe_div(2 * precision * recall, precision + recall)
        else:
            metrics[f"{prefix}f1"] = official_f1(precision, recall, F1_EPSILON[prefix])
        metrics[f"{prefix}n"] = len(group)
    return metrics


def official_f1(precision: float, recall: float, epsilon: float) -> float:
    """AMBER's F1: from precision and recall rounded to the printed 0.1 %, with ``epsilon``, rounded."""
    p, r = round(precision * 100, 1) / 100, round(recall * 100, 1) / 100
    return round(2 * p * r / (p + r + epsilon) * 100, 1) / 100


def generative_metrics(records: list[dict], corrected: bool = False) -> dict[str, float]:
    eps = 0.0 if corrected else 0.001
    return {
        "chair": _ratio(sum(r["n_unmatched"] for r in records), sum(r["n_nouns"] for r in records), eps),
        "cover": _ratio(sum(r["n_truth_mentioned"] for r in records), sum(r["n_truth"] for r in records), eps),
        "hal": 1 - _ratio(sum(1 for r in records if not r["n_unmatched"]), len(records), eps),
        "cog": _ratio(sum(r["n_hallu_mentioned"] for r in records), sum(r["n_hallu"] for r in records), eps),
        "n": len(records),
    }


def _ratio(numerator: float, denominator: float, epsilon: float) -> float:
    return numerator / (denominator + epsilon) if epsilon else safe_div(numerator, denominator)


def extract_nouns(text: str, vocabulary) -> list[str]:
    """Candidate nouns of a reply: NLTK's tokens (case kept, as the official), singular for ``vocabulary``.

    The official keeps NN* tokens by NLTK's tagger and lemmatises them with WordNet; neither's data
    installs from PyPI, so every token is a candidate and the singular prefers a vocabulary word.
    """
    return [corrected_singularize(token, vocabulary) for token in tokenize(text, lower=False)]


def amber_metrics(records: list[dict], corrected: bool = False) -> dict[str, float]:
    generative = [r for r in records if r["task"] == "generative"]
    discriminative = [r for r in records if r["task"] == "discriminative"]
    metrics = {}
    if generative:
        metrics.update(
            {f"generative/{k}": v for k, v in generative_metrics(generative, corrected).items()}
        )
    if discriminative:
        metrics.update(
            {f"discriminative/{k}": v for k, v in discriminative_metrics(discriminative, corrected).items()}
        )
    return metrics


class Amber(Benchmark):
    name = "amber"
    description = "AMBER generative and discriminative halves"
    record_metrics = staticmethod(amber_metrics)
    lower_is_better = ("CHAIR", "Hal", "Cog")
    no_direction = ("Cover",)
    corrections = (
        "ratios without the official 0.001 added to every denominator",
        "F1 from unrounded precision and recall, without the epsilon",
    )

    def add_options(self, parser, *, run: bool) -> None:
        parser.add_argument(
            "--queries", "--data", dest="data", required=True, help="AMBER query file (query_all.json ...)"
        )
        parser.add_argument(
            "--annotations",
            required=True,
            help="AMBER annotations.json (relation.json, safe_words.txt beside it)",
        )
        if not run:
            parser.add_argument("--answers", required=True, help="JSON list (or JSONL) with id and response")

    def items_from_args(self, args) -> list[EvalItem]:
        return self.load_items(args.data, annotations=args.annotations)

    def load_items(self, data_path, *, annotations, association=None, safe_words=None, **_) -> list[EvalItem]:
        """Load a query file (``query_all.json`` or one of its parts) with ``annotations.json``.

        ``association`` (``relation.json``) and ``safe_words`` (``safe_words.txt``) default to the files
        next to ``annotations``; they are needed only for generative items.
        """
        annotations_path = Path(annotations)
        truth = {}
        for n, record in read_records(annotations_path):
            require_fields(record, {"id": (int, str), "type": str, "truth": (str, list)}, annotations_path, n)
            if record["type"] == "generative" and not all(isinstance(t, str) for t in record["truth"]):
                raise DataError("field 'truth' must be a list of object names", annotations_path, n)
            truth[record["id"]] = record
        items = []
        for line, record in read_records(data_path):
            require_fields(record, {"id": (int, str), "image": str, "query": str}, data_path, line)
            if record["id"] not in truth:
                raise DataError(f"id {record['id']} is not in {annotations_path}", data_path, line)
            annotation = truth[record["id"]]
            kind = "free" if annotation["type"] == "generative" else "yesno"
            if kind == "yesno" and annotation["type"] not in DIMENSIONS:
                raise DataError(f"unknown question type {annotation['type']!r}", annotations_path)
            if kind == "yesno" and annotation["truth"] not in ("yes", "no"):
                raise DataError(
                    f"unknown label {annotation['truth']!r} for id {record['id']}", annotations_path
                )
            items.append(
                EvalItem(
                    id=str(record["id"]),
                    image=record["image"],
                    prompt=record["query"],
                    kind=kind,
                    meta=dict(annotation),
                )
            )
        check_unique_ids(items, data_path)
        if any(item.kind == "free" for item in items):
            folder = annotations_path.parent
            self.association = read_json(association or folder / "relation.json")
            safe_path = Path(safe_words or folder / "safe_words.txt")
            self.safe_words = {w.strip() for w in read_text_lines(safe_path) if w.strip()}
        return items

    def score(self, items: list[EvalItem], answers: dict[str, str], judge=None) -> Score:
        require_answers(items, answers)
        records = []
        for item in items:
            answer = answers[item.id]
            if item.kind == "yesno":
                label = item.meta["truth"]
                records.append(
                    {
                        "id": item.id,
                        "task": "discriminative",
                        "dimension": DIMENSIONS[item.meta["type"]],
                        "answer": answer,
                        "label": label,
                        "correct": answer == {"yes": "Yes", "no": "No"}[label],
                    }
                )
            else:
                records.append(self._generative_record(item, answer))
        metrics_fn = partial(amber_metrics, corrected=self.corrected)
        return Score(metrics=metrics_fn(records), per_sample=records, metrics_fn=metrics_fn)

    def _generative_record(self, item: EvalItem, answer: str) -> dict:
        vocabulary = set(self.association) | {w for words in self.association.values() for w in words}
        nouns = [w for w in extract_nouns(answer, vocabulary) if w in vocabulary]
        truth, hallu = item.meta["truth"], item.meta["hallu"]
        truth_words = self._credited_objects(truth)
        hallu_words = self._credited_objects(hallu)
        truth_hit, hallu_hit, unmatched = set(), set(), []
        for noun in nouns:
            if noun in self.safe_words:
                continue
            if noun in truth_words:
                truth_hit.add(truth_words[noun])
                continue
            if noun in hallu_words:
                hallu_hit.add(hallu_words[noun])
            unmatched.append(noun)
        return {
            "id": item.id,
            "task": "generative",
            "answer": answer,
            "nouns": nouns,
            "unmatched": unmatched,
            "n_nouns": len(nouns),
            "n_unmatched": len(unmatched),
            "n_truth": len(truth),
            "n_truth_mentioned": len(truth_hit),
            "n_hallu": len(hallu),
            "n_hallu_mentioned": len(hallu_hit),
        }

    def _credited_objects(self, objects: list[str]) -> dict[str, int]:
        """Which object (by position) a word credits, as the official script searches: the association
        words of every object in order, then the objects' own names; the first listing wins."""
        credited: dict[str, int] = {}
        for index, name in enumerate(objects):
            for word in self.association.get(name, []):
                credited.setdefault(word, index)
        for index, name in enumerate(objects):
            credited.setdefault(name, index)
        return credited
