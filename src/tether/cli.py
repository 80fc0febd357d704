"""`tether <verb> ...`: the command line.

Each area registers its own verbs from a ``commands`` module (``tether/<area>/commands.py`` with
``register(subparsers)``). Command modules import torch and friends inside their handlers, so
``--help`` stays fast.
"""

import argparse
import importlib
import logging
import os
import select
import sys

from tether import __version__
from tether.core.errors import TetherError

# Order is the order of `tether --help`.
COMMAND_MODULES = [
    "tether.models.commands",
    "tether.methods.commands",
    "tether.eval.commands",
    "tether.serve",
    "tether.world.commands",
    "tether.eval.judges.commands",
    "tether.data.commands",
    "tether.analysis.commands",
    "tether.study.commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether",
        description="Measure and reduce hallucination in multimodal LLMs.",
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="tether's debug lines (the first rendered prompt...)"
    )
    subparsers = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # some other pipe (a worker, a server): a real error
        # the reader of stdout went away (`tether ... | head`): stop quietly, as other Unix tools do, with
        # stdout on devnull so that the interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


def _stdout_closed() -> bool:
    """Whether stdout is a pipe with no reader left (poll reports an error on its write end)."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # replaced by an object without a descriptor
        return False
    if not hasattr(select, "poll"):
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    # -v is for tether's own lines; third-party debug output (PIL's chunk lists, HTTP) stays at INFO
    logging.getLogger("tether").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.handler(args) or 0
    except TetherError as e:
        print(f"tether: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = getattr(args, "resume_hint", None)
        print("tether: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
    finally:
        _close_process_group()


def _close_process_group() -> None:
    """Destroy the process group a distributed training run (torchrun) opened: left to interpreter exit,
    gloo's threads were seen to abort a finished rank ('terminate called without an active exception')."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()
