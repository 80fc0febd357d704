"""`tether train vision`: no heavy imports at module level."""


def configure(parser) -> None:
    parser.add_argument("--output-dir", help="overrides train.output_dir")


def run(args) -> int:
    from tether.core.config import load_config
    from tether.methods.vision import VisionConfig, train_vision

    config = load_config(VisionConfig, args.config, args.overrides)
    if args.output_dir:
        config.train.output_dir = args.output_dir
    print(f"trained model written to {train_vision(config)}")
    return 0
