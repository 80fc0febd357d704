"""`tether models ...`: build tiny checkpoints, inspect a local checkpoint."""

from tether.models.placement import add_model_load_options

# the families `tether models tiny` builds (kept here, not imported, so `--help` needs no torch);
# tests/models/test_conformance.py checks it against the registered adapters
TINY_ARCHS = (
    "gemma3",
    "idefics3",
    "instructblip",
    "internvl",
    "llava",
    "llava_next",
    "llava_onevision",
    "llava_onevision1_5",
    "qwen2_5_vl",
    "qwen2_vl",
    "qwen3_vl",
    "smolvlm",
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="build tiny checkpoints, inspect local checkpoints")
    verbs = parser.add_subparsers(dest="models_verb", metavar="<verb>", required=True)

    info = verbs.add_parser(
        "info",
        help="load a local checkpoint folder and print what tether sees in it: family, visual tokens per "
        "image, projector module, template",
    )
    info.add_argument("path", help="a local Hugging Face checkpoint folder (model + processor)")
    info.add_argument(
        "--image-size",
        default="448x448",
        metavar="WxH",
        help="report the visual tokens of an image of this size (default 448x448)",
    )
    info.add_argument(
        "--trust-remote-code", action="store_true", help="allow code shipped with the checkpoint"
    )
    add_model_load_options(info)
    info.add_argument(
        "--adapter",
        default=None,
        help="the supported family whose layout a checkpoint of another model_type shares (with "
        "--trust-remote-code for checkpoints that ship their own code)",
    )
    info.set_defaults(handler=_info)

    tiny = verbs.add_parser("tiny", help="write a tiny random-init checkpoint of a supported architecture")
    tiny.add_argument("--arch", default="llava", choices=TINY_ARCHS)
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
    from tether.models.inspect import checkpoint_summary, parse_size
    from tether.models.placement import ModelLoadSettings, placement_record

    size = parse_size(args.image_size)
    settings = ModelLoadSettings.from_args(args)
    vlm = load(args.path, trust_remote_code=args.trust_remote_code, adapter=args.adapter, **settings.load_options())
    summary = {**vlm.describe(), **checkpoint_summary(vlm, size), **placement_record(vlm.model)}
    for key, value in summary.items():
        print(f"{key:>18}: {value}")
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
