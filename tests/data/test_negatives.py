import json
import random

import pytest

from tether.cli import main
from tether.core.errors import DataError
from tether.core.io import SkipLog, read_json
from tether.data.negatives import (
    CaptionRecord,
    HallucinationVocabulary,
    RuleRewriter,
    coco_vocabulary,
    load_caption_records,
    load_negatives,
    make_negatives,
    plural,
)
from tether.data.negatives_llm import LLMRewriter, parse_rewrite_reply, rewrite_messages


@pytest.fixture
def shapes():
    # what the synthetic world would hand over: shapes with synonyms, colours, sizes, relations
    return HallucinationVocabulary(
        objects={"circle": ["ball"], "square": ["box"], "triangle": [], "star": []},
        co_occurrence={"circle": ["square", "star"], "square": ["circle", "triangle"]},
        colors=["red", "blue", "green"],
        sizes={"small": "large", "large": "small"},
        numbers=["two", "three", "four"],
        relations={"left of": "right of", "right of": "left of", "above": "below", "below": "above"},
    )


def test_plural():
    assert [plural(n) for n in ["dog", "bus", "wine glass", "person", "sheep", "box", "teddy bear"]] == [
        "dogs",
        "buses",
        "wine glasses",
        "people",
        "sheep",
        "boxes",
        "teddy bears",
    ]


def test_object_existence_replaces_every_mention_with_a_co_occurring_absent_object(shapes):
    rewriter = RuleRewriter(shapes, kinds=["object"])
    caption = "A circle sits above a box. The circle is near two balls."
    rewrite = rewriter.rewrite(caption, present=["circle", "square"], rng=random.Random(3))
    # circle's co-occurring objects that are absent: star (square is present); square's: triangle
    assert rewrite.kinds == ["object"]
    if rewrite.changes[0]["from"] == "circle":
        assert rewrite.negative == "A star sits above a box. The star is near two stars."
    else:
        assert rewrite.negative == "A circle sits above a triangle. The circle is near two balls."
    assert len(rewrite.negative.split()) == len(caption.split())


def test_article_follows_the_new_word():
    vocab = HallucinationVocabulary(objects={"dog": [], "elephant": []}, co_occurrence={"dog": ["elephant"]})
    rewrite = RuleRewriter(vocab, kinds=["object"]).rewrite("A dog runs after a dog.", present=["dog"])
    assert rewrite.negative == "An elephant runs after an elephant."
    assert rewrite.changes == [{"kind": "object", "from": "dog", "to": "elephant"}]


def test_attribute_count_position_edits(shapes):
    caption = "Two small red squares are left of a circle."
    for kind, want in [
        (
            "count",
            {"Three small red squares are left of a circle.", "Four small red squares are left of a circle."},
        ),
        ("position", {"Two small red squares are right of a circle."}),
    ]:
        rewrite = RuleRewriter(shapes, kinds=[kind]).rewrite(caption, rng=random.Random(0))
        assert rewrite.negative in want and rewrite.kinds == [kind]
    seen = {
        RuleRewriter(shapes, kinds=["attribute"]).rewrite(caption, rng=random.Random(s)).negative
        for s in range(20)
    }
    assert seen == {
        "Two large red squares are left of a circle.",
        "Two small blue squares are left of a circle.",
        "Two small green squares are left of a circle.",
    }


def test_several_kinds_and_nothing_to_rewrite(shapes):
    rewriter = RuleRewriter(shapes, max_kinds=4)
    caption = "Two small red squares are left of a circle."
    kinds_seen = set()
    for seed in range(30):
        rewrite = rewriter.rewrite(caption, rng=random.Random(seed))
        assert rewrite.negative != caption
        assert rewrite.kinds == sorted(rewrite.kinds, key=["object", "attribute", "count", "position"].index)
        assert {c["kind"] for c in rewrite.changes} == set(rewrite.kinds)
        kinds_seen.add(len(rewrite.kinds))
    assert kinds_seen >= {1, 2, 3}
    assert rewriter.rewrite("Nothing here at all.") is None


