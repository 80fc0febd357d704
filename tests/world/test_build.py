import json

import pytest

from tether.core.errors import TetherError
from tether.world.build import build_world
from tether.world.config import load_world_config
from tether.world.exports import ShapeStats
from tether.world.scene import Scene


def _files(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_byte_identical_worlds(tmp_path, smoke_config, smoke_world):
    build_world(smoke_config, tmp_path / "again")
    first, second = _files(smoke_world), _files(tmp_path / "again")
    assert first.keys() == second.keys()
    differing = [name for name in first if first[name] != second[name]]
    # only versions and build time may differ (and even they match when both builds share a second)
    assert set(differing) <= {"build_info.json"}
    assert len(first) > 150


def test_another_seed_gives_another_world(tmp_path, smoke_world):
    build_world(
        load_world_config(None, ["seed=1", "n_train=20", "n_val=2", "n_test=20", "n_unlabeled=2"]), tmp_path
    )
    assert (tmp_path / "images" / "test_0.png").read_bytes() != (
        smoke_world / "images" / "test_0.png"
    ).read_bytes()


def test_layout_counts_and_card(smoke_world, smoke_config):
    card = json.loads((smoke_world / "world.json").read_text())
    assert card["version"] == 1 and card["config"]["seed"] == smoke_config.seed
    for split, n in smoke_config.split_sizes().items():
        if split == "pref" and n == 0:  # a world without a preference split reads as before there was one
            assert "pref_images" not in card["counts"] and "pref" not in card["statistics"]
            assert not (smoke_world / "scenes" / "pref.jsonl").exists()
            continue
        assert card["counts"][f"{split}_images"] == n
        assert len(list((smoke_world / "images").glob(f"{split}_*.png"))) == n
    assert card["statistics"]["test"]["biased"] is False
    readme = (smoke_world / "README.md").read_text()
    assert "circle+square" in readme and "test split biased: False" in readme
    info = json.loads((smoke_world / "build_info.json").read_text())
    assert "versions" in info["environment"] and info["build_seconds"] >= 0


def test_unlabeled_split_hides_its_graphs(smoke_world, smoke_config):
    lines = (smoke_world / "scenes" / "unlabeled.jsonl").read_text().splitlines()
    assert len(lines) == smoke_config.n_unlabeled
    assert all(set(json.loads(line)) == {"image_id", "image"} for line in lines)
    truth = [
        Scene.from_dict(json.loads(x))
        for x in (smoke_world / "scenes" / "unlabeled_truth.jsonl").read_text().splitlines()
    ]
    assert [s.image for s in truth] == [json.loads(line)["image"] for line in lines]


def test_card_statistics_match_the_scene_files(smoke_world):
    card = json.loads((smoke_world / "world.json").read_text())
    scenes = [
        Scene.from_dict(json.loads(x))
        for x in (smoke_world / "scenes" / "train.jsonl").read_text().splitlines()
    ]
    stats = ShapeStats.of(scenes)
    assert card["statistics"]["train"]["cooccurrence"]["circle+square"]["P(square|circle)"] == round(
        stats.conditional("circle", "square"), 4
    )


def test_refuses_to_clobber_a_folder_that_is_not_a_world(tmp_path, smoke_config):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(TetherError, match="holds no world"):
        build_world(smoke_config, tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_overwrite_replaces_a_world_and_drops_stale_images(tmp_path):
    build_world(load_world_config(None, ["n_train=12", "n_val=1", "n_test=4", "n_unlabeled=1"]), tmp_path)
    with pytest.raises(TetherError, match="--overwrite"):
        build_world(load_world_config(None, ["n_train=5"]), tmp_path)
    build_world(
        load_world_config(None, ["n_train=5", "n_val=1", "n_test=4", "n_unlabeled=1"]),
        tmp_path,
        overwrite=True,
    )
    assert len(list((tmp_path / "images").glob("train_*.png"))) == 5


def test_preference_split_is_unbiased_with_yes_no_questions_true_to_its_scenes(tmp_path):
    config = load_world_config(
        None, ["n_train=200", "n_val=2", "n_test=2", "n_unlabeled=2", "n_pref=200", "cooccurrence_prob=1.0"]
    )
    build_world(config, tmp_path)
    card = json.loads((tmp_path / "world.json").read_text())
    assert card["counts"]["pref_images"] == 200 and card["statistics"]["pref"]["biased"] is False
    pref = [
        Scene.from_dict(json.loads(x)) for x in (tmp_path / "scenes" / "pref.jsonl").read_text().splitlines()
    ]
    train = [
        Scene.from_dict(json.loads(x)) for x in (tmp_path / "scenes" / "train.jsonl").read_text().splitlines()
    ]
    # the bias holds in train (always together) and is broken in pref, as in test
    assert ShapeStats.of(train).conditional("circle", "square") == 1.0
    assert ShapeStats.of(pref).conditional("circle", "square") < 0.6
    # never in instruction data: no text file but the questions names a pref image
    for text_file in (tmp_path / "text").iterdir():
        if text_file.name != "pref_questions.jsonl":
            assert "pref_" not in text_file.read_text(), text_file.name

    shapes = {s.image: s.shapes() for s in pref}
    questions = [json.loads(x) for x in (tmp_path / "text" / "pref_questions.jsonl").read_text().splitlines()]
    assert [q["question_id"] for q in questions] == list(range(1, len(questions) + 1))
    assert len({(q["image"], q["text"]) for q in questions}) == len(questions)
    for q in questions:
        asked = q["text"].removeprefix("Is there a ").removesuffix(" in the image?")
        assert q["label"] == ("yes" if asked in shapes[q["image"]] else "no")
    # the adversarial absent shapes are there: partners of present shapes asked about and absent
    partner = config.partner_of()
    assert any(
        q["label"] == "no" and any(partner.get(s) == q["text"].split()[3] for s in shapes[q["image"]])
        for q in questions
    )
