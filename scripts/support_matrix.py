"""Write docs/models.md (capability x family) from the conformance suite's outcomes.

    PYTHONPATH=src python scripts/support_matrix.py            # runs tests/models/test_conformance.py
    PYTHONPATH=src python scripts/support_matrix.py --junit FILE  # reads a finished run's JUnit XML

A cell is ✓ when every test of that capability passed for the family (with LoRA and without, where the test
runs both); a skipped test is ✗ with its skip reason as the footnote; a failure is ✗ "fails". The table is
never edited by hand: rerun this script after changing an adapter.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = "tests/models/test_conformance.py"

# test function (without ``test_``) → column heading, in table order
CAPABILITIES = {
    "inputs_equal_hf_processor": "inputs = HF processor",
    "encode": "encode",
    "log_probs_equal_manual": "log-probs",
    "batched_log_probs_equal_one_by_one": "batched = one by one",
    "batched_generation_equals_batch_of_one": "batched generation",
    "fast_yes_no_equals_full_forward": "fast yes/no",
    "eos_representation_padding_invariant": "EOS padding-invariant",
    "image_token_guard": "image-token guard",
    "noiseboost_exactly_on_visual_tokens_only_while_training": "NoiseBoost placement",
    "sft_noiseboost_step": "SFT + NoiseBoost",
    "hacl_step": "HACL",
    "dpo_step_packed_equals_two_sequence": "DPO (packed = two-sequence)",
    "reward_step": "reward",
    "ppo_step": "PPO",
    "lora_save_and_reload": "LoRA save/reload",
    "attention_share_and_modality_gap": "attention share, modality gap",
    "multiple_images_per_prompt": "several images per prompt",
    "bfloat16_close_to_float32": "bfloat16",
    "attention_implementations_agree": "eager = sdpa",
}

FAMILY_NAMES = {
    "llava": "LLaVA-1.5",
    "llava_next": "LLaVA-NeXT",
    "llava_onevision": "LLaVA-OneVision",
    "llava_onevision1_5": "LLaVA-OneVision-1.5",
    "qwen2_vl": "Qwen2-VL",
    "qwen2_5_vl": "Qwen2.5-VL",
    "qwen3_vl": "Qwen3-VL",
    "internvl": "InternVL (HF format)",
    "gemma3": "Gemma 3",
    "idefics3": "Idefics3",
    "smolvlm": "SmolVLM",
    "instructblip": "InstructBLIP",
}

CASE = re.compile(r"^test_(?P<capability>\w+)\[(?P<family>[a-z0-9_]+)(-[\w-]+)?\]$")


def run_suite(junit: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", SUITE, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    subprocess.run(command, cwd=ROOT, env=env, check=False)


def outcomes(junit: Path) -> dict:
    """``{(family, capability): [(outcome, message), ...]}`` from a JUnit XML report."""
    cells = defaultdict(list)
    for case in ET.parse(junit).getroot().iter("testcase"):
        match = CASE.match(case.get("name", ""))
        if not match or match["capability"] not in CAPABILITIES:
            continue
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome, message = kind, element.get("message", "")
                break
        cells[match["family"], match["capability"]].append((outcome, message))
    return cells


def render(cells: dict) -> str:
    families = sorted({family for family, _ in cells}, key=lambda f: list(FAMILY_NAMES).index(f))
    notes: list[str] = []
    rows = []
    for capability, heading in CAPABILITIES.items():
        row = [heading]
        for family in families:
            results = cells.get((family, capability), [])
            if not results:
                row.append("—")
            elif all(outcome == "passed" for outcome, _ in results):
                row.append("✓")
            else:
                outcome, message = next(r for r in results if r[0] != "passed")
                reason = message.removeprefix("Skipped: ") if outcome == "skipped" else "fails the suite"
                if reason not in notes:
                    notes.append(reason)
                row.append(f"✗ [{notes.index(reason) + 1}]")
        rows.append(row)
    header = ["capability", *(f"`{family}`" for family in families)]
    lines = [
        "# Supported model families",
        "",
        "<!-- written by scripts/support_matrix.py from tests/models/test_conformance.py; do not edit -->",
        "",
        "Every family below loads through `tether.models.load(path)` from a local checkpoint folder (safetensors",
        "only). Each cell is the outcome of the conformance suite (`tests/models/test_conformance.py`) on a",
        "tiny random-init checkpoint of the family, built from its transformers config class with",
        "`tether models tiny --arch NAME`: ✓ = every test of that column passed (training steps with LoRA and",
        "without), ✗ = refused, with the reason below (tether raises a clear error for that combination).",
        "",
        "Families: " + ", ".join(f"`{f}` {FAMILY_NAMES.get(f, f)}" for f in families) + ".",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    if notes:
        lines += ["Reasons:", ""] + [f"{i}. {note}" for i, note in enumerate(notes, 1)] + [""]
    lines += [
        "What the columns check:",
        "",
        "- **inputs = HF processor**: tether's token ids and pixel tensors equal those of the family's own",
        "  transformers processor, on three image sizes (anyres grids, tile and crop counts, native grids vary).",
        "- **encode** … **image-token guard**: the adapter guarantees (`src/tether/models/adapter.py`); fast",
        "  yes/no equals a full forward (InstructBLIP, whose visual tokens read the question, has no prefix",
        "  to share and runs the full forward itself).",
        "- **NoiseBoost placement**: the noise changes exactly the LLM inputs at visual tokens (LLaVA-NeXT/",
        "  OneVision: all but the learned row-newline tokens, which are added after the projector), and",
        "  nothing in eval mode.",
        "- **SFT + NoiseBoost**, **HACL**, **DPO**, **reward**, **PPO**: one optimizer step, with LoRA and",
        "  without; DPO's packed shared-prefix loss equals the two-sequence loss within 1e-5.",
        "- **bfloat16**: summed response log-probs within 0.02 nats and the SFT loss within 0.1% of float32.",
        "- **eager = sdpa**: `load(path, attn_implementation=...)` gives the same log-probs with both",
        "  (`flash_attention_2` needs a GPU and the flash-attn package; transformers itself refuses it for",
        "  Gemma 3, whose image blocks need a mask flash attention cannot take).",
        "",
        "`tether models info DIR [--image-size WxH]` prints a checkpoint's family, its visual tokens per image",
        "at that size, the projector module (NoiseBoost's hook point) and its prompt under the chat template.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", type=Path, help="a finished run's JUnit XML (default: run the suite)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "models.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        junit = args.junit
        if junit is None:
            junit = Path(tmp) / "conformance.xml"
            run_suite(junit)
        cells = outcomes(junit)
    if not cells:
        print("no conformance results found", file=sys.stderr)
        return 1
    args.out.write_text(render(cells))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
