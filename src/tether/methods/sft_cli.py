"""`tether train sft`: no heavy imports at module level (this runs for every `tether --help`)."""


def configure(parser) -> None:
    parser.add_argument("--output-dir", help="overrides train.output_dir")
    parser.add_argument(
        "--noiseboost",
        type=float,
        metavar="SCALE",
        help="NoiseBoost: Gaussian noise of this scale on visual tokens while training",
    )


def run(args) -> int:
    from tether.core.config import load_config
    from tether.methods.sft import SFTConfig, train_sft

    config = load_config(SFTConfig, args.config, args.overrides)
    if args.output_dir:
        config.train.output_dir = args.output_dir
    if args.noiseboost is not None:
        config.noiseboost = {**(config.noiseboost or {}), "scale": args.noiseboost}
    out = train_sft(config)
    print(f"trained model written to {out}")
    return 0
