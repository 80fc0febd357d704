import json

import pytest
from eval_helpers import write_jsonl

from tether.core.errors import DataError
from tether.eval.amber import Amber


@pytest.fixture
def amber_files(tmp_path):
    annotations = tmp_path / "annotations.json"
    annotations.write_text(
        json.dumps(
            [
                {"id": 1, "type": "generative", "truth": ["dog", "grass"], "hallu": ["cat", "ball"]},
                {"id": 2, "type": "discriminative-hallucination", "truth": "no"},
                {"id": 3, "type": "discriminative-attribute-state", "truth": "yes"},
                {"id": 4, "type": "discriminative-relation", "truth": "no"},
                {"id": 5, "type": "relation", "truth": "yes"},
            ]
        )
    )
    (tmp_path / "relation.json").write_text(
        json.dumps({"dog": ["puppy"], "grass": ["lawn"], "cat": [], "ball": [], "tree": [], "camera": []})
    )
    (tmp_path / "safe_words.txt").write_text("camera\n")
    queries = tmp_path / "query.json"
    queries.write_text(json.dumps([{"id": i, "image": f"AMBER_{i}.jpg", "query": "q"} for i in range(1, 6)]))
    return tmp_path, queries, annotations


def test_amber_hand_computed(amber_files):
    _, queries, annotations = amber_files
    amber = Amber()
    items = amber.load_items(queries, annotations=annotations)
    answers = {
        "1": "Two puppies play near a tree and a cat, with a camera.",  # nouns: puppy, tree, cat, camera
        "2": "No",  # right
        "3": "yes",  # not exactly "Yes": wrong
        "4": "No",  # right
        "5": "No",  # wrong
    }
    official = amber.score(items, answers).metrics  # 0.001 added to each denominator, as the official
    assert official["generative/chair"] == 2 / 4.001 and official["generative/cover"] == 1 / 2.001
    assert official["generative/hal"] == 1 - 0 / 1.001 and official["discriminative/precision"] == 2 / 3.001
    amber.corrected = True
    m = amber.score(items, answers).metrics
    assert m["generative/chair"] == pytest.approx(2 / 4)  # tree, cat unmatched; camera is a safe word
    assert m["generative/cover"] == pytest.approx(1 / 2)  # dog via "puppy"
    assert m["generative/hal"] == 1.0
    assert m["generative/cog"] == pytest.approx(1 / 2)  # cat
    assert m["discriminative/accuracy"] == pytest.approx(2 / 4)
    assert m["discriminative/precision"] == pytest.approx(2 / 3)  # 3 "No" replies, 2 right
    assert m["discriminative/recall"] == pytest.approx(2 / 2)
    assert m["discriminative/relation/accuracy"] == pytest.approx(1 / 2)
    assert m["discriminative/existence/n"] == 1


def test_amber_real_files_load(data_dir):
    amber = data_dir / "amber"
    items = Amber().load_items(amber / "query" / "query_all.json", annotations=amber / "annotations.json")
    assert len(items) == 15220
    assert sum(i.kind == "free" for i in items) == 1004
    assert items[1005].prompt == "Is the sky gloomy in this image?" and items[1005].meta["truth"] == "no"


def test_amber_cli_and_bad_input(amber_files, run_cli):
    tmp_path, queries, annotations = amber_files
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([{"id": i, "response": "No"} for i in range(1, 6)]))
    code, out, _ = run_cli(
        "eval",
        "amber",
        "score",
        "--queries",
        queries,
        "--annotations",
        annotations,
        "--answers",
        answers,
        "--json",
        "--corrected",
        "--out",
        tmp_path / "run",
    )
    assert code == 0 and json.loads(out)["discriminative/accuracy"] == 0.5
    scoring = json.loads((tmp_path / "run" / "results.json").read_text())["scoring"]
    assert scoring["rules"] == "corrected" and len(scoring["corrections"]) == 2
    bad = write_jsonl(tmp_path / "q.jsonl", [{"id": 99, "image": "x.jpg", "query": "q"}])
    with pytest.raises(DataError, match=r"q.jsonl:1: id 99 is not in"):
        Amber().load_items(bad, annotations=annotations)
