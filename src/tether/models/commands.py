"""`tether models ...`: build tiny checkpoints, inspect a local checkpoint."""

from tether.models.placement import add_model_load_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="build tiny checkpoints, inspect local checkpoints")
    verbs = parser.add_subparsers(dest="models_verb", metavar="<verb>", required=True)

    info = verbs.add_parser("info", help="load a local checkpoint folder and print what tether sees in it")
    info.add_argument("path", help="a local Hugging Face checkpoint folder (model + processor)")
    info.add_argument(
        "--trust-remote-code", action="store_true", help="allow code shipped with the checkpoint"
    )
    add_model_load_options(info)
    info.set_defaults(handler=_info)

    tiny = verbs.add_parser("tiny", help="write a tiny random-init checkpoint of a supported architecture")
    tiny.add_argument("--arch", default="llava", choices=["llava", "qwen2_vl"])
    tiny.add_argument("--out", required=True, help="folder to write the checkpoint to")
    tiny.add_argument(
        "--for-world",
        metavar="DIR",
        help="a world folder (`tether world build`): the vocabulary then holds every word of the world's "
        "texts, prompts and benchmark files (without it, a tiny tokenizer knows only a few generic words "
        "and reads the rest as <unk>)",
    )
    tiny.add_argument("--words", default="", help="extra vocabulary, space-separated")
    tiny.add_argument("--image-size", type=int, default=32)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=_tiny)


def _info(args) -> int:
    from tether.models import load
    from tether.models.placement import ModelLoadSettings, placement_record

    settings = ModelLoadSettings.from_args(args)
    vlm = load(args.path, trust_remote_code=args.trust_remote_code, **settings.load_options())
    for key, value in {**vlm.describe(), **placement_record(vlm.model)}.items():
        print(f"{key:>14}: {value}")
    return 0


def _tiny(args) -> int:
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    words = args.words.split()
    if args.for_world:
        from tether.world.show import world_vocabulary

        words = world_vocabulary(args.for_world) + words
    config = TinyConfig(arch=args.arch, image_size=args.image_size, seed=args.seed)
    out = build_tiny_checkpoint(config, args.out, words)
    coverage = f" (vocabulary: the words of the world {args.for_world})" if args.for_world else ""
    print(f"wrote a tiny {args.arch} checkpoint to {out}{coverage}")
    return 0
