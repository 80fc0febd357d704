"""No two modules of src/tether import each other round a loop, deferred imports counted."""

from .import_graph import Import, Module, import_cycles, read_tree, require_none


def test_no_import_cycles():
    found = {cycle: [" <-> ".join(sorted(cycle))] for cycle in import_cycles(read_tree())}
    require_none(found, "import cycles")


def module(name: str, *imports: tuple[str, bool]) -> Module:
    return Module(name, name.replace(".", "/") + ".py", 1, tuple(Import(t, 1, d) for t, d in imports))


def test_a_planted_cycle_hidden_by_a_deferred_import_is_caught():
    modules = [
        module("tether.a", ("tether.b", False)),
        module("tether.b", ("tether.c", False)),
        module("tether.c", ("tether.a", True)),  # deferred: Python would not notice
        module("tether.d", ("tether.a", False)),
    ]
    assert import_cycles(modules) == {frozenset({"tether.a", "tether.b", "tether.c"})}


def test_a_package_importing_its_submodules_is_no_cycle():
    modules = [module("tether.models", ("tether.models.loading", False)), module("tether.models.loading")]
    assert import_cycles(modules) == set()
