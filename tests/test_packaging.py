"""tether installs beside the user's own torch: the installed package's metadata asks for a range."""

import tomllib
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_installed_metadata_has_no_exact_torch_pin():
    """Reads what pip installed (run `pip install -e .` after changing pyproject.toml)."""
    torch = [Requirement(r) for r in requires("tether") or [] if Requirement(r).name == "torch"]
    assert torch, "the installed tether declares no torch requirement"
    for requirement in torch:
        operators = {spec.operator for spec in requirement.specifier}
        assert not operators & {"==", "===", "~="}, f"torch is pinned: {requirement}"
        assert not any(op in operators for op in ("<", "<=")), f"torch has an upper bound: {requirement}"
        assert ">=" in operators, f"torch has no lower bound (the oldest version tether needs): {requirement}"


def _narrow(requirement: Requirement) -> bool:
    """Pinned (``==``, ``~=``) or capped below a major release (``<0.22``, ``<1.17``; ``<6`` is a major cap)."""
    return any(
        spec.operator in ("==", "===", "~=")
        or (spec.operator in ("<", "<=") and len(Version(spec.version).release) > 1)
        for spec in requirement.specifier
    )


def test_every_narrow_pin_in_pyproject_states_its_reason():
    """A pinned or narrowly capped requirement is allowed only under a comment that says why."""
    lines = PYPROJECT.read_text().splitlines()
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    declared = project["dependencies"] + [d for ds in project["optional-dependencies"].values() for d in ds]
    narrow = [d for d in declared if _narrow(Requirement(d))]
    assert narrow  # the check below must have something to check
    for dependency in narrow:
        row = next(i for i, line in enumerate(lines) if f'"{dependency}"' in line)
        assert lines[row - 1].strip().startswith("#"), f"{dependency}: a narrow pin without a stated reason"
