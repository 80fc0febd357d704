"""The LLM judge, corrector and style rewriter of `tether data pairs`, against a loopback chat server."""

import json
import re

import pytest

from chat_server import ChatServer, ok
from tether.core.errors import TetherError
from tether.data.pairs import join_sentences
from tether.data.pairs_llm import (
    CORRECT_PROMPT,
    JUDGE_PROMPT,
    REWRITE_PROMPT,
    InvalidPairReply,
    LLMPairJudge,
    LLMStyleRewriter,
    parse_labels,
)
from tether.eval.judges import ChatClient

FACTS = {"img1": ["A red square is in the top left.", "Objects present: square, circle."]}
SENTENCES = ["There is a red square", "A green star is in the middle", "The picture feels calm"]


def client_for(server, **kwargs) -> ChatClient:
    return ChatClient("judge-test", base_url=server.base_url, max_retries=0, **kwargs)


def sent_messages(server, k=-1) -> list[dict]:
    return server.requests[k]["body"]["messages"]


def test_judge_prompt_carries_facts_and_numbered_sentences_and_parses_a_fenced_reply():
    reply = 'Sure.\n```json\n{"labels": ["Correct", "hallucination", "Cannot_Judge"]}\n```'
    with ChatServer(default=ok(reply)) as server:
        judge = LLMPairJudge(client_for(server), FACTS)
        assert judge("img1", SENTENCES) == ["correct", "hallucination", "cannot judge"]
        system, user = sent_messages(server)
    assert system == {"role": "system", "content": JUDGE_PROMPT}
    assert user["content"] == (
        "Facts about the image:\n- A red square is in the top left.\n- Objects present: square, circle.\n"
        "\nSentences (3):\n1. There is a red square\n2. A green star is in the middle\n"
        "3. The picture feels calm\n"
    )
    assert judge.name == "llm:judge-test"


@pytest.mark.parametrize(
    "reply, message",
    [
        ('{"labels": ["correct", "correct"]}', "judge gave 2 labels for 3 sentences"),
        ('{"labels": ["correct", "correct", "correct", "correct"]}', "judge gave 4 labels for 3 sentences"),
        ('{"labels": ["correct", "wrong", "correct"]}', "unknown labels ['wrong']"),
        ('{"verdicts": ["correct", "correct", "correct"]}', "no 'labels' list"),
        ("1. correct 2. correct 3. correct", "no JSON object in reply"),
    ],
)
def test_unusable_judge_reply_names_the_image_or_counts_as_cannot_judge_when_lenient(reply, message):
    with pytest.raises(InvalidPairReply, match=rf"image img1: .*{re.escape(message)}"):
        parse_labels(reply, 3, "img1")
    with ChatServer(default=ok(reply)) as server:
        strict = LLMPairJudge(client_for(server), FACTS)
        with pytest.raises(InvalidPairReply, match="image img1"):
            strict("img1", SENTENCES)
        lenient = LLMPairJudge(client_for(server), FACTS, lenient=True)
        assert lenient("img1", SENTENCES) == ["cannot judge"] * 3
    assert len(lenient.invalid_replies) == 1 and message in lenient.invalid_replies[0]


def test_judge_replies_are_cached(tmp_path):
    reply = '{"labels": ["correct", "hallucination", "cannot judge"]}'
    with ChatServer(default=ok(reply)) as server:
        labels = LLMPairJudge(client_for(server, cache_dir=tmp_path), FACTS)("img1", SENTENCES)
        second_client = client_for(server, cache_dir=tmp_path)  # a later run: a new client, same cache
        assert LLMPairJudge(second_client, FACTS)("img1", SENTENCES) == labels
        assert len(server.requests) == 1
    assert second_client.usage.cache_hits == 1


def test_an_image_without_facts_is_refused():
    with ChatServer() as server:
        judge = LLMPairJudge(client_for(server), {"img1": []})
        with pytest.raises(TetherError, match="image img1: no facts"):
            judge("img1", SENTENCES)
        assert server.requests == []


LABELS = ["correct", "hallucination", "correct", "hallucination"]
FOUR = ["There is a red square", "A green star is in the middle", "It is small", "A blue ring is below"]


