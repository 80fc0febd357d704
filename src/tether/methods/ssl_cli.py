"""`tether train ssl`: no heavy imports at module level (this runs for every `tether --help`)."""


def configure(parser) -> None:
    parser.add_argument("--output-dir", help="overrides train.output_dir")
    parser.add_argument("--teacher", help="overrides pseudo.teacher (trained checkpoint folder)")
    parser.add_argument(
        "--noiseboost",
        type=float,
        metavar="SCALE",
        help="NoiseBoost scale on the student's visual tokens (default from the recipe: 0.5; 0 turns it off)",
    )


def run(args) -> int:
    from tether.core.config import load_config
    from tether.methods.ssl import SSLConfig, train_ssl

    config = load_config(SSLConfig, args.config, args.overrides)
    if args.output_dir:
        config.train.output_dir = args.output_dir
    if args.teacher:
        config.pseudo.teacher = args.teacher
    if args.noiseboost is not None:
        from tether.methods.noise import NoiseSettings

        config.noiseboost = config.noiseboost or NoiseSettings()
        config.noiseboost.scale = args.noiseboost
    out = train_ssl(config)
    print(f"trained student written to {out}")
    return 0
