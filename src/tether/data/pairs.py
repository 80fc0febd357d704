"""HA-DPO's pair pipeline: the model's own descriptions, judged, corrected, paired.

For each image: sample detailed descriptions from the model → a sentence judge labels every sentence
("correct", "hallucination", "cannot judge") → a description with at least one hallucinated sentence
becomes the rejected response, and its correction (each hallucinated sentence replaced by a true one in
the same style where the corrector can, otherwise dropped) the chosen one. Chosen and rejected then
differ only where the hallucination was, which is the point of HA-DPO's style-consistent rewriting: DPO
learns "do not hallucinate", not "be shorter" or "write differently".

The judge and the corrector are plain callables, so the same pipeline runs with the synthetic world's
rule judge (exact, offline) or an LLM judge through the OpenAI-compatible client. Output records are
tether's canonical preference records (TRL-compatible ``prompt``/``chosen``/``rejected``/``images``) with
the judge's verdicts as provenance; the output file is appended per image, so a rerun resumes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tether.core.errors import DataError
from tether.core.images import open_image
from tether.core.io import SkipLog, append_jsonl, parse_records, require_fields, write_text
from tether.core.text import split_sentences
from tether.decoding.dispatch import generate
from tether.eval.concurrent import completed
from tether.models.decoding import DecodingSettings
from tether.models.vllm_backend import generator

logger = logging.getLogger(__name__)

DETAIL_PROMPT = "Describe this image in detail."
# (image_id, sentences) -> one label per sentence
SentenceJudge = Callable[[str, list[str]], list[str]]
# (image_id, sentences, labels) -> corrected sentences (hallucinated ones replaced or dropped)
Corrector = Callable[[str, list[str], list[str]], list[str]]
# (image_id, chosen, rejected, n) -> n (chosen, rejected) rewrites in one style (HA-DPO's rewriting step)
StyleRewriter = Callable[[str, str, str, int], list[tuple[str, str]]]


@dataclass
class PairSettings:
    prompt: str = DETAIL_PROMPT
    samples_per_image: int = 4
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 64
    max_pairs_per_image: int = 2
    seed: int = 0
    variants: int = 0  # with a rewriter: each (chosen, rejected) becomes this many rewritten pairs
    backend: str = "hf"  # how descriptions are sampled when build_pairs is given a checkpoint path: hf | vllm
    strategy: str = "greedy"  # a training-free decoding strategy (tether.decoding) the samples are drawn with
    strategy_options: dict = field(default_factory=dict)


def drop_hallucinated(image_id: str, sentences: list[str], labels: list[str]) -> list[str]:
    """The simplest corrector: keep what the judge did not call a hallucination."""
    return [s for s, label in zip(sentences, labels) if label != "hallucination"]


@dataclass
class PairImage:
    """One line of a pair image list: the image, and what is true of it for a text-only LLM judge."""

    image_id: str
    image: str  # path under the images root
    facts: list[str]


def load_pair_images(
    path, skip_invalid: bool = False, skips: SkipLog | None = None, images=None, streaming: bool = False
) -> list[PairImage]:
    """A JSONL/JSON list of ``{image_id, image[, facts][, captions][, objects]}`` (facts and captions: a
    string or a list of strings; objects: a list, becoming one "Objects present: ..." fact). With
    ``images`` (the root), an entry whose image is missing is an error naming the line."""

    def parse(record: dict, source, line: int) -> PairImage:
        require_fields(record, {"image_id": (str, int), "image": str}, source, line)
        facts = []
        for name in ("facts", "captions"):
            value = record.get(name, [])
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise DataError(f"field '{name}' must be a string or a list of strings", source, line)
            facts += [v.strip() for v in value if v.strip()]
        objects = record.get("objects")
        if objects is not None:
            if not isinstance(objects, list) or not all(isinstance(o, str) for o in objects):
                raise DataError("field 'objects' must be a list of strings", source, line)
            facts.append("Objects present: " + (", ".join(objects) if objects else "none") + ".")
        return PairImage(str(record["image_id"]), record["image"], facts)

    images = parse_records(
        path, parse, skip_invalid=skip_invalid, skips=skips, images=images, streaming=streaming
    )
    seen: set[str] = set()
    for item in images:
        if item.image_id in seen:
            raise DataError(f"image_id '{item.image_id}' appears twice", path)
        seen.add(item.image_id)
    return images


def build_pairs(
    vlm,
    images: list[tuple[str, str]],
    images_root,
    out_path,
    judge: SentenceJudge,
    corrector: Corrector = drop_hallucinated,
    settings: PairSettings | None = None,
    judge_name: str = "",
    progress: bool = True,
    rewriter: StyleRewriter | None = None,
    load_settings=None,
    concurrency: int = 1,
) -> dict:
    """Write preference pairs for ``images`` (``(image_id, image file)``) to ``out_path``; return counts.

    ``vlm`` is a loaded model, or a checkpoint path loaded with ``settings.backend`` (hf or vllm) and
    ``load_settings`` (a ``ModelLoadSettings``: device, dtype, attention).
    With a ``rewriter``, each judged pair is rewritten into ``settings.variants`` pairs in one consistent
    style; their provenance keeps the variant number and the pair before rewriting. ``concurrency`` images
    are worked on at once (a served model's requests and an LLM judge's); a local model still generates
    for one image at a time. Pairs are appended as images finish and put in image-list order at the end.
    """
    from tqdm.auto import tqdm

    settings = settings or PairSettings()
    if rewriter is not None and settings.variants < 1:
        raise ValueError("a style rewriter needs settings.variants >= 1")
    out_path = Path(out_path)
    done = _finished_images(out_path)
    counts = {"images": 0, "descriptions": 0, "hallucinated": 0, "pairs": 0, "resumed": len(done)}
    decoding = DecodingSettings(
        max_new_tokens=settings.max_new_tokens,
        do_sample=True,
        temperature=settings.temperature,
        top_p=settings.top_p,
        strategy=settings.strategy,
        strategy_options=settings.strategy_options,
    )
    todo = [
        (index, image_id, image_file)
        for index, (image_id, image_file) in enumerate(images)
        if image_id not in done
    ]
    if todo and isinstance(vlm, str | Path):  # loaded only when some image is left to do
        vlm = generator(vlm, settings.backend, load_settings)
        logger.debug("the prompt, as the model sees it: %r", vlm.prompt_text(settings.prompt))
    # a local model seeds torch's global generator before each batch: one image at a time; a served model
    # takes the seed with each request and bounds its own requests in flight
    generation_lock = contextlib.nullcontext() if hasattr(vlm, "concurrency") else threading.Lock()

    def image_pairs(task):
        index, image_id, image_file = task
        image = open_image(images_root, image_file)
        # each image's samples are reproducible alone
        seeded = replace(decoding, seed=settings.seed * 1_000_003 + index)
        with generation_lock:
            descriptions = generate(
                vlm, [image] * settings.samples_per_image, [settings.prompt] * settings.samples_per_image, seeded
            )
        return _pairs_of_image(
            image_id, image_file, descriptions, judge, corrector, settings, judge_name, vlm, rewriter
        )

    with tqdm(total=len(images), initial=len(images) - len(todo), disable=not progress, desc="pairs") as bar:
        for (_, image_id, _), (pairs, described, hallucinated) in completed(image_pairs, todo, concurrency):
            for pair in pairs:
                append_jsonl(out_path, pair)
            # then one line per image, pairs or not: what was done is never redone
            append_jsonl(out_path.with_suffix(".progress.jsonl"), {"image_id": image_id, "pairs": len(pairs)})
            counts["images"] += 1
            counts["pairs"] += len(pairs)
            counts["descriptions"] += described
            counts["hallucinated"] += hallucinated
            bar.update(1)
    if concurrency > 1:
        _order_by_images(out_path, [image_id for image_id, _ in images])
    return counts


def _pairs_of_image(
    image_id, image_file, descriptions, judge, corrector, settings, judge_name, vlm, rewriter
):
    """The judged (and rewritten) pairs of one image's descriptions, with how many were judged and how many
    had a hallucination."""
    pairs, described, hallucinated = [], 0, 0
    for description in dict.fromkeys(descriptions):  # identical samples make one candidate
        sentences = split_sentences(description)
        if not sentences:
            continue
        labels = judge(image_id, sentences)
        described += 1
        if "hallucination" not in labels:
            continue
        hallucinated += 1
        corrected = corrector(image_id, sentences, labels)
        if not corrected or len(pairs) >= settings.max_pairs_per_image:
            continue
        pairs.append(
            {
                "prompt": settings.prompt,
                "chosen": join_sentences(corrected),
                "rejected": join_sentences(sentences),
                "images": [image_file],
                "image_id": image_id,
                "provenance": {
                    "source": "tether data pairs",
                    "judge": judge_name,
                    "labels": labels,
                    "model": getattr(vlm, "path", None),
                    "settings": asdict(settings),
                },
            }
        )
    if rewriter is not None:
        pairs = [variant for pair in pairs for variant in _rewritten(pair, rewriter, settings.variants)]
    return pairs, described, hallucinated


def _order_by_images(out_path: Path, image_ids: list[str]) -> None:
    """Pairs in image-list order (they were appended as images finished), so the file does not depend on
    which request came back first."""
    if not out_path.is_file():
        return
    position = {image_id: n for n, image_id in enumerate(image_ids)}
    lines = out_path.read_text().splitlines()
    lines.sort(key=lambda line: position.get(json.loads(line)["image_id"], len(position)))  # stable
    _rewrite_lines(out_path, lines)


def join_sentences(sentences: list[str]) -> str:
    """Sentences back into text, each ending in '.', '!' or '?' (the split removed the periods), so chosen
    and rejected are punctuated alike whichever corrector wrote the chosen sentences."""
    return " ".join(s if s.endswith((".", "!", "?")) else s + "." for s in sentences)


def _rewritten(pair: dict, rewriter: StyleRewriter, variants: int) -> list[dict]:
    rewrites = rewriter(pair["image_id"], pair["chosen"], pair["rejected"], variants)
    out = []
    for number, (chosen, rejected) in enumerate(rewrites):
        provenance = {
            **pair["provenance"],
            "variant": number,
            "before_rewrite": {"chosen": pair["chosen"], "rejected": pair["rejected"]},
        }
        out.append({**pair, "chosen": chosen, "rejected": rejected, "provenance": provenance})
    return out


def _finished_images(out_path: Path) -> set[str]:
    """Images finished by an earlier run; pairs of an image whose run was cut short are removed, and so are
    lines torn by the interruption (the next append would otherwise continue a torn line)."""
    progress = out_path.with_suffix(".progress.jsonl")
    done = set()
    if progress.is_file():
        kept_progress = []
        for line in progress.read_text().splitlines():
            try:
                done.add(json.loads(line)["image_id"])
                kept_progress.append(line)
            except (ValueError, KeyError, TypeError):
                logger.warning("%s: torn progress line ignored (interrupted run)", progress)
        _rewrite_lines(progress, kept_progress)
    if out_path.is_file():
        kept = []
        for line in out_path.read_text().splitlines():
            try:
                if json.loads(line)["image_id"] in done:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):  # torn by the interruption: its image is redone
                logger.warning("%s: damaged pair record dropped", out_path)
        _rewrite_lines(out_path, kept)
    return done


def _rewrite_lines(path: Path, lines: list[str]) -> None:
    """Atomically: a kill during the rewrite leaves the old file, never half of it (through a symlink)."""
    write_text(path, "".join(line + "\n" for line in lines))
