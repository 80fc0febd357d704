"""`tether train ppo`: no heavy imports at module level (this runs for every `tether --help`)."""


def configure(parser) -> None:
    parser.add_argument("--output-dir", help="overrides train.output_dir")
    parser.add_argument("--reward-model", help="overrides ppo.reward_model (a `tether train reward` folder)")


def run(args) -> int:
    from tether.core.config import load_config
    from tether.methods.ppo import PPOConfig, train_ppo

    config = load_config(PPOConfig, args.config, args.overrides)
    if args.output_dir:
        config.train.output_dir = args.output_dir
    if args.reward_model:
        config.ppo.reward_model = args.reward_model
    out = train_ppo(config)
    print(f"trained policy written to {out}")
    return 0
