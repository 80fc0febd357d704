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
    folders = {
        p.name for p in (REPO / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "__"))
    }
    assert "data" in folders and "methods" in folders  # the scan saw the real tree
    assert not misplaced_test_folders(folders, src_names), (
        "test folders that mirror no package of src/tether (docs/architecture.md, 'Tests mirror src/')"
    )


def test_a_folder_named_after_a_paper_is_caught():
    assert misplaced_test_folders({"data", "hacl", "serve", "reliability"}, {"data", "serve", "methods"}) == {
        "hacl"
    }


def clashing_test_modules(paths: list) -> set[str]:
    """Module names that two test files outside packages share: pytest imports each by its bare name (the
    default import mode), so the second one fails to collect, or a run of one folder hides the clash."""
    seen: dict[str, int] = {}
    for path in paths:
        if not (path.parent / "__init__.py").is_file():
            seen[path.stem] = seen.get(path.stem, 0) + 1
    return {name for name, count in seen.items() if count > 1 and name != "conftest"}


def test_test_module_names_are_unique():
    modules = [p for p in (REPO / "tests").rglob("*.py") if "__pycache__" not in p.parts]
    assert len(modules) > 100  # the scan saw the real tree
    assert not clashing_test_modules(modules), "rename one of each: name it test_<module>_<topic>.py"


def test_a_clashing_test_module_name_is_caught(tmp_path):
    for folder in ("study", "world"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "test_claims.py").write_text("")
    assert clashing_test_modules(sorted(tmp_path.rglob("*.py"))) == {"test_claims"}