def test_make_negatives_is_deterministic_and_logs_skips(shapes, tmp_path):
    records = [CaptionRecord("0.png", "A red circle above a square."), CaptionRecord("1.png", "Nothing.")]
    skips = SkipLog()
    rows = make_negatives(records, RuleRewriter(shapes), seed=7, skips=skips)
    assert rows == make_negatives(records, RuleRewriter(shapes), seed=7)
    assert len(rows) == 1 and skips.skipped == 1 and "record 2" in skips.reasons[0]
    assert set(rows[0]) == {"image", "caption", "negative", "kinds", "changes", "rewriter"}


def test_caption_records_formats(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [
        {"image_id": 42, "caption": "a dog"},
        {"image": "x.png", "prompt": "describe", "response": "a cat", "objects": ["cat"]},
        {"image": "y.png"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match=r"c\.jsonl:3: record needs a non-empty 'caption'"):
        load_caption_records(path)
    skips = SkipLog()
    records = load_caption_records(path, skip_invalid=True, skips=skips)
    assert [(r.image, r.caption, r.prompt, r.objects) for r in records] == [
        ("42", "a dog", None, None),
        ("x.png", "a cat", "describe", ["cat"]),
    ]
    assert skips.skipped == 1
    path.write_text(json.dumps({"image": "z.png", "question": 7, "caption": "a cow"}) + "\n")
    with pytest.raises(DataError, match=r"c\.jsonl:1: field 'prompt' \(or 'question'\) must be text"):
        load_caption_records(path)


def test_coco_vocabulary_on_real_llava_captions(shared_data):
    vocab = coco_vocabulary(
        shared_data / "chair" / "synonyms.txt", shared_data / "pope" / "coco_co_occur.json"
    )
    assert len(vocab.objects) == 80
    assert vocab.mentions("Two wine glasses beside a motor bike")[0].canonical == "wine glass"
    assert [m.canonical for m in vocab.mentions("Two wine glasses beside a motor bike")] == [
        "wine glass",
        "motorcycle",
    ]
    truth = read_json(shared_data / "chair" / "derived" / "coco2014_imid_to_objects.pattern.json")
    names = truth["objects"]
    lines = (
        (shared_data / "chair" / "opera_log" / "llava-1.5" / "greedy.jsonl").read_text().splitlines()[:200]
    )
    records = []
    for line in lines:
        raw = json.loads(line)
        present = [names[i] for i in truth["images"][str(raw["image_id"])]]
        records.append(CaptionRecord(str(raw["image_id"]), raw["caption"], objects=present))
    rows = make_negatives(records, RuleRewriter(vocab, kinds=["object"]), seed=0)
    assert len(rows) >= 190  # LLaVA-1.5 captions nearly always name a COCO object
    co_occurring = 0
    by_image = {r.image: r for r in records}
    for row in rows:
        record = by_image[row["image"]]
        change = row["changes"][0]
        added = (
            change["to"]
            if change["to"] in vocab.objects
            else next(o for o in vocab.objects if change["to"] in (o, plural(o)))
        )
        assert added not in record.objects  # the injected object really is absent from the image
        co_occurring += added in vocab.co_occurrence.get(vocab.mentions(change["from"])[0].canonical, [])
        # a mirror: only object names change (multi-word names may shrink or grow by a word per mention)
        n_words = len(row["caption"].split())
        assert abs(len(row["negative"].split()) - n_words) <= max(3, 0.1 * n_words)
    assert co_occurring / len(rows) > 0.9
    print(f"rewritten {len(rows)}/{len(records)}, co-occurring {co_occurring / len(rows):.3f}")


class FakeChat:
    def __init__(self, replies):
        self.replies = list(replies)
        self.seen = []

    def complete(self, messages):
        self.seen.append(messages)
        return self.replies.pop(0)


def test_llm_reply_parsing():
    caption = "A red circle above a square."
    fenced = '```json\n{"negative": "A blue circle above a square.", "kinds": ["attribute"]}\n```'
    assert parse_rewrite_reply(fenced, caption).negative == "A blue circle above a square."
    chatty = 'Sure! {"negative": "A red star above a square.", "kinds": "object"} Hope it helps.'
    assert parse_rewrite_reply(chatty, caption).kinds == ["object"]
    for bad, why in [
        ("no json here", "no JSON object"),
        ('{"negative": "", "kinds": ["object"]}', "non-empty 'negative'"),
        ('{"negative": "A red star above a square.", "kinds": ["colour"]}', "unknown kinds"),
        ('{"negative": "a red circle  above a square.", "kinds": ["object"]}', "unchanged"),
        ('{"negative": "A star.", "kinds": ["object"]}', "words for a caption"),
    ]:
        with pytest.raises(DataError, match=why):
            parse_rewrite_reply(bad, caption)


def test_llm_rewriter_counts_and_skips_invalid_replies():
    client = FakeChat(
        [
            '{"negative": "A red star above a square.", "kinds": ["object"]}',
            "I cannot do that.",
            '{"negative": "Three dogs on the left.", "kinds": ["count"]}',
        ]
    )
    records = [
        CaptionRecord("a.png", "A red circle above a square.", objects=["circle", "square"]),
        CaptionRecord("b.png", "A cat."),
        CaptionRecord("c.png", "Two dogs on the left."),
    ]
    skips = SkipLog()
    rows = make_negatives(records, LLMRewriter(client), skips=skips)
    assert [r["negative"] for r in rows] == ["A red star above a square.", "Three dogs on the left."]
    assert [r["rewriter"] for r in rows] == ["llm", "llm"]
    assert skips.skipped == 1 and "no JSON object" in skips.reasons[0]
    assert "circle, square" in client.seen[0][1]["content"]
    with pytest.raises(DataError):
        make_negatives(records[1:2], LLMRewriter(FakeChat(["nope"])), skip_invalid=False)


def test_messages_name_the_kinds():
    messages = rewrite_messages("A cat.", ["object", "count"])
    assert messages[0]["role"] == "system" and "JSON" in messages[0]["content"]
    assert "object, count" in messages[1]["content"]


def test_cli_rule_backend(shared_data, tmp_path, capsys):
    captions = tmp_path / "captions.jsonl"
    captions.write_text(
        json.dumps({"image": "1.jpg", "caption": "A dog sleeps on a couch next to two cats."})
        + "\n"
        + json.dumps({"image": "2.jpg", "caption": "Nothing to see."})
        + "\n"
    )
    out = tmp_path / "neg.jsonl"
    args = [
        "data",
        "negatives",
        str(captions),
        "--out",
        str(out),
        "--synonyms",
        str(shared_data / "chair" / "synonyms.txt"),
    ]
    assert main([*args, "--co-occurrence", str(shared_data / "pope" / "coco_co_occur.json")]) == 0
    assert "1 negatives from 2 captions" in capsys.readouterr().out
    pairs = load_negatives(out)
    assert pairs[0].image == "1.jpg" and pairs[0].negative != pairs[0].caption
    assert main(["data", "negatives", str(captions), "--out", str(out)]) == 2
    assert "--synonyms" in capsys.readouterr().err

    # runs never mix (issue 23): the same inputs do nothing, others are refused unless --overwrite
    co_occurrence = ["--co-occurrence", str(shared_data / "pope" / "coco_co_occur.json")]
    written = out.read_bytes()
    assert main([*args, *co_occurrence]) == 0
    assert "nothing to do" in capsys.readouterr().out and out.read_bytes() == written
    assert main([*args, *co_occurrence, "--max-kinds", "1"]) == 2
    assert f"{out}: was made with other max_kinds (2 -> 1)" in capsys.readouterr().err
    assert main([*args, "--max-kinds", "1", "--overwrite"]) == 0
    assert json.loads(out.with_suffix(".run.json").read_text())["inputs"]["co_occurrence"] is None
