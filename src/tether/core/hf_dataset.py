"""Hugging Face datasets as training input: every loader reads them where it reads JSONL.

A data path is a dataset when it is a ``save_to_disk`` folder, a ``.parquet`` or ``.arrow`` file, or
``hf:NAME`` (or ``hf:NAME:SPLIT``) for a dataset already in the local Hugging Face cache (never downloaded:
tether runs the lookup offline). Each row becomes the JSON record the format's loader already parses, so the
same checks and the same bad-input rules apply; a bad row is reported as ``file:row``.

Images embedded in a row (``datasets.Image`` columns decoded to PIL, raw bytes, or ``{"bytes": ...}``) are
not written to disk: the record names them ``embedded://<dataset>#<row>/<column>[/<index>]`` and
``open_image`` decodes them from the dataset when a batch needs them. Parquet files are streamed row group by
row group off the file; other datasets are memory-mapped: a large set is never held whole.

Declared schemas map the columns of the common formats onto tether's records:

- TRL's SFT format (``messages`` with ``role``/``content``, ``images``): LLaVA ``conversations``;
- TRL's preference format (``prompt``/``chosen``/``rejected`` as strings or message lists, ``images``):
  tether's preference record;
- RLAIF-V (``image``, ``question``, ``chosen``, ``rejected``) and LLaVA-style conversations (``image``,
  ``conversations``) already are the records their loaders read; only their images are mapped.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from pathlib import Path

from tether.core.errors import DataError, skip_or_raise

EMBEDDED = "embedded://"
HUB_PREFIX = "hf:"
# datasets read as data in this process: an embedded:// name may point only into one of them, as a file
# name may point only inside the image root (a JSONL record cannot make tether read any dataset on disk)
_READ_AS_DATA: set[str] = set()


def is_dataset_source(path) -> bool:
    text = str(path)
    if text.startswith(HUB_PREFIX):
        return True
    path = Path(path)
    if path.suffix in (".parquet", ".arrow"):
        return True
    return path.is_dir() and (
        (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()
    )


@functools.lru_cache(maxsize=8)
def open_dataset(source: str):
    """The dataset at ``source`` (the ``train`` split of a dataset dict), memory-mapped, not read whole."""
    import datasets

    try:
        if source.startswith(HUB_PREFIX):
            name, _, split = source[len(HUB_PREFIX) :].partition(":")
            files = cached_hub_files(name, split or "train")
            if files:  # a snapshot in the hub cache (snapshot_download, hf download): its data files
                kind = "parquet" if files[0].endswith(".parquet") else "arrow"
                data = datasets.load_dataset(kind, data_files=files, split="train")
            else:  # prepared earlier by load_dataset: the datasets cache, looked up offline
                datasets.config.HF_HUB_OFFLINE = True
                data = datasets.load_dataset(name, split=split or "train")
        elif Path(source).is_dir():
            data = datasets.load_from_disk(source)
        elif source.endswith(".arrow") and _is_arrow_stream(source):
            data = datasets.Dataset.from_file(source)  # memory-mapped where it is, no copy into the cache
        else:
            kind = "parquet" if source.endswith(".parquet") else "arrow"
            data = datasets.load_dataset(kind, data_files=source, split="train")
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as e:
        raise DataError(f"cannot read as a Hugging Face dataset ({type(e).__name__}: {e})", source) from None
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data:
            raise DataError(f"dataset has no 'train' split (splits: {', '.join(data)})", source)
        data = data["train"]
    return data


def _is_arrow_stream(source: str) -> bool:
    """Whether ``source`` is an arrow stream (what ``datasets`` writes), which it can memory-map in place."""
    import pyarrow as pa

    try:
        with pa.memory_map(source) as f:
            pa.ipc.open_stream(f)  # reads the schema: fails on anything else
        return True
    except (OSError, pa.ArrowInvalid):
        return False


def cached_hub_files(name: str, split: str) -> list[str]:
    """The parquet (else arrow) files of ``split`` in the hub cache's snapshot of dataset ``name``."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}"
    ref = repo / "refs" / "main"
    if not ref.is_file():
        return []
    snapshot = repo / "snapshots" / ref.read_text().strip()
    for suffix in ("parquet", "arrow"):
        files = sorted(str(f) for f in snapshot.rglob(f"*.{suffix}"))
        # HF's layout names the split in the file or folder name (data/train-00000-of-00001.parquet)
        in_split = [f for f in files if split in Path(f).relative_to(snapshot).as_posix()]
        if in_split or files:
            return in_split or files
    return []


