"""`tether models ...`: build tiny checkpoints, inspect a local checkpoint."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="build tiny checkpoints, inspect local checkpoints")
    verbs = parser.add_subparsers(dest="models_verb", metavar="<verb>", required=True)

    info = verbs.add_parser("info", help="load a local checkpoint folder and print what tether sees in it")
    info.add_argument("path", help="a local Hugging Face checkpoint folder (model + processor)")
    info.add_argument(
        "--trust-remote-code", action="store_true", help="allow code shipped with the checkpoint"
    )
    info.set_defaults(handler=_info)


def _info(args) -> int:
    from tether.models import load

    vlm = load(args.path, trust_remote_code=args.trust_remote_code)
    for key, value in vlm.describe().items():
        print(f"{key:>22}: {value}")
    return 0
