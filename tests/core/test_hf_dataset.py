"""Hugging Face datasets (parquet, arrow, save_to_disk) as input, with images embedded in the rows."""

import io
import json

import datasets
import pytest
from PIL import Image

from tether.core.config import load_config
from tether.core.errors import DataError
from tether.core.images import open_image
from tether.core.io import SkipLog
from tether.data import preference, rlhf
from tether.data.sft import load_sft_records
from tether.methods.sft import SFTConfig, train_sft

COLOURS = ["red", "blue", "green"]


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _features(**columns):
    return datasets.Features({name: kind for name, kind in columns.items()})


@pytest.fixture
def trl_sft_parquet(tmp_path):
    """TRL's SFT format: a list of images (datasets.Image, stored as PNG bytes) and role/content messages."""
    rows = {
        "images": [[Image.new("RGB", (32, 32), c)] for c in COLOURS],
        "messages": [
            [
                {
                    "role": "user",
                    "content": [{"type": "image"}, {"type": "text", "text": "what color is it ?"}],
                },
                {"role": "assistant", "content": [{"type": "text", "text": c}]},
            ]
            for c in COLOURS
        ],
    }
    path = tmp_path / "sft.parquet"
    datasets.Dataset.from_dict(rows).cast_column("images", datasets.Sequence(datasets.Image())).to_parquet(
        path
    )
    return path


def test_trl_sft_parquet_reads_embedded_images(trl_sft_parquet, tmp_path):
    records = load_sft_records(trl_sft_parquet)
    assert [(r.prompt, r.response) for r in records] == [("what color is it ?", c) for c in COLOURS]
    for record, colour in zip(records, COLOURS):
        assert record.image.startswith("embedded://")
        image = open_image(tmp_path / "unused", record.image)  # no image folder: decoded from the dataset
        assert image.getpixel((0, 0)) == Image.new("RGB", (1, 1), colour).getpixel((0, 0))
    assert not list(tmp_path.glob("**/*.png"))  # nothing written to disk


def test_rlaif_v_bytes_column_from_save_to_disk_and_arrow(tmp_path):
    rows = {
        "image": [{"bytes": _png(c), "path": None} for c in COLOURS],
        "question": ["describe the image ."] * 3,
        "chosen": [f"a {c} square ." for c in COLOURS],
        "rejected": ["a dog ."] * 3,
        "ds_name": ["x"] * 3,
    }
    data = datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image(decode=False))
    data.save_to_disk(tmp_path / "rlaif")
    arrow = next((tmp_path / "rlaif").glob("*.arrow"))
    for source in (tmp_path / "rlaif", arrow):
        pairs = preference.load_preference_records(source)
        assert [p.chosen for p in pairs] == rows["chosen"] and pairs[0].source["format"] == "rlaif_v"
        blue = open_image(tmp_path, pairs[1].image)
        assert blue.getpixel((0, 0)) == (0, 0, 255)


@pytest.fixture
def trl_preference_parquet(tmp_path):
    rows = {
        "images": [[Image.new("RGB", (32, 32), c)] for c in COLOURS],
        "prompt": [[{"role": "user", "content": [{"type": "text", "text": "what color ?"}]}]] * 3,
        "chosen": [[{"role": "assistant", "content": [{"type": "text", "text": c}]}] for c in COLOURS],
        "rejected": [[{"role": "assistant", "content": [{"type": "text", "text": "purple"}]}]] * 3,
    }
    path = tmp_path / "pref.parquet"
    datasets.Dataset.from_dict(rows).cast_column("images", datasets.Sequence(datasets.Image())).to_parquet(
        path
    )
    return path


def test_trl_preference_parquet_for_dpo_reward_and_ppo(trl_preference_parquet, tmp_path):
    path = trl_preference_parquet
    dpo_pairs = preference.load_preference_records(path)
    assert [(p.prompt, p.chosen, p.rejected) for p in dpo_pairs] == [
        ("what color ?", c, "purple") for c in COLOURS
    ]
    reward_pairs = rlhf.load_preference_records(path)
    assert [p.chosen for p in reward_pairs] == COLOURS
    prompts = rlhf.load_prompt_records(path)
    assert [p.prompt for p in prompts] == ["what color ?"] * 3
    assert open_image(tmp_path, prompts[2].image).getpixel((0, 0)) == (0, 128, 0)


