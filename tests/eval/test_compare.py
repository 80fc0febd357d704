"""Problem 8 of issue 23: `tether report` labels runs, compares them with a baseline (paired), writes HTML."""

import json
import re

from everyday_helpers import write_pope_split


def _score(run_cli, tmp_path, name, questions, answers, *extra):
    answers_file = tmp_path / f"{name}.jsonl"
    answers_file.write_text("".join(json.dumps({"question_id": q, "text": a}) + "\n" for q, a in answers))
    out = tmp_path / name
    code, _, err = run_cli(
        "eval", "pope", "score", "--questions", questions, "--answers", answers_file, "--out", out,
        "--model", f"models/{name.split('-')[0]}", "--resamples", "200", *extra,
    )  # fmt: skip
    assert code == 0, err
    return out


def test_report_labels_pairs_and_writes_html(tmp_path, run_cli):
    questions, _ = write_pope_split(tmp_path, "random", n_images=20)  # 40 questions: yes, no, yes, no...
    ids = list(range(1, 41))
    # A says yes to everything: right on the 20 yes-questions. B is A plus four right "no"s.
    base = _score(run_cli, tmp_path, "yesman", questions, [(q, "Yes") for q in ids])
    better = _score(
        run_cli, tmp_path, "careful", questions, [(q, "No" if q in (2, 4, 6, 8) else "Yes") for q in ids]
    )
    # the same model on another data version: another fingerprint, the same name
    again = _score(
        run_cli, tmp_path, "yesman-v2", questions, [(q, "Yes") for q in ids], "--data-version", "v2"
    )
    html_file = tmp_path / "report" / "compare.html"
    code, out, err = run_cli("report", base, better, again, "--html", html_file, "--resamples", "400")
    assert code == 0, err
    header = out.splitlines()[0]
    labels = re.findall(r"(\w+) #([0-9a-f]{6})", header)
    assert [name for name, _ in labels] == ["yesman", "careful", "yesman"]
    assert labels[0][1] != labels[2][1]  # told apart by what produced them
    assert "(baseline)" in header.split("careful")[0]
    accuracy = next(line for line in out.splitlines() if line.startswith("accuracy "))
    # paired on item ids: +0.1 with an interval clear of zero (four items differ, all one way); an
    # unpaired bootstrap of two accuracies this close would straddle zero
    delta = re.search(r"Δ \+0\.1000 \[\+(0\.\d+), \+(0\.\d+)\] helps", accuracy)
    assert delta, accuracy
    low, high = map(float, delta.groups())
    assert 0 < low < 0.1 < high <= 0.25
    assert "Δ +0.0000 [+0.0000, +0.0000]" in accuracy  # the v2 run gave the same answers
    page = html_file.read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page and "class='helps'" in page
    assert "yesman #" in page and "Δ +0.1000" in page

    # another baseline: the difference turns round
    code, out, _ = run_cli("report", base, better, "--baseline", better, "--no-intervals", "--markdown")
    row = next(line for line in out.splitlines() if line.startswith("| accuracy |"))
    assert "Δ -0.1000 hurts" in row and "0.6000 (baseline)" not in row
    assert "| metric | yesman #" in out and "careful #" in out


def test_report_pairs_on_shared_items_only(tmp_path, run_cli):
    questions, _ = write_pope_split(tmp_path, "random", n_images=10)
    base = _score(run_cli, tmp_path, "full", questions, [(q, "Yes") for q in range(1, 21)])
    fewer = tmp_path / "fewer_questions.jsonl"
    fewer.write_text("".join(questions.read_text().splitlines(keepends=True)[:10]))
    part = _score(run_cli, tmp_path, "part", fewer, [(q, "Yes") for q in range(1, 11)])
    code, out, err = run_cli("report", base, part)
    assert code == 0, err
    assert "paired with the baseline on 10 of its 20 items" in out
