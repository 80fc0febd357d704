"""The import graph of ``src/tether``, read with ``ast`` (nothing is imported), and the checks that
docs/architecture.md asks of it: the layer rule, no cycles, deferred imports only in command modules,
and a size limit. Each check is a pure function of parsed modules, so a test can plant a violation."""

import ast
import fnmatch
import functools
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
ARCHITECTURE_DOC = REPO / "docs" / "architecture.md"
RULE_BLOCK = re.compile(r"^```toml\n(.*?)^```", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Import:
    target: str  # the tether module the statement reaches: `from tether.a import b` -> tether.a.b if a module
    line: int
    deferred: bool  # inside a function or class body, so it runs when called, not when imported


@dataclass(frozen=True)
class Module:
    name: str  # dotted: tether.eval.pope
    path: str  # shown in messages: src/tether/eval/pope.py
    lines: int
    imports: tuple[Import, ...]


@dataclass(frozen=True)
class Rule:
    order: tuple[str, ...]  # layer names, in the order their patterns are tried
    patterns: dict[str, tuple[str, ...]]  # layer -> globs over dotted module names
    may_import: dict[str, tuple[str, ...]]  # layer -> the other layers it may import
    anything: frozenset[str]  # layers that may import any layer

    def layer_of(self, module: str) -> str | None:
        """The first layer (in the rule's order) with a glob pattern matching the dotted name ``module``."""
        for layer in self.order:
            if any(fnmatch.fnmatchcase(module, pattern) for pattern in self.patterns[layer]):
                return layer
        return None

    def allows(self, importer: str, imported: str) -> bool:
        return importer == imported or importer in self.anything or imported in self.may_import[importer]


def parse_rule(text: str) -> Rule:
    """The rule from the single ```toml block of docs/architecture.md (``text`` is the whole document)."""
    blocks = RULE_BLOCK.findall(text)
    if len(blocks) != 1:
        raise ValueError(
            f"docs/architecture.md must hold exactly one ```toml block (the rule), found {len(blocks)}"
        )
    layers = tomllib.loads(blocks[0])["layers"]
    unknown = {
        f"{name} -> {other}"
        for name, layer in layers.items()
        for other in layer.get("may_import", [])
        if other not in layers
    }
    if unknown:
        raise ValueError(f"the rule names layers it does not define: {sorted(unknown)}")
    return Rule(
        order=tuple(layers),
        patterns={name: tuple(layer["modules"]) for name, layer in layers.items()},
        may_import={name: tuple(layer.get("may_import", [])) for name, layer in layers.items()},
        anything=frozenset(name for name, layer in layers.items() if layer.get("may_import_anything")),
    )


def read_rule() -> Rule:
    return parse_rule(ARCHITECTURE_DOC.read_text())


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def parse_module(source: str, name: str, path: str, known: set[str], is_package: bool = False) -> Module:
    """``source`` as a Module named ``name``; ``known`` is every module name in the tree, so that
    `from tether.eval import pope` counts as an import of tether.eval.pope, not of the package."""
    tree = ast.parse(source, path)
    found = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "tether" or alias.name.startswith("tether."):
                        found.append(Import(alias.name, child.lineno, deferred))
            elif isinstance(child, ast.ImportFrom):
                base = _resolve_relative(child, name, is_package) if child.level else child.module or ""
                if base == "tether" or base.startswith("tether."):
                    for alias in child.names:
                        sub = f"{base}.{alias.name}"
                        found.append(Import(sub if sub in known else base, child.lineno, deferred))
            visit(child, inner)

    visit(tree, False)
    return Module(name, path, len(source.splitlines()), tuple(found))


@functools.cache
def read_tree(src: Path = SRC) -> tuple[Module, ...]:
    """Every module under ``src/tether`` (read once per test session)."""
    paths = sorted((src / "tether").rglob("*.py"))
    known = {module_name(p, src) for p in paths}
    return tuple(
        parse_module(
            p.read_text(), module_name(p, src), str(p.relative_to(src.parent)), known, p.name == "__init__.py"
        )
        for p in paths
    )


def unplaced_modules(modules: Sequence[Module], rule: Rule) -> list[str]:
    """Modules no layer's pattern matches."""
    return [m.path for m in modules if rule.layer_of(m.name) is None]


def layer_violations(modules: Sequence[Module], rule: Rule) -> dict[tuple[str, str], list[str]]:
    """(importer, imported module) -> the ``file:line: importer (layer) imports module (layer)`` messages,
    for each import the rule forbids."""
    found = {}
    for module in modules:
        importer = rule.layer_of(module.name)
        for imp in module.imports:
            imported = rule.layer_of(imp.target)
            if importer and imported and not rule.allows(importer, imported):
                found.setdefault((module.name, imp.target), []).append(
                    f"{module.path}:{imp.line}: {module.name} ({importer}) imports {imp.target} ({imported})"
                )
    return found


def import_cycles(modules: Sequence[Module]) -> set[frozenset[str]]:
    """Each set of modules that import each other round a loop, deferred imports included (a deferred
    import hides a cycle from Python, not from a reader). A package importing its own submodules (an
    ``__init__`` re-exporting them) is not a loop unless a submodule imports the package back."""
    graph = networkx.DiGraph()
    names = {m.name for m in modules}
    for module in modules:
        graph.add_node(module.name)
        for imp in module.imports:
            if imp.target in names and imp.target != module.name:
                graph.add_edge(module.name, imp.target)
    return {frozenset(c) for c in networkx.strongly_connected_components(graph) if len(c) > 1}


def is_command_module(name: str, rule: Rule) -> bool:
    """Command/CLI modules: the layers that may import anything (the app layer)."""
    return rule.layer_of(name) in rule.anything


def deferred_imports(modules: Sequence[Module], rule: Rule) -> dict[tuple[str, str], list[str]]:
    """(module, imported module) -> ``file:line`` of each `tether` import inside a function, outside the
    command modules. Command modules defer imports so that `--help` stays fast; elsewhere a deferred
    import hides a dependency (often a cycle) from the top of the file."""
    found = {}
    for module in modules:
        if is_command_module(module.name, rule):
            continue
        for imp in module.imports:
            if imp.deferred:
                found.setdefault((module.name, imp.target), []).append(f"{module.path}:{imp.line}")
    return found


def long_modules(modules: Sequence[Module], limit: int) -> dict[str, int]:
    """``path`` -> line count, for each module longer than ``limit`` lines."""
    return {m.path: m.lines for m in modules if m.lines > limit}


def require_none(found: dict[object, list[str]], what: str) -> None:
    """Fail when ``found`` (each violation mapped to the messages that show where it is) holds any violation,
    naming every place."""
    lines = [f"  {line}" for key in sorted(found, key=str) for line in found[key]]
    assert not lines, "\n".join([f"{what}:", *lines])
