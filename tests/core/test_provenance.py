"""What results record about the machine: the CPU, and torch's kernels only where torch ran."""

import json
import subprocess
import sys


def test_environment_names_the_cpu_and_torch_kernels_only_where_torch_is_loaded():
    script = (
        "import json, sys; from tether.core.provenance import environment; before = environment(); "
        "loaded = 'torch' in sys.modules; import torch; "
        "print(json.dumps([before, loaded, environment(), torch.backends.cpu.get_cpu_capability()]))"
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    before, loaded, after, capability = json.loads(output)
    assert not loaded  # recording the environment does not import torch
    assert set(before["cpu"]) == {"model"}
    assert after["cpu"]["torch_capability"] == capability and after["cpu"]["threads"] >= 1
