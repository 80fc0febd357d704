"""AMBER: generative (captions checked against annotated objects) and discriminative (yes/no) halves.

Discriminative, as the official ``inference.py``: a reply counts only if it is exactly "Yes" or "No"
(anything else is wrong and is not a "No"). "No" is the positive class: precision = right "No" / all
"No" replies, recall = right "No" / questions whose truth is no. Dimensions: existence
(``discriminative-hallucination``), attribute (state, number, action) and relation.

Generative: nouns of the reply that are in the association vocabulary (``relation.json``) and not in
``safe_words.txt`` are matched to the image's ``truth`` objects (and their associated words) and
``hallu`` objects. CHAIR = unmatched nouns / nouns; Cover = truth objects mentioned / truth objects;
Hal = replies with >= 1 unmatched noun; Cog = hallu objects mentioned / hallu objects.
Two documented deviations, forced by missing offline data: nouns are found with tether's rule
normaliser (every vocabulary word counts, whatever its part of speech, instead of NLTK's NN* tags), and
the spaCy ``en_core_web_lg`` similarity > 0.8 fallback is not applied (exact matches only). The
official script also adds 0.001 to every denominator; tether reports the exact ratios.
"""

from pathlib import Path

from tether.data.io import read_json, read_records, read_text_lines, require_fields
from tether.errors import DataError
from tether.eval.benchmark import Benchmark, EvalItem, Score, check_unique_ids, require_answers, safe_div
from tether.eval.text_norm import singularize, tokenize

DIMENSIONS = {
    "discriminative-hallucination": "existence",
    "discriminative-attribute-state": "attribute",
    "discriminative-attribute-number": "attribute",
    "discriminative-attribute-action": "attribute",
    "discriminative-relation": "relation",
    "relation": "relation",
}


def discriminative_metrics(records: list[dict]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    groups = {"": records}
    for dimension in ("existence", "attribute", "relation"):
        groups[f"{dimension}/"] = [r for r in records if r["dimension"] == dimension]
    for prefix, group in groups.items():
        if not group:
            continue
        said_no = [r for r in group if r["answer"] == "No"]
        truth_no = [r for r in group if r["label"] == "no"]
        precision = safe_div(sum(r["label"] == "no" for r in said_no), len(said_no))
        recall = safe_div(sum(r["answer"] == "No" for r in truth_no), len(truth_no))
        metrics[f"{prefix}accuracy"] = safe_div(sum(r["correct"] for r in group), len(group))
        metrics[f"{prefix}precision"] = precision
        metrics[f"{prefix}recall"] = recall
        metrics[f"{prefix}f1"] = safe_div(2 * precision * recall, precision + recall)
        metrics[f"{prefix}n"] = len(group)
    return metrics


def generative_metrics(records: list[dict]) -> dict[str, float]:
    return {
        "chair": safe_div(sum(r["n_unmatched"] for r in records), sum(r["n_nouns"] for r in records)),
        "cover": safe_div(sum(r["n_truth_mentioned"] for r in records), sum(r["n_truth"] for r in records)),
        "hal": safe_div(sum(1 for r in records if r["n_unmatched"]), len(records)),
        "cog": safe_div(sum(r["n_hallu_mentioned"] for r in records), sum(r["n_hallu"] for r in records)),
        "n": len(records),
    }


def amber_metrics(records: list[dict]) -> dict[str, float]:
    generative = [r for r in records if r["task"] == "generative"]
    discriminative = [r for r in records if r["task"] == "discriminative"]
    metrics = {}
    if generative:
        metrics.update({f"generative/{k}": v for k, v in generative_metrics(generative).items()})
    if discriminative:
        metrics.update({f"discriminative/{k}": v for k, v in discriminative_metrics(discriminative).items()})
    return metrics


class Amber(Benchmark):
    name = "amber"

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
        return Score(metrics=amber_metrics(records), per_sample=records, metrics_fn=amber_metrics)

    def _generative_record(self, item: EvalItem, answer: str) -> dict:
        vocabulary = set(self.association) | {w for words in self.association.values() for w in words}
        nouns = [w for w in (singularize(t, vocabulary) for t in tokenize(answer)) if w in vocabulary]
        truth, hallu = item.meta["truth"], item.meta["hallu"]
        # A truth object is mentioned by its name or any word associated with it; same for hallu.
        truth_words = {w: t for t in truth for w in [t, *self.association.get(t, [])]}
        hallu_words = {w: h for h in hallu for w in [h, *self.association.get(h, [])]}
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
