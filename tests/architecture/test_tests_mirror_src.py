"""`tests/` mirrors `src/tether/` (docs/architecture.md): each folder of tests/ is named after a package or
a top-level module of src/tether, or is one of the named cross-cutting suites."""

from .import_graph import REPO

CROSS_CUTTING = {"architecture", "reliability", "distributed", "benchmarks"}


def misplaced_test_folders(test_folders: set[str], src_names: set[str]) -> set[str]:
    """The test folders named after neither a package or module of src/tether nor a cross-cutting suite."""
    return test_folders - src_names - CROSS_CUTTING


def test_test_folders_mirror_src():
    src = REPO / "src" / "tether"
    src_names = {p.stem for p in src.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    folders = {p.name for p in (REPO / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert "data" in folders and "methods" in folders  # the scan saw the real tree
    assert not misplaced_test_folders(folders, src_names), (
        "test folders that mirror no package of src/tether (docs/architecture.md, 'Tests mirror src/')"
    )


def test_a_folder_named_after_a_paper_is_caught():
    assert misplaced_test_folders({"data", "hacl", "serve", "reliability"}, {"data", "serve", "methods"}) == {
        "hacl"
    }
