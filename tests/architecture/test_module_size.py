"""No module of src/tether is longer than MAX_LINES: one concept per module, readable in one sitting."""

from .import_graph import Import, Module, long_modules, read_tree, require_none

MAX_LINES = 500


def test_no_module_over_the_limit():
    found = {path: [f"{path}: {lines} lines"] for path, lines in long_modules(read_tree(), MAX_LINES).items()}
    require_none(found, f"modules over {MAX_LINES} lines (split them)")


def test_a_planted_long_module_is_caught():
    short = Module("tether.a", "src/tether/a.py", MAX_LINES, ())
    long = Module("tether.b", "src/tether/b.py", MAX_LINES + 1, (Import("tether.a", 1, False),))
    assert long_modules([short, long], MAX_LINES) == {"src/tether/b.py": MAX_LINES + 1}
