"""`tether train <method> --config recipe.yaml [--set key=value ...]`."""

import importlib

from tether.cli import add_set_option

# method verb -> module with `configure(parser)` (flags beyond --config/--set) and `run(args)`
TRAIN_VERBS = {
    "sft": (
        "tether.methods.sft_cli",
        "supervised fine-tuning / LM pretraining on (image, prompt, response) records",
    ),
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
        module = importlib.import_module(module_name)
        module.configure(sub)
        sub.set_defaults(handler=module.run)
