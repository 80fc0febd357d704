from pathlib import Path

import pytest

from .served import Served

REPO = Path(__file__).resolve().parents[2]
WORDS = "red blue green star square circle triangle left right above below".split()


@pytest.fixture(scope="session")
def served_checkpoint(tmp_path_factory, world) -> Path:
    """A tiny llava checkpoint whose next token is often "yes" or "no" (see ``_make_yes_no_likely``)."""
    from tether.core.images import open_image
    from tether.eval.registry import get_benchmark
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint
    from tether.study.evaluate import world_benchmarks

    path = build_tiny_checkpoint(TinyConfig(arch="llava"), tmp_path_factory.mktemp("served_tiny"), WORDS)
    _, questions_file, _ = world_benchmarks(world)["pope_random"]
    items = get_benchmark("pope").load_items(questions_file)[:40]
    _make_yes_no_likely(path, [(open_image(world / "images", i.image), i.prompt) for i in items])
    return path


def _make_yes_no_likely(path: Path, questions: list) -> None:
    """A random init rarely puts "yes" or "no" among the top 20 next tokens, so fast mode over an endpoint's
    top logprobs would have nothing to compare. Give both output rows the row of the token the model most
    often ranks first, one plus and one minus a step along the direction in which the model's last hidden
    states for ``questions`` ((image, prompt) pairs) vary most, and a shift along their mean that puts the
    yes-no margins on both sides of zero (none at zero): both rank near the top, and which wins depends on image and question."""
    import torch
    from safetensors.torch import load_file, save_file

    from tether.models import load

    vlm = load(path)
    batch = vlm.encode([image for image, _ in questions], [q for _, q in questions], padding_side="left")
    with torch.no_grad():
        output = vlm.forward(batch, output_hidden_states=True)
    hidden = output.hidden_states[-1][:, -1]
    firsts = output.logits[:, -1].argmax(-1).tolist()
    top = max(set(firsts), key=firsts.count)
    mean = hidden.mean(0)
    weights_file = path / "model.safetensors"
    weights = load_file(weights_file)
    key = next(k for k in weights if k.endswith("lm_head.weight"))
    head = weights[key]
    direction = torch.linalg.svd(hidden - mean, full_matrices=False).Vh[0]
    step = 5 * head[top].norm() / direction.norm() * direction
    # the zero between the two middle distinct values (identical inputs give equal ones): no exact ties
    values = (hidden @ step).unique()
    middle = len(values) // 2
    step -= (values[middle - 1] + values[middle]) / 2 / (mean @ mean) * mean
    head[vlm.tokenizer.convert_tokens_to_ids("yes")] = head[top] + step
    head[vlm.tokenizer.convert_tokens_to_ids("no")] = head[top] - step
    save_file(weights, weights_file, metadata={"format": "pt"})


@pytest.fixture(scope="session")
def served(served_checkpoint, tmp_path_factory):
    """One `tether serve` process shared by the tests that do not kill it."""
    server = Served(served_checkpoint, tmp_path_factory.mktemp("serve_logs"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    from tether.world.build import build_world
    from tether.world.config import load_world_config

    out = tmp_path_factory.mktemp("served_world") / "smoke"
    build_world(load_world_config(REPO / "configs" / "world" / "smoke.yaml"), out)
    return out
