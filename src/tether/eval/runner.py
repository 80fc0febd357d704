"""The model runner: answers for benchmark items, resumable, then scored and written as results.

Two ways to answer:

- ``generate``: batched generation (left padding), greedy unless told otherwise. Batched answers equal
  batch-of-one answers (tested in tests/models).
- ``fast`` (yes/no benchmarks only): one forward per question and no decoding loop. The image and the
  prompt text before the question are encoded once per image (a KV cache expanded over that image's
  questions); the answer is "Yes" if the next-token probability mass of the yes-tokens beats that of the
  no-tokens. Agreement with ``generate`` is measured by ``benchmarks/pope_fast_vs_generate.py``.

Every finished sample is appended (fsync'd) to ``samples.jsonl`` as ``{"id", "answer", "question",
"image", ...}`` (fast mode adds ``p_yes``); a rerun skips the ids already there, so a killed run loses at
most the batch in flight. At the end the file is rewritten with the scored records, each with the question,
image (and p_yes) of its item, next to ``results.json``.

Every input is checked before the model loads: the images folder and each item's image file.

With ``endpoint`` (``tether.eval.endpoint.EndpointModel``) the model is a served one: its requests run
``endpoint.concurrency`` at a time, each answer written as it completes, in either mode. ``concurrency``
> 1 also asks an LLM judge that many at a time (``tether.eval.concurrent``).

"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import torch

from tether.core.errors import DataError, TetherError
from tether.core.fingerprints import MARKER, claim_output
from tether.core.images import open_image, resolve_under
from tether.core.io import SkipLog, append_jsonl
from tether.decoding.dispatch import fast_margins, resolve
from tether.decoding.dispatch import generate as decoding_generate
from tether.decoding.registry import GREEDY
from tether.eval.concurrent import PrefetchedJudge, progress_bar
from tether.eval.endpoint import endpoint_answers
from tether.eval.results import RESULTS_FILE, SAMPLES_FILE, write_results
from tether.eval.run_identity import answer_inputs, endpoint_identity, judge_record
from tether.models.decoding import DecodingSettings
from tether.models.placement import ModelLoadSettings, placement_record
from tether.models.vllm_backend import BACKENDS, generator

logger = logging.getLogger(__name__)


def read_finished(path: Path) -> dict[str, str]:
    """Answers already in ``samples.jsonl``. A torn last line (killed mid-write) is dropped with a warning;
    a bad line anywhere else means the file was damaged and is an error, not silently reused."""
    return {key: record["answer"] for key, record in read_finished_records(path).items()}


def read_finished_records(path: Path) -> dict[str, dict]:
    """The records of ``read_finished``, whole (answer, question, image, p_yes), keyed by id."""
    if not path.is_file():
        return {}
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    finished = {}
    for number, raw in enumerate(lines, start=1):
        try:
            record = json.loads(raw)
            if "answer" not in record:
                raise KeyError("answer")
            finished[str(record["id"])] = record
        except (ValueError, KeyError, TypeError):
            if number == len(lines):
                logger.warning(
                    "%s:%d: incomplete last record (interrupted run); it will be redone", path, number
                )
                _truncate_last_line(path, raw)
                break
            raise DataError(
                "damaged record (not an {id, answer} object); delete the file to start over", path, number
            ) from None
    return finished


def _truncate_last_line(path: Path, torn: bytes) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - len(torn)])


def run_benchmark(
    benchmark,
    items,
    *,
    model_path=None,
    vlm=None,
    images_root,
    out_dir,
    decoding=None,
    mode: str = "generate",
    judge=None,
    data_file=None,
    data_version: str | None = None,
    seed: int = 0,
    skip_invalid: bool = False,
    progress: bool = True,
    batch_size: int | None = None,
    backend: str = "hf",
    load_settings: ModelLoadSettings | None = None,
    extra: dict | None = None,
    overwrite: bool = False,
    endpoint=None,
    concurrency: int = 1,
):
    """Answer ``items`` with the model, score them with ``benchmark`` and write results to ``out_dir``.

    ``backend`` generates through Hugging Face (``hf``) or vLLM (``vllm``, generate mode only); an
    ``endpoint`` replaces both. ``concurrency`` is the number of judge requests in flight.
    ``load_settings`` places a local model (device, dtype, attention); where it ran is recorded in
    ``results.json`` (``extra.model_placement``), beside anything given in ``extra``. ``out_dir`` records
    what its answers come from (``fingerprint.json``): a rerun with the same model (or endpoint), placement,
    items, mode, decoding and judge resumes; another one is refused unless ``overwrite``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings, default_batch = _decoding(decoding)
    batch_size = batch_size or default_batch
    if mode == "fast" and any(item.kind != "yesno" for item in items):
        raise TetherError(f"--mode fast needs yes/no questions; {benchmark.name} has free-form items")
    if mode not in ("generate", "fast"):
        raise TetherError(f"unknown mode '{mode}' (generate or fast)")
    if backend not in BACKENDS:
        raise TetherError(f"unknown generation backend '{backend}'; choose from {', '.join(BACKENDS)}")
    if backend != "hf" and mode == "fast" and endpoint is None:
        raise TetherError("--mode fast reads next-token logits from a forward pass: use --backend hf")
    if benchmark.needs_judge and judge is None:
        raise TetherError(f"{benchmark.name} needs a judge (see --judge-* options)")
    if settings.strategy != GREEDY and (endpoint is not None or backend != "hf"):
        raise TetherError(f"decoding '{settings.strategy}' runs on a local model: use --backend hf, no --endpoint")

    model_name = str(model_path) if model_path is not None else getattr(endpoint or vlm, "path", None)
    claim_output(
        out_dir / MARKER,
        answer_inputs(
            benchmark, items, model_name, data_file, images_root, mode, backend, settings, judge, load_settings
        )
        | ({"backend": "endpoint", "endpoint": endpoint_identity(endpoint)} if endpoint is not None else {}),
        produced=[out_dir / SAMPLES_FILE, out_dir / RESULTS_FILE],
        overwrite=overwrite,
        what="answers",
    )
    samples_path = out_dir / SAMPLES_FILE
    stored = read_finished_records(samples_path)
    answers = {key: record["answer"] for key, record in stored.items()}
    todo = [item for item in items if item.id not in answers]
    skips = SkipLog()
    if todo:
        check_images(todo, images_root, skip_invalid)
        logger.info(
            "%s: %d of %d items to answer (%d already done)",
            benchmark.name,
            len(todo),
            len(items),
            len(items) - len(todo),
        )
        if endpoint is not None:
            answered = endpoint_answers(
                endpoint, todo, images_root, settings, mode, skip_invalid, skips, progress
            )
        else:
            if vlm is None:
                vlm = generator(model_path, backend, load_settings)
            if hasattr(vlm, "prompt_text"):
                logger.debug("first prompt, as the model sees it: %r", vlm.prompt_text(todo[0].prompt))
            answer_fn = _fast_answers if mode == "fast" else _generate_answers
            answered = answer_fn(vlm, todo, images_root, settings, batch_size, skip_invalid, skips, progress)
        for item, answer, p_yes in answered:
            record = {
                "id": item.id,
                "answer": answer,
                "mode": mode,
                "question": item.prompt,
                "image": item.image,
            }
            if p_yes is not None:
                record["p_yes"] = p_yes
            append_jsonl(samples_path, record)
            answers[item.id] = answer
            stored[item.id] = record
    scored_items = [item for item in items if item.id in answers]
    # the items' order, not the order answers arrived in (concurrent requests finish in any order)
    answers = {item.id: answers[item.id] for item in scored_items}
    score = (
        benchmark.score(
            scored_items, answers, judge=_prefetched(judge, benchmark, scored_items, answers, concurrency)
        )
        if judge is not None
        else benchmark.score(scored_items, answers)
    )
    score.scoring = benchmark.scoring()
    if skips.skipped:
        score.notes["skipped_items"] = skips.skipped
        score.notes["skip_reasons"] = skips.reasons
    _add_item_fields(score.per_sample, scored_items, stored)
    decoding_record = {**settings.to_dict(), "batch_size": batch_size, "mode": mode, "backend": backend}
    if load_settings is not None and load_settings.chat_template:
        # a chosen chat template changes every prompt, so it is recorded with the decoding
        decoding_record["chat_template"] = load_settings.chat_template
    extra = dict(extra or {})
    if endpoint is not None:
        decoding_record["backend"] = "endpoint"
        extra["endpoint"] = endpoint.record(mode, previous=_previous_endpoint(out_dir))
    elif vlm is not None and hasattr(vlm, "model"):
        extra["model_placement"] = placement_record(vlm.model)
    elif load_settings is not None:  # vLLM, or every answer resumed: what was asked
        extra["model_load"] = load_settings.load_options()
    write_results(
        out_dir,
        benchmark.name,
        score,
        model=model_name,
        data_file=data_file,
        data_version=data_version,
        decoding=decoding_record,
        judge=judge_record(judge),
        seed=seed,
        extra=extra,
    )
    return score


