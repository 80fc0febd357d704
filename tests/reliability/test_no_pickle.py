"""No code path in src/ unpickles: `torch.load` only with `weights_only=True`, and no `pickle.load(s)`."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
UNPICKLERS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "joblib.load", "torch.load"}


def dotted(node: ast.AST) -> str:
    """`a.b.c` for an attribute chain, '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        prefix = dotted(node.value)
        return f"{prefix}.{node.attr}" if prefix else ""
    return ""


def weights_only(call: ast.Call) -> bool:
    return any(
        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def unsafe_loads(source: str, filename: str) -> list[str]:
    """`file:line: call` for every unpickling call in ``source`` (torch.load only when weights_only is not True)."""
    tree = ast.parse(source, filename)
    aliases = {}  # `from pickle import load as l` -> {"l": "pickle.load"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        name = aliases.get(name, name)
        if name in UNPICKLERS and not (name == "torch.load" and weights_only(node)):
            found.append(f"{filename}:{node.lineno}: {name}")
    return found


def test_scanner_catches_what_it_should():
    source = (
        "import torch, pickle\nfrom pickle import loads as l\n"
        "torch.load('a')\ntorch.load('a', weights_only=False)\ntorch.load('a', weights_only=True)\n"
        "pickle.load(f)\nl(b)\n"
    )
    assert unsafe_loads(source, "x.py") == [
        "x.py:3: torch.load",
        "x.py:4: torch.load",
        "x.py:6: pickle.load",
        "x.py:7: pickle.loads",
    ]


def test_src_never_unpickles():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20  # the scan really looked at the package
    found = [
        hit for path in files for hit in unsafe_loads(path.read_text(), str(path.relative_to(SRC.parent)))
    ]
    assert not found, (
        "unpickling calls (use safetensors, or torch.load(..., weights_only=True)):\n" + "\n".join(found)
    )
