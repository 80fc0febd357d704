"""Object HalBench (RLHF-V): CHAIR over detailed answers to 300 COCO questions, with RLHF-V's object list.

The official scorer is RLHF-V's ``eval/eval_gpt_obj_halbench.py`` (RLAIF-V ships the same file) with
``eval/summarize_gpt_obj_halbench_review.py``. Both ways it names objects are here:

- ``--objects judge`` (what ``script/objhal_review.sh`` runs, so the published figures): a chat model
  (gpt-3.5-turbo-0613 there) lists the objects of each answer as a JSON list, prompted by
  ``EXTRACTION_PROMPT`` (the official wording, sent as the system message); an answer of three words or
  fewer is not sent and has no objects. Each listed phrase is put behind "a ", lemmatised, and kept as
  the two-word objects it contains, or else as its runs of nouns; a phrase listed twice counts once.
- ``--objects rule`` (the script without ``--use_gpt``, and tether's default since it needs no API): the
  answer is lower-cased, NLTK-tokenised and lemmatised with WordNet; two-word objects are merged first;
  every word in the list is one mention (repeats count).

In both, "seat" is dropped when "toilet" is mentioned, and a mention is hallucinated when its object is not
in the image's ground truth: the COCO-2014 segmentation classes plus the objects the rule path finds in the
image's five COCO captions (``--coco DIR``), or a prebuilt ``{"objects", "images"}`` file (``--gt``).

Metrics (fractions; the summary prints them x100): ``response_hallucination`` = answers with a hallucinated
object / answers naming any object ("Response Hall", ``CHAIRs_refine``), ``object_hallucination`` =
hallucinated mentions / mentions ("Object Hall", ``CHAIRi``), ``chair_s`` = answers with a hallucination /
all answers, ``object_recall`` = ground-truth objects mentioned / ground-truth objects, ``object_f1`` from
recall and 1 - object_hallucination, ``avg_words`` = mean count of space-separated words.

Deviations forced by missing data (docs/evaluation.md): WordNet is not installable from PyPI, so
``wordnet_lemma`` applies WordNet's noun rules and irregular plurals with the WordNet verdicts the shipped
list needs (``WORDNET_KEEPS``, ``WORDNET_ODD``; scripts/objhalbench_wordnet_tables.py re-derives them from
WordNet 3.0); the judge path's spaCy ``en_core_web_trf`` tagger is not available, so a listed phrase's noun
run is taken to be its words between function words ("red car" stays "red car", which the tagger would cut
to "car").
"""

import json
from argparse import Namespace
from pathlib import Path

from tether.core.errors import DataError, TetherError
from tether.core.io import SkipLog, read_json, read_records, read_text_lines, require_fields
from tether.core.text import tokenize
from tether.eval.benchmark import Benchmark, EvalItem, FileScore, Score, require_answers, safe_div
from tether.eval.chair import MODIFIER_DOUBLE_WORDS, merge_double_words

QUESTION_PROMPT = "Provide a thorough description of the given image."  # for a question file without text

# The official extraction prompt (eval_gpt_obj_halbench.py), unchanged: the published figures rest on it.
EXTRACTION_PROMPT = """You are an expert in image objects extraction according to a question answer pair. We asked an examiner to answer a question about a picture.

[Start of Question]

<image> {question}

[End of Question]

[Start of Examiner's Answer]

{answer}

[End of Examiner's Answer]


Assume that the answer is correct, please identify all visible objects that are directly shown in the image. Please following the instructions in below:

1. You should only mention objects that are explicitly mentioned in the examiner's answer.
2. You should only extract the object names without the attributes of the objects.
3. You should not include the properties of the object, like the color, material, etc. as part of the object name in your result.
4. Make your answer precise. Present the results in a JSON list format: [\\"object_1\\", ..., \\"object_n\\"].
5. You should return an empty JSON list () if no visible objects can be found.
"""  # noqa: E501

# Two-word objects beyond the list's own, as the official evaluator adds them.
EXTRA_DOUBLE_WORDS = ("home plate", "train track")
FUNCTION_WORDS = frozenset(
    "a an the of on in at with and or to for from by near next under over behind its their his her some "
    "two three several many few".split()
)