def _prefetched(judge, benchmark, items, answers, concurrency: int):
    """The judge, with its replies for ``items`` asked ``concurrency`` at a time beforehand when > 1."""
    if concurrency <= 1 or benchmark.name not in ("mmhal", "shr"):
        return judge
    prefetched = PrefetchedJudge(judge)
    prefetched.prefetch(benchmark.name, items, answers, concurrency)
    return prefetched


def _previous_endpoint(out_dir: Path) -> dict | None:
    """The endpoint record of an earlier run into ``out_dir`` (a rerun that asks nothing keeps its reported model)."""
    path = out_dir / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("extra", {}).get("endpoint")
    except (ValueError, AttributeError):
        return None


def _decoding(decoding) -> tuple[DecodingSettings, int]:
    if isinstance(decoding, DecodingSettings):
        return resolve(decoding), 8
    decoding = dict(decoding or {})
    batch_size = int(decoding.pop("batch_size", 8))
    known = DecodingSettings.__dataclass_fields__
    unknown = sorted(set(decoding) - set(known))
    if unknown:
        raise TetherError(f"unknown decoding settings {unknown}")
    return resolve(DecodingSettings(**decoding)), batch_size


def check_images(items, images_root, skip_invalid: bool) -> None:
    """Every image the items name exists under ``images_root``, checked before a model is loaded (minutes
    on a large checkpoint) rather than at the first missing file. With ``skip_invalid`` the missing ones are
    left to be skipped and counted as they come."""
    root = Path(images_root)
    if not root.is_dir():
        raise TetherError(f"--images {root}: no such folder")
    images = list(dict.fromkeys(item.image for item in items))
    missing = []
    for image in images:
        try:
            found = Path(resolve_under(root, image)).is_file()
        except DataError:  # a path that leaves the root
            found = False
        if not found:
            missing.append(image)
    if missing and not skip_invalid:
        raise DataError(
            f"{len(missing)} of {len(images)} images not found under {root} (first: '{missing[0]}'); "
            "--skip-invalid skips and counts them"
        )
    if missing:
        logger.warning(
            "%d of %d images not found under %s; they will be skipped", len(missing), len(images), root
        )