def test_corrector_replaces_or_drops_each_hallucinated_sentence_in_place():
    reply = '{"corrections": ["A white circle is in the middle", null]}'
    with ChatServer(default=ok(reply)) as server:
        judge = LLMPairJudge(client_for(server), FACTS)
        corrected = judge.correct("img1", FOUR, LABELS)
        system, user = sent_messages(server)
    assert corrected == ["There is a red square", "A white circle is in the middle", "It is small"]
    assert system["content"] == CORRECT_PROMPT
    assert "Sentences (2 marked [hallucination]):\n1. [correct] There is a red square\n" in user["content"]
    assert "4. [hallucination] A blue ring is below\n" in user["content"]


@pytest.mark.parametrize(
    "reply, message",
    [
        ('{"corrections": ["A white circle is in the middle"]}', "1 corrections for 2 hallucinated"),
        ('{"corrections": ["A green star is in the middle.", null]}', "unchanged"),
        ('{"corrections": [3, null]}', "correction is int"),
        ('{"fixed": []}', "no 'corrections' list"),
    ],
)
def test_unusable_correction_is_an_error_or_drops_the_sentences_when_lenient(reply, message):
    with ChatServer(default=ok(reply)) as server:
        with pytest.raises(InvalidPairReply, match=rf"image img1: .*{re.escape(message)}"):
            LLMPairJudge(client_for(server), FACTS).correct("img1", FOUR, LABELS)
        lenient = LLMPairJudge(client_for(server), FACTS, lenient=True)
        assert lenient.correct("img1", FOUR, LABELS) == ["There is a red square", "It is small"]
    assert lenient.invalid_replies[0].startswith("corrector: ")


def variants_reply(*pairs) -> str:
    return json.dumps({"variants": [{"chosen": c, "rejected": r} for c, r in pairs]})


def test_rewriter_returns_the_asked_number_of_style_consistent_variants():
    reply = variants_reply(
        ("A red square.", "A red square and a star."), ("Red square.", "Red square, star.")
    )
    with ChatServer(default=ok(reply)) as server:
        rewriter = LLMStyleRewriter(client_for(server), FACTS)
        pairs = rewriter("img1", "There is a red square.", "There is a red square and a star.", 2)
        system, user = sent_messages(server)
        assert LLMStyleRewriter(client_for(server))("other", "a", "b", 2) == pairs
        assert "- (none given)" in sent_messages(server)[1]["content"]
    assert pairs == [("A red square.", "A red square and a star."), ("Red square.", "Red square, star.")]
    assert system["content"] == REWRITE_PROMPT
    assert user["content"].endswith(
        "CHOSEN: There is a red square.\nREJECTED: There is a red square and a star.\n\nNumber of variants: 2"
    )


@pytest.mark.parametrize(
    "reply, message",
    [
        (variants_reply(("a", "b")), "gave 1 variants, 2 asked"),
        (variants_reply(("a", "b"), ("c", " ")), "variant 2 lacks a non-empty"),
        (variants_reply(("a", "b"), ("Same text.", "same  text")), "variant 2 has chosen == rejected"),
        (variants_reply(("a", "b"), ("A", "B.")), "variant 2 repeats an earlier variant"),
        ('{"variants": "two"}', "gave no variants"),
    ],
)
def test_unusable_rewrite_is_an_error(reply, message):
    with ChatServer(default=ok(reply)) as server:
        with pytest.raises(InvalidPairReply, match=rf"image img1: .*{re.escape(message)}"):
            LLMStyleRewriter(client_for(server), FACTS)("img1", "x", "y", 2)


def test_join_sentences_puts_back_the_periods_the_split_removed():
    assert join_sentences(["There is a square", "Is it red?", "Yes."]) == "There is a square. Is it red? Yes."


def test_docs_quote_every_prompt_word_for_word():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "pairs.md").read_text()
    for prompt in (JUDGE_PROMPT, CORRECT_PROMPT, REWRITE_PROMPT):
        assert f"```text\n{prompt}\n```" in docs
