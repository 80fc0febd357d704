"""`tether train hacl`: no heavy imports at module level (this runs for every `tether --help`)."""


def configure(parser) -> None:
    parser.add_argument("--output-dir", help="overrides train.output_dir")
    parser.add_argument(
        "--negatives", action="append", help="negatives JSONL (repeatable; adds to data.negatives)"
    )
    parser.add_argument("--weight", type=float, help="w in L_G + w*(L_v + L_t)/2 (overrides hacl.weight)")


def run(args) -> int:
    from tether.core.config import load_config
    from tether.methods.hacl import HACLConfig, train_hacl

    config = load_config(HACLConfig, args.config, args.overrides)
    if args.output_dir:
        config.train.output_dir = args.output_dir
    if args.negatives:
        config.data.negatives = [*config.data.negatives, *args.negatives]
    if args.weight is not None:
        config.hacl.weight = args.weight
    out = train_hacl(config)
    print(f"trained model written to {out}")
    return 0