def _add_item_fields(records: list[dict], items, stored: dict[str, dict]) -> None:
    """The question and image of each scored record's item, and its p(yes) from fast mode, kept in the
    final ``samples.jsonl`` (the scorers' records carry only what scoring needs)."""
    by_id = {item.id: item for item in items}
    for record in records:
        item = by_id.get(str(record.get("id"))) or by_id.get(str(record.get("image_id")))  # SHR: sentences
        if item is None:
            continue
        record.setdefault("question", item.prompt)
        record.setdefault("image", item.image)
        if "p_yes" in stored.get(item.id, {}):
            record.setdefault("p_yes", stored[item.id]["p_yes"])


def _open(item, images_root, skip_invalid: bool, skips: SkipLog):
    try:
        return open_image(images_root, item.image)
    except DataError as e:
        if not skip_invalid:
            raise DataError(f"item '{item.id}': {e}") from None
        skips.add(f"item '{item.id}': {e}")
        return None


def _batches(seq, size):
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _generate_answers(vlm, items, images_root, settings, batch_size, skip_invalid, skips, progress):
    with progress_bar(len(items), progress, "generate") as bar:
        for chunk in _batches(items, batch_size):
            opened = [(item, _open(item, images_root, skip_invalid, skips)) for item in chunk]
            opened = [(item, image) for item, image in opened if image is not None]
            if opened:
                images, prompts = [im for _, im in opened], [it.prompt for it, _ in opened]
                texts = decoding_generate(vlm, images, prompts, settings)
                yield from ((item, text, None) for (item, _), text in zip(opened, texts))
            bar.update(len(chunk))


def _fast_answers(vlm, items, images_root, settings, batch_size, skip_invalid, skips, progress):
    """``batch_size`` images per prefix forward, all their questions at once. Images are grouped by pixel size:
    the visual-token count is a function of it, and grouping needs no extra pass of the image processor."""
    by_image = defaultdict(list)
    for item in items:
        by_image[item.image].append(item)
    with progress_bar(len(items), progress, "yes/no") as bar:
        for chunk in _batches(list(by_image.values()), max(batch_size, 1)):
            opened = [(group, _open(group[0], images_root, skip_invalid, skips)) for group in chunk]
            by_size = defaultdict(list)
            for group, image in opened:
                if image is not None:
                    by_size[image.size].append((group, image))
            for same in by_size.values():
                questions = [(i, item) for i, (group, _) in enumerate(same) for item in group]
                margins = fast_margins(
                    vlm, [image for _, image in same], [(i, item.prompt) for i, item in questions], settings
                )
                # p(yes) = P(yes-tokens) / (P(yes-tokens) + P(no-tokens)), the margin's logistic
                p_yes = torch.sigmoid(margins.float()).tolist()
                yield from (
                    (item, "Yes" if m > 0 else "No", p)
                    for (_, item), m, p in zip(questions, margins.tolist(), p_yes)
                )
            bar.update(sum(len(group) for group in chunk))