def test_bad_row_names_file_and_row_or_is_skipped(tmp_path):
    rows = {"image": [_png("red"), _png("blue")], "question": ["q", ""], "answer": ["red", "blue"]}
    path = tmp_path / "qa.parquet"
    datasets.Dataset.from_dict(rows).to_parquet(path)
    with pytest.raises(DataError, match=r"qa\.parquet:2: field 'question'"):
        load_sft_records(path)
    skips = SkipLog()
    assert len(load_sft_records(path, skip_invalid=True, skips=skips)) == 1 and skips.skipped == 1


def test_train_sft_from_parquet_with_embedded_images(tiny_checkpoint, trl_sft_parquet, tmp_path):
    out = tmp_path / "run"
    config = load_config(
        SFTConfig,
        None,
        [
            f"model.path={tiny_checkpoint}",
            f"data.train=[{trl_sft_parquet}]",
            f"data.images={tmp_path / 'no-images'}",
            f"train.output_dir={out}",
            "train.max_steps=2",
            "train.per_device_train_batch_size=3",
            "train.progress_bar=false",
        ],
    )
    train_sft(config)
    record = json.loads((out / "run.json").read_text())
    assert [r for r in record["log_history"] if "train_loss" in r]


def test_parquet_is_streamed_by_row_group(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    colours = ["red", "blue", "green", "white", "black"]
    table = pa.table(
        {
            "image": [{"bytes": _png(c), "path": None} for c in colours],
            "question": ["what color ?"] * 5,
            "answer": colours,
        }
    )
    path = tmp_path / "qa.parquet"
    pq.write_table(table, path, row_group_size=2)  # three row groups
    monkeypatch.setattr(datasets, "load_dataset", None)  # parquet never goes through the datasets cache
    records = load_sft_records(path)
    assert [r.response for r in records] == colours
    assert open_image(tmp_path, records[4].image).getpixel((0, 0)) == (0, 0, 0)  # from the third group
    with pytest.raises(DataError, match="not found"):
        open_image(tmp_path, records[4].image.replace("#5/", "#9/"))
    other = tmp_path / "other.parquet"  # a dataset no data file was read from: refused, like ../ paths
    pq.write_table(table, other)
    with pytest.raises(DataError, match="not in a dataset read as data"):
        open_image(tmp_path, f"embedded://{other}#1/image")


def test_train_dpo_from_parquet_with_embedded_images(tiny_checkpoint, trl_preference_parquet, tmp_path):
    from tether.methods.dpo import DPOConfig, train_dpo

    out = tmp_path / "dpo"
    overrides = [
        f"model.path={tiny_checkpoint}",
        f"data.train=[{trl_preference_parquet}]",
        f"data.images={tmp_path / 'no-images'}",
        f"train.output_dir={out}",
        "train.max_steps=2",
        "train.per_device_train_batch_size=3",
        "train.progress_bar=false",
    ]
    train_dpo(load_config(DPOConfig, None, overrides))
    assert (out / "run.json").is_file()


def test_dataset_name_from_the_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "datasets--someone--colours"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    data = repo / "snapshots" / ("a" * 40) / "data"
    data.mkdir(parents=True)
    for split, colours in (("train", COLOURS), ("test", ["white"])):
        rows = {"image": [_png(c) for c in colours], "question": ["q"] * len(colours), "answer": colours}
        datasets.Dataset.from_dict(rows).to_parquet(data / f"{split}-00000-of-00001.parquet")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    # streamed, the snapshot's files are read where they are: nothing is prepared into the datasets cache
    records = load_sft_records("hf:someone/colours:test", streaming=True)
    assert [r.response for r in records] == ["white"]
    assert open_image(tmp_path, records[0].image).getpixel((0, 0)) == (255, 255, 255)
    assert not list((tmp_path / "datasets-cache").rglob("*.arrow"))
    assert [r.response for r in load_sft_records("hf:someone/colours")] == COLOURS
    assert [r.response for r in load_sft_records("hf:someone/colours:test")] == ["white"]


def _many_rows_parquet(path, n: int, row_group_size: int):
    """An SFT-style parquet set of ``n`` rows, images embedded as PNG bytes, in small row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    colours = [COLOURS[i % 3] for i in range(n)]
    table = pa.table(
        {
            "image": [{"bytes": _png(c), "path": None} for c in colours],
            "question": [f"what color is picture {i} ?" for i in range(n)],
            "answer": colours,
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return colours


def test_streaming_gives_the_same_records_from_every_kind_of_set(tmp_path, trl_sft_parquet, monkeypatch):
    rows = {
        "image": [{"bytes": _png(c), "path": None} for c in COLOURS],
        "question": ["describe the image ."] * 3,
        "chosen": [f"a {c} square ." for c in COLOURS],
        "rejected": ["a dog ."] * 3,
    }
    data = datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image(decode=False))
    data.save_to_disk(tmp_path / "rlaif")
    arrow = next((tmp_path / "rlaif").glob("*.arrow"))
    data.to_parquet(tmp_path / "rlaif.parquet")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    for source in (tmp_path / "rlaif", arrow, tmp_path / "rlaif.parquet"):
        read = preference.load_preference_records(source)
        streamed = preference.load_preference_records(source, streaming=True)
        assert streamed == read and [p.chosen for p in streamed] == rows["chosen"]
        assert open_image(tmp_path, streamed[1].image).getpixel((0, 0)) == (0, 0, 255)
    assert not list((tmp_path / "datasets-cache").rglob("*.arrow"))  # every set read where it is
    many = tmp_path / "many.parquet"
    colours = _many_rows_parquet(many, 10, row_group_size=3)
    for path in (many, trl_sft_parquet):
        assert load_sft_records(path, streaming=True) == load_sft_records(path)
    streamed = load_sft_records(many, streaming=True)
    assert [r.response for r in streamed] == colours
    assert open_image(tmp_path, streamed[9].image).getpixel((0, 0)) == (255, 0, 0)  # the last row group


def test_streaming_reads_rows_one_at_a_time(tmp_path, monkeypatch):
    from tether.core import hf_dataset
    from tether.core.io import read_records

    path = tmp_path / "many.parquet"
    _many_rows_parquet(path, 12, row_group_size=4)
    pulled = []
    stream = hf_dataset.stream_dataset

    def counted(source):
        for row in stream(source):  # datasets' IterableDataset, read off the file
            pulled.append(row)
            yield row

    monkeypatch.setattr(hf_dataset, "stream_dataset", counted)
    rows = read_records(path, streaming=True)
    assert not isinstance(rows, list) and not pulled  # nothing read before it is asked for
    line, record = next(rows)
    # one row read for one record: the set is never materialised, only the row in hand
    assert (line, len(pulled)) == (1, 1) and record["image"].startswith("embedded://")
    assert [line for line, _ in rows] == list(range(2, 13)) and len(pulled) == 12


@pytest.mark.parametrize("streaming", [False, True])
def test_bad_row_names_file_and_row_when_streaming_too(tmp_path, streaming):
    rows = {
        "images": [[_png("red")], [_png("blue")], [_png("green")]],
        "messages": [
            [{"role": "user", "content": "what color ?"}, {"role": "assistant", "content": "red"}],
            [{"role": "narrator", "content": "x"}],  # not a role of TRL's format
            [{"role": "user", "content": "what color ?"}, {"role": "assistant", "content": "green"}],
        ],
    }
    path = tmp_path / "sft.parquet"
    datasets.Dataset.from_dict(rows).to_parquet(path)
    with pytest.raises(DataError, match=r"sft\.parquet:2: each message needs a role"):
        load_sft_records(path, streaming=streaming)
    skips = SkipLog()
    records = load_sft_records(path, skip_invalid=True, skips=skips, streaming=streaming)
    assert [r.response for r in records] == ["red", "green"] and skips.skipped == 1


def test_dataset_name_from_the_datasets_cache_offline(tmp_path, monkeypatch):
    """``hf:NAME`` for a set ``load_dataset`` prepared earlier: found in the datasets cache with the hub
    offline. The cache is written by datasets' own builder, so its layout is the real one."""
    from datasets.data_files import DataFilesDict
    from datasets.packaged_modules.parquet.parquet import Parquet, ParquetConfig
    from huggingface_hub import constants

    for split, colours in (("train", COLOURS), ("test", ["white"])):
        rows = {"image": [_png(c) for c in colours], "question": ["q"] * len(colours), "answer": colours}
        datasets.Dataset.from_dict(rows).to_parquet(tmp_path / f"{split}.parquet")
    files = DataFilesDict.from_patterns({"train": ["train.parquet"], "test": ["test.parquet"]}, tmp_path)

    class Colours(Parquet):  # what load_dataset("colours") builds from the hub repo's parquet files
        BUILDER_CONFIGS = [ParquetConfig(name="default", data_files=files)]

    cache = tmp_path / "home" / "datasets"
    Colours(cache_dir=str(cache), dataset_name="colours", hash="0123abcd").download_and_prepare()
    assert (cache / "colours" / "default" / "0.0.0" / "0123abcd" / "colours-train.arrow").is_file()
    for file in tmp_path.glob("*.parquet"):
        file.unlink()  # only the cache is left
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "home" / "hub"))  # no hub snapshot
    for streaming in (False, True):
        assert [r.response for r in load_sft_records("hf:colours", streaming=streaming)] == COLOURS
        records = load_sft_records("hf:colours:test", streaming=streaming)
        assert [r.response for r in records] == ["white"]
        assert open_image(tmp_path, records[0].image).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(DataError, match="cannot read as a Hugging Face dataset"):
        load_sft_records("hf:not-cached")


