"""`tether train <method> --config recipe.yaml [--set key=value ...] [--launcher torchrun --nproc 2]`."""

import dataclasses
import functools
import importlib
import os
import subprocess
import sys
import typing
from dataclasses import dataclass

from tether.core.options import add_set_option
from tether.models.placement import add_chat_template_option

EXPECTED_WORLD_SIZE = "TETHER_EXPECTED_WORLD_SIZE"


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one field of the method's config, after the recipe and its ``--set``.

    ``action``: "set" (the flag's value; a ``None`` section on the way is created with its defaults),
    "extend" (a repeatable flag whose values are added to the field's list), "false" (a switch that sets
    the field to False)."""

    flag: str
    field: str  # dotted path in the config, as --set writes it
    help: str
    type: type = str
    metavar: str | None = None
    action: str = "set"


@dataclass(frozen=True)
class Method:
    """A ``tether train <verb>``: where its config and train function live, and its flags."""

    module: str
    config: str  # the config dataclass in ``module``
    train: str  # ``train(config) -> folder`` in ``module``
    help: str
    writes: str  # what the returned folder holds, for the closing line
    flags: tuple[Flag, ...] = ()


OUTPUT_DIR = Flag("--output-dir", "train.output_dir", "overrides train.output_dir")


def noiseboost_flag(help: str) -> Flag:
    return Flag("--noiseboost", "noiseboost.scale", help, float, "SCALE")


# every `tether train` verb, in the order `tether train --help` lists them
METHODS = {
    "sft": Method(
        "tether.methods.sft",
        "SFTConfig",
        "train_sft",
        "supervised fine-tuning / LM pretraining on (image, prompt, response) records",
        "trained model",
        (
            OUTPUT_DIR,
            noiseboost_flag("NoiseBoost: Gaussian noise of this scale on visual tokens while training"),
        ),
    ),
    "vision": Method(
        "tether.methods.vision",
        "VisionConfig",
        "train_vision",
        "pretrain the vision tower by image-level or dense (per-patch) multi-label classification",
        "trained model",
        (OUTPUT_DIR,),
    ),
    "reward": Method(
        "tether.methods.reward",
        "RewardConfig",
        "train_reward",
        "Fact-RLHF reward model: VLM + scalar head, pairwise loss on (chosen, rejected) pairs with facts",
        "reward model",
        (
            OUTPUT_DIR,
            Flag(
                "--no-facts",
                "reward.use_facts",
                "the vanilla reward model: leave facts (captions, options' ground truth) out of its prompt",
                action="false",
            ),
        ),
    ),
    "ppo": Method(
        "tether.methods.ppo",
        "PPOConfig",
        "train_ppo",
        "multimodal PPO against a reward model (KL to the reference, GAE, clipped losses, reward shaping)",
        "trained policy",
        (
            OUTPUT_DIR,
            Flag(
                "--reward-model",
                "ppo.reward_model",
                "overrides ppo.reward_model (a `tether train reward` folder)",
            ),
        ),
    ),
    "hacl": Method(
        "tether.methods.hacl",
        "HACLConfig",
        "train_hacl",
        "HACL: stage-1 alignment + contrastive loss with hallucinated negatives",
        "trained model",
        (
            OUTPUT_DIR,
            Flag(
                "--negatives",
                "data.negatives",
                "negatives JSONL (repeatable; adds to data.negatives)",
                action="extend",
            ),
            Flag("--weight", "hacl.weight", "w in L_G + w*(L_v + L_t)/2 (overrides hacl.weight)", float),
        ),
    ),
    "ssl": Method(
        "tether.methods.ssl",
        "SSLConfig",
        "train_ssl",
        "semi-supervised NoiseBoost: teacher pseudo-labels, noised student",
        "trained student",
        (
            OUTPUT_DIR,
            Flag("--teacher", "pseudo.teacher", "overrides pseudo.teacher (trained checkpoint folder)"),
            noiseboost_flag(
                "NoiseBoost scale on the student's visual tokens (default from the recipe: 0.5; 0 turns it off)"
            ),
        ),
    ),
    "dpo": Method(
        "tether.methods.dpo",
        "DPOConfig",
        "train_dpo",
        "HA-DPO: sigmoid DPO on preference pairs (shared-prefix forward, cached reference)",
        "trained model",
        (
            OUTPUT_DIR,
            Flag("--beta", "dpo.beta", "overrides dpo.beta (default 0.1)", float),
            noiseboost_flag(
                "NoiseBoost: Gaussian noise of this scale on the visual tokens of the chosen branch while "
                "training"
            ),
        ),
    ),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a model with one of tether's methods")
    verbs = parser.add_subparsers(dest="train_verb", metavar="<method>", required=True)
    for verb, method in METHODS.items():
        sub = verbs.add_parser(verb, help=method.help, description=method.help)
        add_set_option(sub)
        sub.add_argument(
            "--overwrite",
            action="store_true",
            help="replace a run in the output folder made with other settings, model or data (without it "
            "such a rerun is refused; the same inputs resume, and a finished run is left as it is)",
        )
        add_chat_template_option(sub)
        _add_launcher_options(sub)
        for flag in method.flags:
            _add_flag(sub, flag)
        sub.set_defaults(
            handler=_launching(functools.partial(run_method_command, method)),
            resume_hint="run the same command again to resume from the newest checkpoint in train.output_dir "
            "(one is saved every train.save_steps steps)",
        )


def _add_flag(parser, flag: Flag) -> None:
    dest = flag.flag.removeprefix("--").replace("-", "_")
    if flag.action == "false":
        parser.add_argument(flag.flag, dest=dest, action="store_true", help=flag.help)
    elif flag.action == "extend":
        parser.add_argument(flag.flag, dest=dest, action="append", type=flag.type, help=flag.help)
    else:
        parser.add_argument(flag.flag, dest=dest, type=flag.type, metavar=flag.metavar, help=flag.help)


def run_method_command(method: Method, args) -> int:
    """Load the recipe (with ``--set``), apply the method's flags, train, and say where the result is."""
    from tether.core.config import load_config

    module = importlib.import_module(method.module)
    config = load_config(getattr(module, method.config), args.config, args.overrides)
    for flag in method.flags:
        apply_flag(config, flag, getattr(args, flag.flag.removeprefix("--").replace("-", "_")))
    out = getattr(module, method.train)(config)
    print(f"{method.writes} written to {out}")
    return 0


def apply_flag(config, flag: Flag, value) -> None:
    """Write a flag's ``value`` into ``config`` at ``flag.field``; an unused flag (None, an unset switch,
    an empty string) leaves the recipe's value."""
    if value is None or value is False or value == "":
        return
    *sections, name = flag.field.split(".")
    node = config
    for section in sections:
        if getattr(node, section) is None:  # e.g. `noiseboost: null` in the recipe, then --noiseboost 0.3
            hint = typing.get_type_hints(type(node))[section]
            section_class = next(t for t in typing.get_args(hint) if dataclasses.is_dataclass(t))
            setattr(node, section, section_class())
        node = getattr(node, section)
    if flag.action == "false":
        value = False
    elif flag.action == "extend":
        value = [*getattr(node, name), *value]
    setattr(node, name, value)


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
