"""`tether train dpo`: no heavy imports at module level (this runs for every `tether --help`)."""


def configure(parser) -> None:
    parser.add_argument("--output-dir", help="overrides train.output_dir")
    parser.add_argument("--beta", type=float, help="overrides dpo.beta (default 0.1)")
    parser.add_argument(
        "--noiseboost",
        type=float,
        metavar="SCALE",
        help="NoiseBoost: Gaussian noise of this scale on the visual tokens of the chosen branch while training",
    )


def run(args) -> int:
    from tether.core.config import load_config
    from tether.methods.dpo import DPOConfig, train_dpo

    config = load_config(DPOConfig, args.config, args.overrides)
    if args.output_dir:
        config.train.output_dir = args.output_dir
    if args.beta is not None:
        config.dpo.beta = args.beta
    if args.noiseboost is not None:
        config.noiseboost = {**(config.noiseboost or {}), "scale": args.noiseboost}
    out = train_dpo(config)
    print(f"trained model written to {out}")
    return 0
