"""docs/walkthrough.md runs: every command of its ``bash`` blocks, in order, with smaller sizes.

The commands go through ``tether.cli.main`` (what the ``tether`` console script calls) in one process, so
the test costs training steps, not interpreter starts. Sizes are appended as ``--set`` options (the last
value of a key wins): a small world and one or two steps per training stage.
"""

import json
import re
import shlex
from pathlib import Path

from tether.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "walkthrough.md"
REPO = DOC.parents[1]

# command prefix -> options appended to make it small (sizes only)
SMALLER = {
    ("world", "build"): [
        "n_train=24", "n_val=4", "n_test=8", "n_unlabeled=4", "n_pref=6", "mme_images_per_subtask=2",
        "mmhal_items=8",
    ],
    ("world", "baseline"): ["vision.steps=1", "align.steps=1", "qa.steps=1", "sft.steps=1", "progress_bar=false"],
    ("train",): ["train.max_steps=2"],
}  # fmt: skip


def doc_commands(text: str) -> list[list[str]]:
    """The commands of the ``bash`` blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def smaller(args: list[str]) -> list[str]:
    for prefix, sets in SMALLER.items():
        if tuple(args[: len(prefix)]) == prefix:
            return args + [x for item in sets for x in ("--set", item)]
    return args


def test_walkthrough_commands_run(tmp_path, monkeypatch, capsys):
    commands = doc_commands(DOC.read_text())
    assert len(commands) >= 10 and all(c[0] == "tether" for c in commands), commands
    # build the world, train a baseline, evaluate it, apply one method, compare
    for step in (("world", "build"), ("world", "baseline"), ("eval", "pope", "run"), ("train",), ("report",)):
        assert any(tuple(c[1 : 1 + len(step)]) == step for c in commands), step
    monkeypatch.chdir(tmp_path)
    for relative in ("configs",):  # the doc runs from a clone's root, where configs/ is
        (tmp_path / relative).symlink_to(REPO / relative)
    for command in commands:
        assert main(smaller(command[1:])) == 0, f"failed: {shlex.join(command)}"

    printed = capsys.readouterr().out
    for method in ("baseline", "dpo"):
        results = json.loads((tmp_path / f"runs/eval/{method}/pope_adversarial/results.json").read_text())
        assert results["benchmark"] == "pope" and results["metrics"]["n"] > 0
        assert (tmp_path / f"runs/eval/{method}/chair/results.json").is_file()
    # the comparison names both runs
    assert "runs/eval/baseline/chair" in printed and "runs/eval/dpo/chair" in printed
