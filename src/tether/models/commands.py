"""`tether models ...`: build tiny checkpoints, inspect a local checkpoint."""

from tether.cli import add_model_options, model_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="build tiny checkpoints, inspect local checkpoints")
    verbs = parser.add_subparsers(dest="models_verb", metavar="<verb>", required=True)

    info = verbs.add_parser("info", help="load a local checkpoint folder and print what tether sees in it")
    info.add_argument("path", help="a local Hugging Face checkpoint folder (model + processor)")
    info.add_argument(
        "--trust-remote-code", action="store_true", help="allow code shipped with the checkpoint"
    )
    add_model_options(info)
    info.set_defaults(handler=_info)

    tiny = verbs.add_parser("tiny", help="write a tiny random-init checkpoint of a supported architecture")
    tiny.add_argument("--arch", default="llava", choices=["llava", "qwen2_vl"])
    tiny.add_argument("--out", required=True, help="folder to write the checkpoint to")
    tiny.add_argument("--words", default="", help="extra vocabulary, space-separated")
    tiny.add_argument("--image-size", type=int, default=32)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=_tiny)


def _info(args) -> int:
    from tether.models import load

    vlm = load(args.path, trust_remote_code=args.trust_remote_code, **model_options(args))
    for key, value in vlm.describe().items():
        print(f"{key:>14}: {value}")
    return 0


def _tiny(args) -> int:
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    config = TinyConfig(arch=args.arch, image_size=args.image_size, seed=args.seed)
    out = build_tiny_checkpoint(config, args.out, args.words.split())
    print(f"wrote a tiny {args.arch} checkpoint to {out}")
    return 0
