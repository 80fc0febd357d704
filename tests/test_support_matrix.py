"""scripts/support_matrix.py turns conformance outcomes into the docs/models.md table."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "support_matrix.py"


def load_script():
    spec = importlib.util.spec_from_file_location("support_matrix", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cells_from_junit_outcomes(tmp_path):
    junit = tmp_path / "run.xml"
    junit.write_text(
        """<testsuites><testsuite>
        <testcase classname="tests.models.test_conformance" name="test_encode[llava]"/>
        <testcase classname="tests.models.test_conformance" name="test_encode[gemma3]"/>
        <testcase classname="tests.models.test_conformance" name="test_ppo_step[llava-full]"/>
        <testcase classname="tests.models.test_conformance" name="test_ppo_step[llava-lora]">
          <failure message="boom"/></testcase>
        <testcase classname="tests.models.test_conformance" name="test_ppo_step[gemma3-full]">
          <skipped message="no place for a value head"/></testcase>
        <testcase classname="tests.models.test_conformance" name="test_every_family_has_a_tiny_builder"/>
        </testsuite></testsuites>"""
    )
    matrix = load_script()
    cells = matrix.outcomes(junit)
    assert set(cells) == {
        ("llava", "encode"),
        ("gemma3", "encode"),
        ("llava", "ppo_step"),
        ("gemma3", "ppo_step"),
    }
    table = matrix.render(cells)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert rows["encode"] == "| encode | ✓ | ✓ |"  # columns: llava, then gemma3
    # one failing variant (LoRA) makes the cell a failure; a skip carries its reason as a footnote
    assert rows["PPO"] == "| PPO | ✗ [1] | ✗ [2] |"
    assert "1. fails the suite" in table and "2. no place for a value head" in table