def dataset_rows(path, **kwargs) -> list[tuple[int, dict]]:
    """``(row, record)`` for every row of the dataset at ``path`` (rows counted from 1, like JSONL lines)."""
    return list(iter_dataset_rows(path, **kwargs))


def iter_dataset_rows(
    path, *, streaming: bool = False, skip_invalid: bool = False, skips=None
) -> Iterator[tuple[int, dict]]:
    """``(row, record)`` for each row of the dataset at ``path``, one at a time. A row whose columns do not
    fit its schema is a ``DataError`` naming ``path:row``, or with ``skip_invalid`` is counted in ``skips``.

    ``streaming``: rows come through ``datasets``' streaming reader (an ``IterableDataset``) straight off
    the parquet or arrow files, never prepared into the datasets cache nor held whole; without it, parquet
    is read row group by row group and other sets memory-mapped through the cache."""
    source = str(path) if str(path).startswith(HUB_PREFIX) else str(Path(path).resolve())
    _READ_AS_DATA.add(source)
    if streaming:
        rows = iter(stream_dataset(source))
    elif source.endswith(".parquet"):
        rows = _parquet_rows(source)
    else:  # in batches off the memory-mapped table, images left as bytes
        rows = _table_rows(undecoded_images(open_dataset(source)))
    for index, row in enumerate(rows, start=1):
        try:
            record = to_record(row, source, index)
        except DataError as e:
            skip_or_raise(e, skip_invalid, skips)
            continue
        yield index, record


def stream_dataset(source: str):
    """The dataset at ``source`` as an ``IterableDataset`` that reads its files lazily, images undecoded."""
    import datasets

    try:
        if source.startswith(HUB_PREFIX):
            name, _, split = source[len(HUB_PREFIX) :].partition(":")
            files = cached_hub_files(name, split or "train")
            # a set prepared by load_dataset lives in the datasets cache as arrow files: read off them
            data = _stream_files(files) if files else open_dataset(source).to_iterable_dataset()
        elif Path(source).is_dir():  # save_to_disk: its arrow shards, memory-mapped
            data = open_dataset(source).to_iterable_dataset()
        else:
            data = _stream_files([source])
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as e:
        raise DataError(f"cannot read as a Hugging Face dataset ({type(e).__name__}: {e})", source) from None
    return undecoded_images(data) if data.features is not None else data


def _stream_files(files: list[str]):
    import datasets

    kind = "parquet" if files[0].endswith(".parquet") else "arrow"
    return datasets.load_dataset(kind, data_files=files, split="train", streaming=True)


def _table_rows(data) -> Iterator[dict]:
    for batch in data.iter(batch_size=256):
        for values in zip(*batch.values()):
            yield dict(zip(batch.keys(), values))


@functools.lru_cache(maxsize=8)
def _parquet_file(source: str):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"not a readable parquet file ({type(e).__name__}: {e})", source) from None


def _parquet_rows(source: str) -> Iterator[dict]:
    """Parquet rows read batch by batch off the file (no copy into the datasets cache)."""
    for batch in _parquet_file(source).iter_batches(batch_size=256):
        yield from batch.to_pylist()


def _parquet_value(sources: list[str], row: int, column: str):
    """One cell of a parquet set (its files in order), reading only the row group that holds it."""
    offset = 0
    for source in sources:
        parquet = _parquet_file(source)
        for group in range(parquet.num_row_groups):
            count = parquet.metadata.row_group(group).num_rows
            if row - 1 < offset + count:
                table = parquet.read_row_group(group, columns=[column])
                return table.column(0)[row - 1 - offset].as_py()
            offset += count
    raise IndexError(f"row {row} past the end ({offset} rows)")


def _parquet_files(dataset: str) -> list[str]:
    """The parquet files that hold ``dataset``'s rows in order, where it is parquet (else empty)."""
    if dataset.endswith(".parquet"):
        return [dataset]
    if dataset.startswith(HUB_PREFIX):
        name, _, split = dataset[len(HUB_PREFIX) :].partition(":")
        files = cached_hub_files(name, split or "train")
        return files if files and files[0].endswith(".parquet") else []
    return []


def undecoded_images(data):
    """``data`` with its image columns left as ``{"bytes", "path"}``: decoding every image of the set to
    read its text would cost more than the training reads; ``open_image`` decodes one when it is used."""
    import datasets

    for name, feature in data.features.items():
        if isinstance(feature, datasets.Image):
            data = data.cast_column(name, datasets.Image(decode=False))
        elif isinstance(feature, (datasets.Sequence, datasets.List)) and isinstance(
            feature.feature, datasets.Image
        ):
            data = data.cast_column(name, datasets.List(datasets.Image(decode=False)))
    return data


