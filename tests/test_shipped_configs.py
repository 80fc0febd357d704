"""Every config under configs/ runs as shipped against the synthetic world's files.

Each YAML goes to the command that consumes it, in a folder laid out as the tiny recipes' comments say:
``runs/world`` (a small world), ``runs/tiny`` (``tether models tiny --for-world runs/world``),
``runs/negatives.jsonl`` (``tether data negatives``) and ``runs/pairs.jsonl`` (``tether data answer-pairs``).
A path a config names inside that layout is used as shipped, so it must be a file the world and the tools
write. Placeholders and real datasets' paths (``data/...``, ``checkpoints/...``) are replaced by the world's
files; only sizes shrink (steps, generation lengths, world splits). A config in a folder without a rule here
fails, so a new config is covered or noticed.
"""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from tether.cli import main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))
WORLD = "runs/world"
IMAGES = f"{WORLD}/images"
LAYOUT = (f"{WORLD}/", "runs/tiny/", "runs/negatives.jsonl/", "runs/pairs.jsonl/")  # each ends in "/"
REWARD_MODEL = "runs/reward_for_ppo/reward_model"

# what the world gives each trainer, by config key
WORLD_DATA = {
    "sft": {"data.train": [f"{WORLD}/text/train_captions.jsonl"], "data.images": IMAGES},
    "hacl": {
        "data.train": [f"{WORLD}/text/train_captions.jsonl"],
        "data.negatives": ["runs/negatives.jsonl"],
        "data.images": IMAGES,
    },
    "ssl": {
        "data.labeled": [f"{WORLD}/text/train_qa.jsonl"],
        "data.unlabeled": [f"{WORLD}/scenes/unlabeled.jsonl"],
        "data.images": IMAGES,
        "pseudo.teacher": "runs/tiny",
    },
    "dpo": {"data.train": ["runs/pairs.jsonl"], "data.images": IMAGES},
    "reward": {
        "data.train": ["runs/pairs.jsonl"],
        "data.eval": ["runs/pairs.jsonl"],
        "data.images": IMAGES,
        "data.captions": None,  # facts come with the pairs or not at all: the world has no image_to_caption.json
    },
    "ppo": {
        "data.train": [f"{WORLD}/text/pref_questions.jsonl"],
        "data.images": IMAGES,
        "data.captions": None,
        "ppo.reward_model": REWARD_MODEL,
    },
}
# sizes only: one or two steps, short generations
SIZES = {
    "sft": {"train.max_steps": 2},
    "hacl": {"train.max_steps": 2},
    "dpo": {"train.max_steps": 2},
    "reward": {"train.max_steps": 2},
    "ssl": {"train.max_steps": 2, "pseudo.max_new_tokens": 6},
    "ppo": {
        "train.max_steps": 1,
        "ppo.rollout_batch_size": 4,
        "ppo.mini_batch_size": 2,
        "ppo.max_new_tokens": 6,
    },
}
SMALL_WORLD = [
    "n_train=16",
    "n_val=4",
    "n_test=8",
    "n_unlabeled=4",
    "mme_images_per_subtask=2",
    "mmhal_items=8",
]


def trainer_of(config: Path) -> str | None:
    """The `tether train` verb of a recipe, from its folder (and name in folders with several methods)."""
    folder, name = config.parent.name, config.name
    by_folder = {"dpo": "dpo", "hacl": "hacl"}
    if folder in by_folder:
        return by_folder[folder]
    if folder == "noiseboost":
        return "ssl" if name.startswith("ssl") else "sft"
    if folder == "rlhf":
        return "ppo" if name.startswith("ppo") else "reward"
    return None


def tether(*args) -> None:
    assert main([str(a) for a in args]) == 0, f"tether {' '.join(map(str, args))} failed"


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """The layout of the tiny recipes' comments, made by the commands they name."""
    root = tmp_path_factory.mktemp("lab")
    sets = [x for item in [*SMALL_WORLD, "n_pref=4"] for x in ("--set", item)]
    tether("world", "build", "--config", REPO / "configs/world/smoke.yaml", "--out", root / WORLD, *sets)
    tether("models", "tiny", "--for-world", root / WORLD, "--out", root / "runs/tiny")
    tether(
        "data", "negatives", root / WORLD / "text/train_captions.jsonl", "--out", root / "runs/negatives.jsonl",
        "--synonyms", root / WORLD / "bench/chair/synonyms.txt",
    )  # fmt: skip
    tether(
        "data", "answer-pairs", root / "runs/tiny", "--questions", root / WORLD / "text/pref_questions.jsonl",
        "--images", root / IMAGES, "--out", root / "runs/pairs.jsonl", "--select", "all", "--no-progress",
    )  # fmt: skip
    return root


def _shipped(raw: dict, dotted: str):
    node = raw
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _in_layout(value) -> bool:
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(isinstance(v, str) and f"{v}/".startswith(LAYOUT) for v in values)