def _trainer_inputs(trainer, checkpoint, sft_parquet, preference_parquet, tmp_path):
    """The config class, train function and data overrides that make ``trainer`` read parquet sets with
    embedded images (and no image folder)."""
    if trainer == "hacl":
        from tether.methods.hacl import HACLConfig, train_hacl

        negatives = tmp_path / "negatives.jsonl"  # as `tether data negatives` writes them for this set
        rows = [
            {"image": r.image, "caption": r.response, "negative": "purple", "kinds": ["attribute"]}
            for r in load_sft_records(sft_parquet)
        ]
        negatives.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return HACLConfig, train_hacl, [f"data.train=[{sft_parquet}]", f"data.negatives=[{negatives}]"]
    if trainer == "reward":
        from tether.methods.reward import RewardConfig, train_reward

        return RewardConfig, train_reward, [f"data.train=[{preference_parquet}]"]
    if trainer == "ppo":
        from tether.methods.ppo import PPOConfig, train_ppo
        from tether.methods.reward import RewardModel
        from tether.models import load

        reward = RewardModel(load(checkpoint)).save(tmp_path / "rm")
        options = ["ppo.rollout_batch_size=3", "ppo.mini_batch_size=3", "ppo.max_new_tokens=3"]
        return (
            PPOConfig,
            train_ppo,
            [f"data.train=[{preference_parquet}]", f"ppo.reward_model={reward}", *options],
        )
    if trainer == "ssl":
        from tether.methods.ssl import SSLConfig, train_ssl

        unlabeled = tmp_path / "unlabeled.parquet"
        datasets.Dataset.from_dict({"image": [_png(c) for c in COLOURS]}).to_parquet(unlabeled)
        pseudo = [
            f"pseudo.teacher={checkpoint}",
            "pseudo.prompts=[describe the image .]",
            "pseudo.threshold=0.0",
            "pseudo.max_new_tokens=3",
        ]
        return (
            SSLConfig,
            train_ssl,
            [f"data.labeled=[{sft_parquet}]", f"data.unlabeled=[{unlabeled}]", *pseudo],
        )
    from tether.methods.vision import VisionConfig, train_vision

    labelled = tmp_path / "labels.parquet"
    rows = {"image": [_png(c) for c in COLOURS], "labels": [[c] for c in COLOURS]}
    datasets.Dataset.from_dict(rows).to_parquet(labelled)
    return VisionConfig, train_vision, [f"data.train=[{labelled}]"]


