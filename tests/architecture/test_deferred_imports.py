"""`tether` imports inside functions appear only in command/CLI modules (the app layer of
docs/architecture.md), which defer them so that `tether --help` does not import torch."""

from .import_graph import deferred_imports, parse_module, read_rule, read_tree, require_none


def by_module(found: dict[tuple[str, str], list[str]]) -> dict[str, list[str]]:
    out = {}
    for (name, target), places in sorted(found.items()):
        out.setdefault(name, []).extend(f"{place}: deferred import of {target}" for place in places)
    return out


def test_deferred_imports_only_in_command_modules():
    require_none(
        by_module(deferred_imports(read_tree(), read_rule())),
        "deferred `tether` imports outside command modules (move them to the top of the file)",
    )


SOURCE = '''"""A module."""

from tether.core.io import read_jsonl


class Loader:
    from tether.core import errors  # runs at import time: not deferred


def load(path):
    import tether.models.loading

    return read_jsonl(path)
'''


def test_a_planted_deferred_import_is_caught():
    known = {"tether.core.io", "tether.core.errors", "tether.models.loading"}
    planted = parse_module(SOURCE, "tether.eval.pope", "src/tether/eval/pope.py", known)
    as_command = parse_module(SOURCE, "tether.eval.commands", "src/tether/eval/commands.py", known)

    found = deferred_imports([planted, as_command], read_rule())

    assert found == {("tether.eval.pope", "tether.models.loading"): ["src/tether/eval/pope.py:11"]}
