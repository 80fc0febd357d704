"""Benchmarks by name: ``get_benchmark("pope")`` returns a fresh instance of the unit.

Adding a benchmark is one module (a ``Benchmark`` subclass: options, items, scorer) and its line here.
The order below is the order of ``tether eval --help``.
"""

from tether.core.errors import TetherError
from tether.eval.amber import Amber
from tether.eval.benchmark import Benchmark
from tether.eval.chair import Chair
from tether.eval.mme import Mme
from tether.eval.mmhal import MmhalBench
from tether.eval.objhalbench import ObjHalBench
from tether.eval.pope import Pope
from tether.eval.shr import Shr

BENCHMARKS: dict[str, type[Benchmark]] = {
    cls.name: cls
    for cls in (
        Pope,
        Chair,
        Mme,
        MmhalBench,
        Shr,
        Amber,
        ObjHalBench,
    )
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise TetherError(f"unknown benchmark '{name}' (known: {', '.join(BENCHMARKS)})")
    return BENCHMARKS[name]()
