"""Training-free decoding as study variants (tether.study.decoding): evaluated with their strategy in a tiny
study, combined with a trained variant (ha_dpo+vcd), refused when the combination is not one."""

import dataclasses
import json
import re

import pytest

from tether.core.errors import TetherError
from tether.study import pipeline
from tether.study.preset import PRESETS, check_preset
from tether.study.shift import SHIFT
from tether.study.variants import split_variant

# the smoke world (configs/world/smoke.yaml) and a baseline recipe of 3 steps a stage: what runs, not what
# the methods do
TINY = dataclasses.replace(
    PRESETS["quick"],
    name="tiny",
    world={"n_train": 60, "n_val": 10, "n_test": 6, "n_unlabeled": 10, "n_pref": 8, "mmhal_items": 4},
    recipe={"vision": 3, "align": 3, "qa": 3, "sft": 3},
    dpo_steps=2,
    eval_limits={
        "pope_random": 12,
        "pope_popular": 12,
        "pope_adversarial": 12,
        "chair": 2,
        "mmhal": 2,
        "shr": 2,
    },
    variants=["baseline", "vcd", "opera", "ha_dpo+vcd"],
    shipped_baseline="",
)


def test_variant_names_and_unknown_combinations():
    assert split_variant("vcd") == ("baseline", "vcd")
    assert split_variant("ha_dpo+vcd") == ("ha_dpo", "vcd")
    assert split_variant("ha_dpo") == ("ha_dpo", "greedy")
    check_preset(dataclasses.replace(TINY, variants=["baseline", "fact_rlhf+pai", "combo+opera"]))
    for name in ("ha_dpo+beam", "vcd+icd", "baseline+vcd", "hadpo+vcd"):
        with pytest.raises(
            TetherError, match=rf"variant '{re.escape(name)}': a combination is <trained variant>\+"
        ):
            check_preset(dataclasses.replace(TINY, variants=["baseline", name]))
    with pytest.raises(TetherError, match=r"unknown variants \['vdc'\]; choose from .* or a combination"):
        check_preset(dataclasses.replace(TINY, variants=["baseline", "vdc"]))
    # a combination needs what its trained variant needs
    no_pref = dataclasses.replace(TINY, world={**TINY.world, "n_pref": 0}, variants=["ha_dpo+vcd"])
    with pytest.raises(TetherError, match=r"\['ha_dpo\+vcd'\] need the world's preference split"):
        check_preset(no_pref)


def test_decoding_variants_run_in_a_tiny_study(tmp_path, monkeypatch):
    evaluated = []
    evaluate_model = pipeline.evaluate_model

    def recording(model, world, folder, limits, progress, decoding=None):
        evaluated.append((folder.name, model, decoding and decoding.strategy))
        return evaluate_model(model, world, folder, limits, progress, decoding)

    monkeypatch.setattr(pipeline, "evaluate_model", recording)
    out = tmp_path / "study"
    report = pipeline.run_study(TINY, out, progress=False).read_text()
    seed0 = out / "seed0"
    baseline, ha_dpo = str(seed0 / "baseline" / "sft" / "model"), str(seed0 / "ha_dpo" / "model")
    # vcd and opera decode the baseline model, ha_dpo+vcd decodes HA-DPO's model with VCD
    assert evaluated == [
        ("baseline", baseline, None),
        ("vcd", baseline, "vcd"),
        ("opera", baseline, "opera"),
        ("ha_dpo+vcd", ha_dpo, "vcd"),
    ]

    def results(variant, bench):
        return json.loads((seed0 / "eval" / variant / bench / "results.json").read_text())

    # yes/no: VCD's fast variant; OPERA has none, so it generates a short answer; the baseline records the
    # margins the shift control reads
    for variant, mode in [("baseline", "fast"), ("vcd", "fast"), ("opera", "generate")]:
        assert results(variant, "pope_adversarial")["decoding"]["mode"] == mode
    assert results("opera", "pope_adversarial")["decoding"]["max_new_tokens"] == 8
    assert results("vcd", "chair")["decoding"]["strategy_options"]["noise_step"] == 500  # the paper's
    samples = (seed0 / "eval" / "baseline" / "pope_random" / "samples.jsonl").read_text().splitlines()
    assert all("p_yes" in json.loads(line) for line in samples)
    # every decoding and trained variant's yes/no rows get the control; the claims table has VCD's row
    shift = report[report.index("## Shift control") :].split("\n## ")[0]
    for variant in ("vcd", "opera", "ha_dpo+vcd"):
        for split in ("random", "popular", "adversarial"):
            assert f"| 0 | {variant} | pope_{split} |" in shift
    assert "| VCD | POPE-adversarial F1 up vs greedy decoding |" in report
    assert "| OPERA | CHAIR_i down vs greedy decoding |" in report
    assert f"'{SHIFT}'" in shift
