import json
import math

import pytest
import torch
from PIL import Image

from tether.analysis.gap import gap_metrics, linear_probe_accuracy, project_2d
from tether.cli import main


def test_gap_metrics_by_hand():
    image = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised: (1,0), (0,1)
    caption = torch.tensor([[3.0, 0.0], [1.0, 1.0]])  # (1,0), (.707,.707)
    negative = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    m = gap_metrics(image, caption, negative, folds=2)
    s = 1 / math.sqrt(2)
    # centroids (0.5, 0.5) and ((1+s)/2, s/2)
    assert m["centroid_distance"] == pytest.approx(math.hypot(0.5 - (1 + s) / 2, 0.5 - s / 2), rel=1e-6)
    assert m["matched_cosine"] == pytest.approx((1 + s) / 2, rel=1e-6)
    assert m["negative_cosine"] == pytest.approx((0 - 1) / 2, rel=1e-6)
    assert m["caption_beats_negative"] == 1.0
    assert m["pairs"] == 2


def test_probe_separates_separable_and_not_identical():
    g = torch.Generator().manual_seed(0)
    true_reps = torch.randn(40, 8, generator=g)
    true_reps[:, 3] = 0.0
    false_reps = true_reps.clone()
    false_reps[:, 3] = 1.0  # hallucination moves one direction: linearly separable
    assert linear_probe_accuracy(true_reps, false_reps) == 1.0
    same = linear_probe_accuracy(true_reps, true_reps.clone())
    assert same <= 0.55  # nothing to find: chance or below (ties predict one class)


def test_pca_projection_keeps_the_main_axis():
    points = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0.1, 0]])
    xy = project_2d(points)
    assert xy.shape == (4, 2)
    # the first component runs along x (spread 3); the second carries only the 0.1 wobble
    assert (xy[:, 0].max() - xy[:, 0].min()).item() == pytest.approx(3.0, abs=0.02)
    assert (xy[:, 1].max() - xy[:, 1].min()).item() < 0.1


def test_cli_gap_before_and_after(tiny_checkpoint, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue", "green", "red", "blue", "green"]):
        Image.new("RGB", (32, 32), colour).save(images / f"{i}.png")
        rows.append(
            {
                "image": f"{i}.png",
                "caption": f"a {colour} square",
                "negative": f"a {colour} circle",
                "kinds": ["object"],
            }
        )
    negatives = tmp_path / "neg.jsonl"
    negatives.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "gap"
    args = ["analyze", "gap", "--model", str(tiny_checkpoint), "--model", str(tiny_checkpoint)]
    args += ["--label", "before", "--label", "after", "--negatives", str(negatives), "--images", str(images)]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads((out / "gap.json").read_text())
    assert [m["label"] for m in report["models"]] == ["before", "after"]
    assert report["models"][0]["matched_cosine"] == pytest.approx(report["models"][1]["matched_cosine"])
    assert 0 <= report["models"][0]["probe_accuracy"] <= 1 and report["pairs"] == 6
    assert "environment" in report
    assert (out / "gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "probe accuracy" in capsys.readouterr().out
    assert main([*args[:-2], "--negatives", str(negatives), "--out", str(out), "--label", "x"]) == 2