# WordNet's noun lemmatiser (NLTK's WordNetLemmatizer: the shortest WordNet noun among the word, its
# exception-list bases or else the results of its suffix rules; the word itself when none is a noun).
WORDNET_SUFFIX_RULES = (
    ("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
    ("men", "man"), ("ies", "y"),
)  # fmt: skip
# WordNet 3.0 noun.exc entries whose base is a word of the shipped list.
WORDNET_IRREGULAR = {
    "brethren": "brother", "buffaloes": "buffalo", "busses": "bus", "calves": "calf", "children": "child",
    "flamingoes": "flamingo", "geese": "goose", "grandchildren": "grandchild", "knives": "knife", "men": "man",
    "mice": "mouse", "oxen": "ox", "pocketknives": "pocketknife", "taxies": "taxi", "thieves": "thief",
}  # fmt: skip
# Words whose lemma the rules above get wrong when only the list's words are taken for nouns: WordNet
# lacks the singular ("bikers" stays), has the word itself ("men" is a noun, as long as "man"), or has a
# shorter noun ("vases" -> "vas"). Derived from WordNet 3.0 for every plural form of the list's words.
WORDNET_KEEPS = frozenset(
    "bikers bluejaies bluejays brindles childrens coworkers firetrucks glases glass hairdryers hots lenovos "
    "longboards macbooks men netbooks paddleboats pitbulls potteds riverboats sailboards shortboards "
    "skimboards skises skiss smartphones soliders sportses sportss stovetops teddybears televisons".split()
)
WORDNET_ODD = {"sports": "sport", "vases": "vas"}


def wordnet_lemma(word: str, nouns: frozenset) -> str:
    """WordNet's noun lemma of ``word``, taking ``nouns`` (the object list's words) for WordNet's nouns."""
    if word in WORDNET_KEEPS:
        return word
    if word in WORDNET_ODD:
        return WORDNET_ODD[word]
    if word in WORDNET_IRREGULAR:
        forms = [WORDNET_IRREGULAR[word]]
    else:
        forms = [word[: -len(old)] + new for old, new in WORDNET_SUFFIX_RULES if word.endswith(old)]
    found = [form for form in [word, *forms] if form in nouns]
    return min(found, key=len) if found else word


class ObjectVocabulary:
    """RLHF-V's ``synonyms_refine.txt`` (one object per line, first name canonical), optionally extended
    by a ``{class: [phrases]}`` mapping such as RLAIF-V's ``chair_mapping.mergeall.correct_0406.json``."""

    def __init__(self, synonym_lines: list[list[str]]):
        self.canonical: dict[str, str] = {}
        for synonyms in synonym_lines:
            for word in synonyms:
                self.canonical[word] = synonyms[0]
        self.double_words = {w: w for w in self.canonical if len(w.split(" ")) >= 2}
        self.double_words.update({w: w for w in EXTRA_DOUBLE_WORDS})
        self.double_words.update(MODIFIER_DOUBLE_WORDS)
        self.nouns = frozenset(w for term in [*self.canonical, *self.double_words] for w in term.split())

    @classmethod
    def from_files(cls, synonyms, mapping=None) -> "ObjectVocabulary":
        lines = [[w.strip() for w in line.strip().split(", ")] for line in read_text_lines(synonyms)]
        lines = [line for line in lines if line != [""]]
        if mapping is not None:
            extra = read_json(mapping)
            if not isinstance(extra, dict) or not all(isinstance(v, list) for v in extra.values()):
                raise DataError("expected {object class: [phrases]}", mapping)
            by_class = {line[0]: line for line in lines}
            for name, phrases in extra.items():
                if name not in by_class:
                    raise DataError(f"class '{name}' is not in the synonym list {synonyms}", mapping)
                by_class[name] += [p.lower() for p in phrases if isinstance(p, str)]
        return cls(lines)

    def lemmas(self, text: str) -> list[str]:
        return [wordnet_lemma(w, self.nouns) for w in tokenize(text)]

    def caption_mentions(self, caption: str) -> list[tuple[str, str]]:
        """The rule path: ``(word, object)`` for every object word of the caption, repeats included."""
        return self._known(merge_double_words(self.lemmas(caption), self.double_words))

    def phrase_objects(self, phrases: list[str]) -> list[str]:
        """The judge path: each listed phrase as its two-word objects, or else its noun runs; unique."""
        objects: list[str] = []
        for phrase in phrases:
            words = self.lemmas(f"a {phrase}")
            doubles, i = [], 0
            while i < len(words):
                pair = " ".join(words[i : i + 2])
                if pair in self.double_words:
                    doubles.append(self.double_words[pair])
                    i += 2
                else:
                    i += 1
            for found in doubles or _runs(words):
                if found not in objects:
                    objects.append(found)
        return objects

    def object_mentions(self, objects: list[str]) -> list[tuple[str, str]]:
        return self._known(list(objects))

    def _known(self, words: list[str]) -> list[tuple[str, str]]:
        # "the seat of the toilet" is no chair
        if "toilet" in words and "seat" in words:
            words = [w for w in words if w != "seat"]
        return [(w, self.canonical[w]) for w in words if w in self.canonical]


def _runs(words: list[str]) -> list[str]:
    runs, current = [], []
    for word in [*words, "a"]:
        if word in FUNCTION_WORDS or not any(c.isalpha() for c in word):
            if current:
                runs.append(" ".join(current))
            current = []
        else:
            current.append(word)
    return runs


def parse_object_list(reply: str) -> list[str] | None:
    """The official parse: the reply as JSON, or else its last line when it holds '["'; None if neither
    is a list (the official script asks again, up to 100 times)."""
    try:
        parsed = json.loads(reply)
    except ValueError:
        if '["' not in reply:
            return None
        try:
            parsed = json.loads(reply.strip().split("\n")[-1])
        except ValueError:
            return None
    if not isinstance(parsed, list):
        return None
    return [str(x) for x in parsed]


def objhal_metrics(records: list[dict]) -> dict[str, float]:
    mentions = sum(len(r["mentions"]) for r in records)
    hallucinated = sum(len(r["hallucinated"]) for r in records)
    with_objects = sum(1 for r in records if r["mentions"])
    with_hallucination = sum(1 for r in records if r["hallucinated"])
    gt_total = sum(len(r["gt_objects"]) for r in records)
    covered = sum(len(set(r["mentions"]) & set(r["gt_objects"])) for r in records)
    recall = safe_div(covered, gt_total)
    correct = 1 - safe_div(hallucinated, mentions)
    return {
        "response_hallucination": safe_div(with_hallucination, with_objects),
        "object_hallucination": safe_div(hallucinated, mentions),
        "chair_s": safe_div(with_hallucination, len(records)),
        "object_recall": recall,
        "object_f1": safe_div(2 * recall * correct, recall + correct),
        "avg_words": safe_div(sum(r["words"] for r in records), len(records)),
        "n_with_objects": with_objects,
        "n": len(records),
    }


class ObjHalBench(Benchmark):
    name = "objhalbench"
    description = "Object HalBench (RLHF-V): CHAIR over detailed answers, objects by rule or by an LLM judge"
    record_metrics = staticmethod(objhal_metrics)
    lower_is_better = ("response_hallucination", "object_hallucination", "chair_s")
    no_direction = ("avg_words", "n_with_objects")

    def __init__(self):
        self.objects = "rule"  # or "judge": a chat model lists each answer's objects (the published way)
        self.mapping = None
        self.vocabulary: ObjectVocabulary | None = None

    def scoring(self) -> dict:
        return super().scoring() | {"objects": self.objects, "mapping": self.mapping}

    def add_options(self, parser, *, run: bool) -> None:
        parser.add_argument("--synonyms", required=True, help="RLHF-V's synonyms_refine.txt")
        parser.add_argument(
            "--mapping",
            help="also count the phrases of a {class: [phrases]} file as their class (RLAIF-V's "
            "chair_mapping.mergeall.correct_0406.json; not used by the official scorer; recorded)",
        )
        truth = parser.add_mutually_exclusive_group(required=True)
        truth.add_argument(
            "--coco", help="COCO-2014 annotations folder (instances_/captions_ train2014 and val2014.json)"
        )
        truth.add_argument("--gt", help='prebuilt ground truth {"objects": [...], "images": {id: [indices]}}')
        parser.add_argument(
            "--objects",
            choices=("rule", "judge"),
            default="rule",
            help="name each answer's objects by rule (NLTK + WordNet) or with an LLM judge listing them, as "
            "the published figures do (%s; recorded)" % ("--judge-config FILE" if run else "its replies: --judge-output"),
        )
        parser.add_argument(
            "--image-pattern",
            default="COCO_val2014_{image_id:012d}.jpg",
            help="image file name from an id (default %(default)s)",
        )
        if run:
            parser.add_argument(
                "--questions",
                "--data",
                dest="data",
                required=True,
                help="question file: JSONL with image_id and question (obj_halbench_300_with_image.jsonl)",
            )
        else:
            parser.add_argument(
                "--answers", required=True, help="answers: JSONL with image_id, text (or answer) and prompt"
            )
            parser.add_argument(
                "--judge-output", help="for --objects judge: the judge's replies, JSONL with the answers' ids and text"
            )

    def data_file(self, args) -> str | None:
        return getattr(args, "data", None) or args.answers

    def _configure(self, args) -> None:
        self.objects, self.mapping = args.objects, args.mapping
        self.needs_judge = self.objects == "judge"
        self.vocabulary = ObjectVocabulary.from_files(args.synonyms, args.mapping)

    def items_from_args(self, args) -> list[EvalItem]:
        self._configure(args)
        questions = []
        for line, record in read_records(args.data):
            require_fields(record, {"image_id": (str, int)}, args.data, line)
            question = record.get("question") or record.get("text") or QUESTION_PROMPT
            image = Path(record["image_path"]).name if isinstance(record.get("image_path"), str) else None
            questions.append((str(line - 1), str(record["image_id"]), question, image))
        return self._items(questions, args)

    def score_files(self, args, skips: SkipLog) -> FileScore:
        self._configure(args)
        questions, answers = [], {}
        for line, record in read_records(args.answers, skip_invalid=args.skip_invalid, skips=skips):
            answer = _answer_record(record, args.answers, line, args.skip_invalid, skips)
            if answer is None:
                continue
            key, image_id, question, text = answer
            if key in answers:
                raise DataError(f"duplicate answer id '{key}'", args.answers, line)
            questions.append((key, image_id, question, None))
            answers[key] = text
        items = self._items(questions, args)
        judge = None
        if self.objects == "judge":
            if not args.judge_output:
                raise TetherError("--objects judge needs --judge-output (the judge's replies)")
            replies = {}
            for line, record in read_records(args.judge_output):
                require_fields(record, {"text": str}, args.judge_output, line)
                replies[str(record.get("question_id", record.get("id", record.get("image_id"))))] = record["text"]
            judge = {"name": None, "replies": str(args.judge_output)}
            return FileScore(self.score_replies(items, answers, replies), self.data_file(args), judge)
        return FileScore(self.score(items, answers), self.data_file(args), judge)

    def _items(self, questions, args) -> list[EvalItem]:
        image_ids = {image_id for _, image_id, _, _ in questions}
        if args.coco:
            truth = coco_ground_truth(args.coco, image_ids, self.vocabulary)
        else:
            truth = _gt_file(args.gt, image_ids)
        items = []
        for key, image_id, question, image in questions:
            if image_id not in truth:
                raise DataError(f"image id '{image_id}' has no ground truth", args.coco or args.gt)
            name = image or args.image_pattern.format(image_id=int(image_id) if image_id.isdigit() else image_id)
            meta = {"image_id": image_id, "question": question, "gt_objects": sorted(truth[image_id])}
            items.append(EvalItem(id=key, image=name, prompt=question, kind="free", meta=meta))
        return items

    def load_items(self, data_path, *, synonyms, gt=None, coco=None, mapping=None, objects="rule", **_):
        """Items of a question file with ground truth from ``gt`` (a CHAIR-format file) or ``coco``."""
        args = Namespace(
            data=data_path, synonyms=synonyms, gt=gt, coco=coco, mapping=mapping, objects=objects,
            image_pattern="COCO_val2014_{image_id:012d}.jpg",
        )  # fmt: skip
        return self.items_from_args(args)

    def score(self, items: list[EvalItem], answers: dict[str, str], judge=None) -> Score:
        """Score answers; with ``objects == "judge"`` the judge's client lists each answer's objects."""
        require_answers(items, answers)
        if self.objects != "judge":
            return self._score(items, answers, {item.id: None for item in items})
        client = getattr(judge, "client", None)
        if client is None:
            raise TetherError("--objects judge needs an LLM judge (--judge llm --judge-config FILE)")
        replies = {
            item.id: client.complete([{"role": "system", "content": extraction_prompt(item, answers[item.id])}])
            for item in items
            if len(answers[item.id].strip().split()) > 3
        }
        return self.score_replies(items, answers, replies)

    def score_replies(self, items, answers: dict[str, str], replies: dict[str, str]) -> Score:
        """The judge path from the judge's replies, keyed by item id (answers of <= 3 words need none)."""
        unparsed = 0
        objects = {}
        for item in items:
            if len(answers[item.id].strip().split()) <= 3:
                objects[item.id] = []
                continue
            if item.id not in replies:
                raise TetherError(f"no judge reply for answer '{item.id}'")
            listed = parse_object_list(replies[item.id])
            unparsed += listed is None
            objects[item.id] = self.vocabulary.phrase_objects(listed or [])
        score = self._score(items, answers, objects)
        score.notes["unparsed_judge_replies"] = unparsed
        return score

    def _score(self, items, answers: dict[str, str], objects: dict[str, list[str] | None]) -> Score:
        records = []
        for item in items:
            answer = answers[item.id]
            listed = objects[item.id]
            found = (
                self.vocabulary.caption_mentions(answer)
                if listed is None
                else self.vocabulary.object_mentions(listed)
            )
            gt = item.meta["gt_objects"]
            records.append(
                {
                    "id": item.id,
                    "image_id": item.meta["image_id"],
                    "answer": answer,
                    "mentions": [canonical for _, canonical in found],
                    "hallucinated": [canonical for _, canonical in found if canonical not in gt],
                    "gt_objects": gt,
                    "words": len(answer.strip().split(" ")),
                    **({"objects": listed} if listed is not None else {}),
                }
            )
        return Score(metrics=objhal_metrics(records), per_sample=records, metrics_fn=objhal_metrics)


def extraction_prompt(item: EvalItem, answer: str) -> str:
    return EXTRACTION_PROMPT.replace("{question}", item.meta["question"]).replace("{answer}", answer)


def _answer_record(record: dict, path, line: int, skip_invalid: bool, skips: SkipLog):
    """``(id, image_id, question, answer)`` of an official answers line (muffin_vqa.py's output)."""
    text = next((record[f] for f in ("text", "answer") if isinstance(record.get(f), str)), None)
    problem = None
    if not isinstance(record.get("image_id"), (str, int)):
        problem = "missing field 'image_id'"
    elif text is None:
        problem = "missing answer field ('text' or 'answer')"
    if problem is not None:
        if not skip_invalid:
            raise DataError(problem, path, line)
        skips.add(f"{path}:{line}: {problem}")
        return None
    key = str(record.get("question_id", record["image_id"]))
    question = record.get("prompt") or record.get("question") or QUESTION_PROMPT
    # the official loader strips a leading "Assistant:" the model may have echoed
    return key, str(record["image_id"]), question, text.replace("Assistant:", "").strip()


def _gt_file(path, image_ids: set[str]) -> dict[str, set[str]]:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list) or not isinstance(
        data.get("images"), dict
    ):
        raise DataError("expected {'objects': [names], 'images': {image_id: [indices]}}", path)
    objects = data["objects"]
    return {key: {objects[i] for i in data["images"][key]} for key in image_ids if key in data["images"]}


def coco_ground_truth(folder, image_ids: set[str], vocabulary: ObjectVocabulary) -> dict[str, set[str]]:
    """The official ground truth: each image's COCO segmentation classes plus the objects the rule path
    finds in its COCO captions (train2014 and val2014 files both read, as the official evaluator does)."""
    folder = Path(folder)
    truth: dict[str, set[str]] = {image_id: set() for image_id in image_ids}
    for split in ("val", "train"):
        path = folder / f"instances_{split}2014.json"
        data = read_json(path)
        names = {c["id"]: c["name"] for c in data["categories"]}
        for annotation in data["annotations"]:
            image_id = str(annotation["image_id"])
            if image_id in truth:
                name = names[annotation["category_id"]]
                if name not in vocabulary.canonical:
                    raise DataError(f"COCO class '{name}' is not in the synonym list", path)
                truth[image_id].add(vocabulary.canonical[name])
    for split in ("val", "train"):
        for annotation in read_json(folder / f"captions_{split}2014.json")["annotations"]:
            image_id = str(annotation["image_id"])
            if image_id in truth:
                truth[image_id].update(c for _, c in vocabulary.caption_mentions(annotation["caption"]))
    return truth