def recipe_overrides(config: Path, verb: str) -> list[str]:
    """--set items: the world's files where the config names no layout path, the model, smaller sizes."""
    raw = yaml.safe_load(config.read_text())
    wanted = {"model.path": "runs/tiny", **WORLD_DATA[verb]}
    items = [
        f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
        for key, value in wanted.items()
        if not _in_layout(_shipped(raw, key))
    ]
    items += [f"{key}={value}" for key, value in SIZES[verb].items()]
    return [x for item in items for x in ("--set", item)]


@pytest.fixture
def in_lab(lab, monkeypatch) -> Path:
    monkeypatch.chdir(lab)
    yield lab
    for output in (lab / "runs").iterdir():  # outputs of the config run; the layout stays
        if output.name not in ("world", "tiny", "negatives.jsonl", "pairs.jsonl", "pairs.run.json"):
            if output.name != Path(REWARD_MODEL).parts[1]:
                shutil.rmtree(output) if output.is_dir() else output.unlink()


@pytest.fixture
def reward_model(in_lab) -> Path:
    """A reward model for the PPO recipes, from the tiny reward recipe (one step)."""
    if not (in_lab / REWARD_MODEL).is_dir():
        config = REPO / "configs/rlhf/reward_tiny.yaml"
        tether(
            "train", "reward", "--config", config, *recipe_overrides(config, "reward"),
            "--set", f"train.output_dir={Path(REWARD_MODEL).parent}",
        )  # fmt: skip
    return in_lab / REWARD_MODEL


def _run_trainer(config: Path, verb: str, request) -> None:
    from accelerate.state import AcceleratorState

    # one process per command for a user; here one for all, so accelerate's process-wide state (mixed precision
    # is fixed at its first use) is reset as a new process would find it (the reward model's run came first)
    if verb == "ppo":
        request.getfixturevalue("reward_model")
    AcceleratorState._reset_state(reset_partial_state=True)
    overrides = recipe_overrides(config, verb)
    if (
        importlib.util.find_spec("tensorboard") is None
    ):  # an optional logger: the rest of the recipe still runs
        overrides += ["--set", "train.report_to=[none]"]
    tether("train", verb, "--config", config, *overrides)
    output_dir = _shipped(yaml.safe_load(config.read_text()), "train.output_dir")
    assert (Path(output_dir) / "model").is_dir() or (Path(output_dir) / "reward_model").is_dir()


def _run_world(config: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(config.read_text())
    sets = SMALL_WORLD + (["n_pref=2"] if raw.get("n_pref") else [])
    options = [x for s in sets for x in ("--set", s)]
    tether("world", "build", "--config", config, "--out", tmp_path / "w", *options)
    built = yaml.safe_load((tmp_path / "w" / "world.json").read_text())["config"]
    resized = {s.partition("=")[0] for s in sets}
    assert {k: built[k] for k in raw if k not in resized} == {
        k: v for k, v in raw.items() if k not in resized
    }


def _run_accelerate(config: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    # accelerate's own loader refuses unknown keys and values; the launch itself needs the GPUs the file names
    assert isinstance(load_config_from_file(str(config)), ClusterConfig)


def _run_judge(config: Path, tmp_path: Path, lab: Path, monkeypatch) -> None:
    """The judge recipe scores the world's MMHal items, its endpoint replaced by a loopback server."""
    from chat_server import ChatServer, ok

    raw = yaml.safe_load(config.read_text())
    with ChatServer(default=ok("The answer is correct. Rating: 5")) as server:
        raw.update(base_url=server.base_url, cache_dir=str(tmp_path / "cache"))
        local = tmp_path / config.name
        local.write_text(yaml.safe_dump(raw))
        monkeypatch.delenv(raw.get("api_key_env", "OPENAI_API_KEY"), raising=False)
        tether(
            "eval", "mmhal", "run", "--model", lab / "runs/tiny", "--template",
            lab / WORLD / "bench/mmhal/mmhal_world.json", "--images", lab / IMAGES, "--judge-config", local,
            "--out", tmp_path / "mmhal", "--max-new-tokens", 4, "--no-progress",
        )  # fmt: skip
        items = json.loads((lab / WORLD / "bench/mmhal/mmhal_world.json").read_text())
        assert len(server.requests) == len(items) and all(
            r["body"]["model"] == raw["model"] for r in server.requests
        )
    results = json.loads((tmp_path / "mmhal" / "results.json").read_text())
    assert results["metrics"]["average_score"] == 5.0


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_config_runs_as_shipped_on_the_world(config, tmp_path, request, monkeypatch):
    folder = config.parent.name
    if folder == "world":
        _run_world(config, tmp_path)
    elif folder == "accelerate":
        _run_accelerate(config)
    elif folder == "judges":
        _run_judge(config, tmp_path, request.getfixturevalue("lab"), monkeypatch)
    elif trainer_of(config) is not None:
        request.getfixturevalue("in_lab")
        _run_trainer(config, trainer_of(config), request)
    else:
        pytest.fail(
            f"{config}: no command here runs this config; add its folder to tests/test_shipped_configs.py"
        )
