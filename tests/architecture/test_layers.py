"""The layer rule of docs/architecture.md holds: no module imports a layer its own layer may not import."""

import pytest

from .import_graph import (
    layer_violations,
    parse_rule,
    read_rule,
    read_tree,
    require_none,
    unplaced_modules,
)


def test_every_module_has_a_layer():
    assert not unplaced_modules(read_tree(), read_rule()), "add a pattern for it to docs/architecture.md"


def test_imports_follow_the_layer_rule():
    require_none(
        layer_violations(read_tree(), read_rule()),
        "imports against the layer rule in docs/architecture.md",
    )


def test_a_planted_upward_import_is_caught(tmp_path):
    """A ground-floor module importing a model module, written as a package tree and read like src/."""
    core = tmp_path / "tether" / "core"
    core.mkdir(parents=True)
    for package in (tmp_path / "tether", core, tmp_path / "tether" / "models"):
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("")
    (tmp_path / "tether" / "models" / "adapter.py").write_text("X = 1\n")
    (core / "io.py").write_text('"""io"""\n\nimport json\n\nfrom tether.models import adapter\n')
    (tmp_path / "tether" / "models" / "loading.py").write_text("from tether.core import io\n")

    found = layer_violations(read_tree(tmp_path), read_rule())

    assert found == {
        ("tether.core.io", "tether.models.adapter"): [
            f"{(core / 'io.py').relative_to(tmp_path.parent)}:5: "
            "tether.core.io (core) imports tether.models.adapter (models)"
        ]
    }
    with pytest.raises(AssertionError, match=r"io\.py:5: tether\.core\.io \(core\) imports"):
        require_none(found, "imports against the layer rule")


def test_the_app_layer_may_import_anything_and_is_matched_first():
    rule = read_rule()
    assert rule.layer_of("tether.eval.commands") == "app"
    assert rule.layer_of("tether.methods.dpo_cli") == "app"
    assert rule.layer_of("tether.eval.pope") == "eval"
    assert rule.allows("app", "study")
    assert not rule.allows("models", "eval")


def test_the_rule_must_be_in_one_block():
    with pytest.raises(ValueError, match="exactly one"):
        parse_rule("# doc\n```toml\n[layers.a]\nmodules = []\n```\n```toml\n[layers.b]\nmodules = []\n```\n")
    with pytest.raises(ValueError, match="does not define"):
        parse_rule('```toml\n[layers.a]\nmodules = ["x"]\nmay_import = ["b"]\n```\n')