@pytest.mark.parametrize("trainer", ["hacl", "reward", "ppo", "ssl", "vision"])
def test_every_trainer_streams_a_parquet_set_with_embedded_images(
    trainer, tiny_checkpoint, trl_sft_parquet, trl_preference_parquet, tmp_path
):
    """sft and dpo: the tests above; every other trainer here, reading its rows with data.streaming."""
    from tether.methods.run_record import training_inputs

    config_class, train, data = _trainer_inputs(
        trainer, tiny_checkpoint, trl_sft_parquet, trl_preference_parquet, tmp_path
    )
    out = tmp_path / "run"
    overrides = [
        f"model.path={tiny_checkpoint}",
        *data,
        f"data.images={tmp_path / 'no-images'}",
        f"train.output_dir={out}",
        "train.max_steps=1",
        "train.per_device_train_batch_size=3",
        "train.progress_bar=false",
    ]
    config = load_config(config_class, None, [*overrides, "data.streaming=true"])
    assert config.data.streaming
    # streaming reads the same rows: a run made without it is the same run
    assert training_inputs(trainer, config) == training_inputs(
        trainer, load_config(config_class, None, overrides)
    )
    train(config)
    record = json.loads((out / "run.json").read_text())
    if trainer == "hacl":  # each negative found its caption by the embedded image's reference
        assert record["with_negative"] == 3 and record["examples"] == 3