def to_record(row: dict, source: str, index: int) -> dict:
    """The JSON record of one dataset row: embedded images as references, columns mapped by its schema."""
    row = {key: _image_refs(value, f"{EMBEDDED}{source}#{index}/{key}") for key, value in row.items()}
    if "messages" in row:
        return _trl_sft(row, source, index)
    if "prompt" in row and "chosen" in row and not isinstance(row["chosen"], str):
        return _trl_preference(row, source, index)
    if "images" in row and "image" not in row and "prompt" in row and "chosen" in row:
        return _trl_preference(row, source, index)
    return row


def _is_image(value) -> bool:
    from PIL import Image

    return (
        isinstance(value, (bytes, Image.Image))
        or isinstance(value, dict)
        and isinstance(value.get("bytes"), bytes)
    )


def _image_refs(value, ref: str):
    if _is_image(value):
        return ref
    if isinstance(value, list) and value and all(_is_image(v) for v in value):
        return [f"{ref}/{i}" for i in range(len(value))]
    return value


def _text_of(content, source, index) -> str:
    """The text of a TRL message content: a string, or a list of ``{"type": "text"|"image", ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise DataError(
        f"message content must be a string or a list of parts, got {type(content).__name__}", source, index
    )


def _one_image(row: dict, source, index) -> str | None:
    images = row.get("images", row.get("image"))
    if isinstance(images, list):
        if len(images) > 1:
            raise DataError(f"a record takes one image, this row has {len(images)}", source, index)
        images = images[0] if images else None
    return images


def _trl_sft(row: dict, source, index) -> dict:
    messages = row["messages"]
    if not isinstance(messages, list):
        raise DataError("'messages' must be a list of {role, content}", source, index)
    roles = {"user": "human", "assistant": "gpt"}
    turns = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in (*roles, "system"):
            raise DataError("each message needs a role of user, assistant or system", source, index)
        if m["role"] != "system":
            turns.append({"from": roles[m["role"]], "value": _text_of(m.get("content"), source, index)})
    record = {"conversations": turns}
    image = _one_image(row, source, index)
    if image is not None:
        record["image"] = image
    return record


def _message_text(value, source, index) -> str:
    """A TRL preference field: a string, or a message list whose texts are joined."""
    if isinstance(value, list):
        return " ".join(_text_of(m.get("content"), source, index) for m in value if isinstance(m, dict))
    return value


def _trl_preference(row: dict, source, index) -> dict:
    record = {key: _message_text(row.get(key), source, index) for key in ("prompt", "chosen", "rejected")}
    image = _one_image(row, source, index)
    if image is not None:
        record["image"] = image
    return record


def open_embedded_image(ref: str, *, source=None, line: int | None = None):
    """Decode the image an ``embedded://`` reference names, from its dataset."""
    from PIL import Image

    dataset, _, where = ref[len(EMBEDDED) :].rpartition("#")
    parts = where.split("/")
    if dataset not in _READ_AS_DATA:
        raise DataError(f"embedded image '{ref}' is not in a dataset read as data", source, line)
    try:
        row, column, item = int(parts[0]), parts[1], (int(parts[2]) if len(parts) > 2 else None)
        files = _parquet_files(dataset)
        if files:  # read off the files, never through the datasets cache
            value = _parquet_value(files, row, column)
        else:
            value = open_dataset(dataset)[row - 1][column]
        if item is not None:
            value = value[item]
    except (ValueError, IndexError, KeyError) as e:
        raise DataError(f"embedded image '{ref}' not found ({type(e).__name__}: {e})", source, line) from None
    if isinstance(value, Image.Image):
        return value
    data = value["bytes"] if isinstance(value, dict) else value
    return Image.open(io.BytesIO(data))


def image_file_stat(root, image: str) -> tuple[int, int]:
    """``(size, mtime_ns)`` of the file that holds ``image`` (an embedded image: its dataset), for
    fingerprints that notice changed images without hashing them."""
    if image.startswith(EMBEDDED):
        dataset = image[len(EMBEDDED) :].rpartition("#")[0]
        if dataset.startswith(HUB_PREFIX):  # the cache holds one immutable revision per name
            return 0, 0
        path = Path(dataset)
        if path.is_dir():  # save_to_disk: its arrow shards
            stats = [f.stat() for f in sorted(path.glob("*.arrow"))]
            return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)
    else:
        path = Path(root) / image
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns
