"""CHAIR: objects a caption mentions (via synonym lists) against the objects in the image.

Follows the reference evaluator (LisaAnne/Hallucination ``chair.py``, as used by OPERA and
Maxlinn/CHAIR-metric-standalone): tokens are normalised, two-word phrases are merged first ("hot dog",
"baby cat" -> cat, "toilet seat" -> toilet), "seat" is dropped when "toilet" is present, and every
remaining token that is a synonym counts as one mention of its canonical object (repeats count).
CHAIR_i = hallucinated mentions / all mentions; CHAIR_s = captions with >= 1 hallucinated mention /
captions; recall = ground-truth objects mentioned / ground-truth objects, pooled over captions.
Metrics are fractions in [0, 1] (papers print them x100).

Normalisation as the original: NLTK's ``word_tokenize`` of the lower-cased caption, then pattern.en's
``singularize`` on every token (``tether.core.text``), errors included ("bus" -> "bu"). With
``corrected`` the singulariser's errors are fixed for the CHAIR vocabulary (the one correction).
"""

from pathlib import Path

from tether.core.errors import DataError, TetherError, skip_or_raise
from tether.core.io import SkipLog, read_json, read_records, read_text_lines, require_fields
from tether.core.text import corrected_singularize, pattern_singularize, tokenize
from tether.eval.benchmark import Benchmark, EvalItem, FileScore, Score, require_answers, safe_div

CAPTION_PROMPT = "Please describe this image in detail."

# Two-word objects of the reference evaluator (its list, including entries that can never match).
COCO_DOUBLE_WORDS = (
    "motor bike",
    "motor cycle",
    "air plane",
    "traffic light",
    "street light",
    "traffic signal",
    "stop light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "suit case",
    "sports ball",
    "baseball bat",
    "baseball glove",
    "tennis racket",
    "wine glass",
    "hot dog",
    "cell phone",
    "mobile phone",
    "teddy bear",
    "hair drier",
    "potted plant",
    "bow tie",
    "laptop computer",
    "stove top oven",
    "home plate",
    "train track",
)
ANIMAL_WORDS = (
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "animal",
    "cub",
)
VEHICLE_WORDS = ("jet", "train")
# Two-word phrases the reference evaluators (CHAIR's and RLHF-V's Object HalBench) read as one object.
MODIFIER_DOUBLE_WORDS = {
    **{f"{age} {animal}": animal for animal in ANIMAL_WORDS for age in ("baby", "adult")},
    **{f"passenger {vehicle}": vehicle for vehicle in VEHICLE_WORDS},
    "bow tie": "tie",
    "toilet seat": "toilet",
    "wine glas": "wine glass",
}


def merge_double_words(words: list[str], double_words: dict[str, str]) -> list[str]:
    """``words`` with each two-word object in ``double_words`` merged into its object, left to right."""
    merged, i = [], 0
    while i < len(words):
        pair = " ".join(words[i : i + 2])
        if pair in double_words:
            merged.append(double_words[pair])
            i += 2
        else:
            merged.append(words[i])
            i += 1
    return merged


class Vocabulary:
    """Synonym lists (``synonyms.txt``: one object per line, comma-separated, first = canonical)."""

    def __init__(self, synonym_lines: list[list[str]]):
        self.canonical: dict[str, str] = {}
        for synonyms in synonym_lines:
            for word in synonyms:
                self.canonical[word] = synonyms[0]
        self.double_words = {phrase: phrase for phrase in COCO_DOUBLE_WORDS} | MODIFIER_DOUBLE_WORDS
        # The words a corrected singular may land on ("glasses" -> "glass").
        self.words = frozenset(
            w for term in list(self.canonical) + list(self.double_words) for w in term.split()
        )

    @classmethod
    def from_file(cls, path) -> "Vocabulary":
        # Split stripped lines on ", " exactly like the reference: " motor bike" keeps its inner space
        # and never matches; "bison " at a line end becomes "bison".
        lines = [line.strip().split(", ") for line in read_text_lines(path) if line.strip()]
        return cls(lines)

    def mentions(self, caption: str, corrected: bool = False) -> list[tuple[str, str]]:
        """``(word, canonical object)`` for each object mention in the caption, in order."""
        if corrected:
            words = [corrected_singularize(w, self.words) for w in tokenize(caption)]
        else:
            words = [pattern_singularize(w) for w in tokenize(caption)]
        merged = merge_double_words(words, self.double_words)
        if "toilet" in merged and "seat" in merged:
            merged = [w for w in merged if w != "seat"]
        return [(w, self.canonical[w]) for w in merged if w in self.canonical]


def chair_metrics(records: list[dict]) -> dict[str, float]:
    mentions = sum(len(r["mentions"]) for r in records)
    hallucinated = sum(len(r["hallucinated"]) for r in records)
    gt_total = sum(len(r["gt_objects"]) for r in records)
    covered = sum(len(set(r["mentions"]) & set(r["gt_objects"])) for r in records)
    return {
        "chair_s": safe_div(sum(1 for r in records if r["hallucinated"]), len(records)),
        "chair_i": safe_div(hallucinated, mentions),
        "recall": safe_div(covered, gt_total),
        "mentions_per_caption": safe_div(mentions, len(records)),
        "n": len(records),
    }


class Chair(Benchmark):
    name = "chair"
    description = "CHAIR object hallucination in captions"
    record_metrics = staticmethod(chair_metrics)
    lower_is_better = ("chair_i", "chair_s")
    corrections = ("singulariser errors fixed: a vocabulary word stays as it is ('bus', not 'bu'), "
                   "and a plural pattern misses takes its -s/-es/-ies singular ('ties' -> 'tie')",)

    def load_items(
        self,
        data_path,
        *,
        synonyms,
        image_ids=None,
        image_pattern="{image_id}",
        prompt=CAPTION_PROMPT,
        questions=None,
        **_,
    ):
        """Load ground truth from a ``{"objects": [...], "images": {id: [indices]}}`` JSON.

        ``image_ids`` restricts to those images (e.g. the ids of a captions file); ``image_pattern``
        turns an id into an image file name, e.g. ``COCO_val2014_{image_id:012d}.jpg`` (ints formatted).
        ``questions``, a JSONL of ``{"image_id", "image", "text"}`` (the world's ``bench/chair/questions.jsonl``),
        gives the images to caption, each with its file name and prompt, in place of both.
        """
        path = Path(data_path)
        data = read_json(path)
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("objects"), list)
            or not isinstance(data.get("images"), dict)
        ):
            raise DataError("expected {'objects': [names], 'images': {image_id: [indices]}}", path)
        self.vocabulary = Vocabulary.from_file(synonyms)
        objects = data["objects"]
        if not all(isinstance(o, str) for o in objects):
            raise DataError("'objects' must be a list of object names", path)
        unknown = [o for o in objects if o not in self.vocabulary.canonical]
        if unknown:
            raise DataError(f"objects not in the synonym list: {unknown[:5]}", path)
        if questions is not None:
            wanted = _questions(questions)
        else:
            ids = data["images"].keys() if image_ids is None else [str(i) for i in image_ids]
            wanted = [(i, image_pattern.format(image_id=int(i) if i.isdigit() else i), prompt) for i in ids]
        items = []
        for image_id, image, image_prompt in wanted:
            if image_id not in data["images"]:
                raise DataError(f"image id '{image_id}' has no ground truth", path)
            indices = data["images"][image_id]
            if not isinstance(indices, list) or any(
                type(k) is not int or not 0 <= k < len(objects) for k in indices
            ):
                raise DataError(f"image '{image_id}' has an object index out of range", path)
            items.append(
                EvalItem(
                    id=image_id,
                    image=image,
                    prompt=image_prompt,
                    kind="free",
                    meta={"gt_objects": sorted({objects[k] for k in indices})},
                )
            )
        return items

    def add_options(self, parser, *, run: bool) -> None:
        parser.add_argument(
            "--gt", required=True, help='ground truth JSON {"objects": [...], "images": {id: [indices]}}'
        )
        parser.add_argument("--synonyms", required=True, help="synonym list in CHAIR's synonyms.txt format")
        parser.add_argument(
            "--image-pattern",
            default="{image_id}",
            help="image file name from an id, e.g. 'COCO_val2014_{image_id:012d}.jpg'",
        )
        if run:
            parser.add_argument(
                "--image-ids", help="file with one image id per line (default: every image in --gt)"
            )
            parser.add_argument(
                "--questions",
                help='JSONL of {"image_id", "image", "text"}: the images to caption, each with its file name '
                "and prompt, in place of --image-ids and --image-pattern (a world's bench/chair/questions.jsonl)",
            )
        else:
            parser.add_argument(
                "--captions",
                "--answers",
                dest="answers",
                required=True,
                help="captions: JSONL/JSON list with image_id and caption (OPERA, Maxlinn formats)",
            )

    def data_file(self, args) -> str:
        return args.gt

    def items_from_args(self, args) -> list[EvalItem]:
        if args.questions and (args.image_ids or args.image_pattern != "{image_id}"):
            raise TetherError("--questions names the images: leave out --image-ids and --image-pattern")
        image_ids = None
        if args.image_ids:
            image_ids = [x.strip() for x in read_text_lines(args.image_ids) if x.strip()]
        return self.load_items(
            args.gt,
            synonyms=args.synonyms,
            image_ids=image_ids,
            image_pattern=args.image_pattern,
            questions=args.questions,
        )

    def score_files(self, args, skips: SkipLog) -> FileScore:
        captions = read_captions(args.answers, skip_invalid=args.skip_invalid, skips=skips)
        items = self.load_items(
            args.gt, synonyms=args.synonyms, image_ids=list(captions), image_pattern=args.image_pattern
        )
        return FileScore(self.score(items, captions), args.gt)

    def score(self, items: list[EvalItem], answers: dict[str, str], judge=None) -> Score:
        require_answers(items, answers)
        records = []
        for item in items:
            gt = item.meta["gt_objects"]
            mentions = self.vocabulary.mentions(answers[item.id], corrected=self.corrected)
            records.append(
                {
                    "id": item.id,
                    "answer": answers[item.id],
                    "mentions": [canonical for _, canonical in mentions],
                    "hallucinated": [canonical for _, canonical in mentions if canonical not in gt],
                    "gt_objects": gt,
                }
            )
        return Score(metrics=chair_metrics(records), per_sample=records, metrics_fn=chair_metrics)


def read_captions(path, *, skip_invalid=False, skips=None) -> dict[str, str]:
    """Captions keyed by image id, from OPERA's / Maxlinn's JSONL (``image_id``, ``caption``) or a JSON list."""
    captions = {}
    for line, record in read_records(path, skip_invalid=skip_invalid, skips=skips):
        try:
            if "image_id" not in record or not isinstance(record.get("caption"), str):
                raise DataError("missing field 'image_id' or 'caption'", path, line)
            key = str(record["image_id"])
            if key in captions:
                raise DataError(f"duplicate caption for image '{key}'", path, line)
        except DataError as e:
            skip_or_raise(e, skip_invalid, skips)
            continue
        captions[key] = record["caption"]
    return captions


def _questions(path) -> list[tuple[str, str, str]]:
    """``(image_id, image file, prompt)`` from a CHAIR question file (``image_id``, ``image``, ``text``)."""
    out = []
    for line, record in read_records(path):
        require_fields(record, {"image_id": (str, int), "image": str, "text": str}, path, line)
        out.append((str(record["image_id"]), record["image"], record["text"]))
    return out
