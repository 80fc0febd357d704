"""`tether train <method> --config recipe.yaml [--set key=value ...] [--launcher torchrun --nproc 2]`."""

import importlib
import os
import subprocess
import sys

from tether.core.options import add_set_option
from tether.models.placement import add_chat_template_option

EXPECTED_WORLD_SIZE = "TETHER_EXPECTED_WORLD_SIZE"

# method verb -> module with `configure(parser)` (flags beyond --config/--set) and `run(args)`
TRAIN_VERBS = {
    "sft": (
        "tether.methods.sft_cli",
        "supervised fine-tuning / LM pretraining on (image, prompt, response) records",
    ),
    "vision": (
        "tether.methods.vision_cli",
        "pretrain the vision tower by image-level or dense (per-patch) multi-label classification",
    ),
    "reward": (
        "tether.methods.reward_cli",
        "Fact-RLHF reward model: VLM + scalar head, pairwise loss on (chosen, rejected) pairs with facts",
    ),
    "ppo": (
        "tether.methods.ppo_cli",
        "multimodal PPO against a reward model (KL to the reference, GAE, clipped losses, reward shaping)",
    ),
    "hacl": (
        "tether.methods.hacl_cli",
        "HACL: stage-1 alignment + contrastive loss with hallucinated negatives",
    ),
    "ssl": ("tether.methods.ssl_cli", "semi-supervised NoiseBoost: teacher pseudo-labels, noised student"),
    "dpo": (
        "tether.methods.dpo_cli",
        "HA-DPO: sigmoid DPO on preference pairs (shared-prefix forward, cached reference)",
    ),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a model with one of tether's methods")
    verbs = parser.add_subparsers(dest="train_verb", metavar="<method>", required=True)
    for verb, (module_name, help_text) in TRAIN_VERBS.items():
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        add_set_option(sub)
        sub.add_argument(
            "--overwrite",
            action="store_true",
            help="replace a run in the output folder made with other settings, model or data (without it "
            "such a rerun is refused; the same inputs resume, and a finished run is left as it is)",
        )
        add_chat_template_option(sub)
        _add_launcher_options(sub)
        module = importlib.import_module(module_name)
        module.configure(sub)
        sub.set_defaults(
            handler=_launching(module.run),
            resume_hint="run the same command again to resume from the newest checkpoint in train.output_dir "
            "(one is saved every train.save_steps steps)",
        )


def _add_launcher_options(parser) -> None:
    group = parser.add_argument_group("multi-process launch")
    group.add_argument(
        "--launcher",
        choices=["none", "torchrun", "accelerate"],
        default="none",
        help="re-run this command under torchrun or accelerate launch (DDP, DeepSpeed, FSDP)",
    )
    group.add_argument("--nproc", type=int, default=2, help="processes per node for --launcher")
    group.add_argument("--accelerate-config", help="accelerate config file (see configs/accelerate/)")


def _launching(run):
    def handler(args) -> int:
        if args.overwrite:
            args.overrides.append("train.overwrite=true")
        if args.chat_template:  # a recipe field (model.chat_template): the recipe and the command line agree
            args.overrides.append(f"model.chat_template={args.chat_template}")
        if args.launcher == "none" or "LOCAL_RANK" in os.environ:
            return run(args)
        return _relaunch(args)

    return handler


def _relaunch(args) -> int:
    """Start this same command under the launcher; the launched processes check that they are ``--nproc``."""
    argv = sys.argv[1:]
    for flag in ("--launcher", "--nproc", "--accelerate-config"):
        while flag in argv:
            i = argv.index(flag)
            del argv[i : i + 2]
    if args.launcher == "torchrun":
        prefix = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc)]
    else:
        prefix = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(args.nproc)]
        if args.accelerate_config:
            prefix += ["--config_file", args.accelerate_config]
    env = {**os.environ, EXPECTED_WORLD_SIZE: str(args.nproc)}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    return subprocess.call(prefix + ["-m", "tether"] + argv, env=env)
