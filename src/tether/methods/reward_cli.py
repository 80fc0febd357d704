"""`tether train reward`: no heavy imports at module level (this runs for every `tether --help`)."""


def configure(parser) -> None:
    parser.add_argument("--output-dir", help="overrides train.output_dir")
    parser.add_argument(
        "--no-facts",
        action="store_true",
        help="the vanilla reward model: leave facts (captions, options' ground truth) out of its prompt",
    )


def run(args) -> int:
    from tether.core.config import load_config
    from tether.methods.reward import RewardConfig, train_reward

    config = load_config(RewardConfig, args.config, args.overrides)
    if args.output_dir:
        config.train.output_dir = args.output_dir
    if args.no_facts:
        config.reward.use_facts = False
    out = train_reward(config)
    print(f"reward model written to {out}")
    return 0
