"""Multimodal PPO against a (fact-augmented) reward model, as in LLaVA-RLHF.

Why an explicit loop and not the shared ``Trainer``: PPO alternates generation (rollouts) with several
optimisation passes over what was generated, and the data of a step does not exist before the step. That
fits a loop a reader can follow in one sitting (nanoGPT-style) better than Trainer callbacks. It is built on
``accelerate.Accelerator`` so DDP and mixed precision still apply, and checkpoints follow tether's rules:
trainable parameters and optimizer state as safetensors, the rest as JSON — no pickle.

One step:

1. sample ``rollout_batch_size`` prompts; the policy samples responses (noting which ended with EOS);
2. score them (no gradients): policy log-probs, reference log-probs (LoRA: the same model with adapters
   disabled — no copy), values, and the sequence score = reward model (+ shaping: missing-EOS penalty,
   length term, symbolic bonus for correct yes/no and multiple-choice answers);
3. per-token rewards = −kl_coef · KL estimate, the score added at the last token; GAE; whitened advantages;
4. ``ppo_epochs`` passes of minibatches: clipped policy loss + vf_coef · clipped value loss.

The value model is the reward model's checkpoint with its own LoRA adapter and a value head initialised
from the reward head (LLaVA-RLHF initialises the value model from the reward model). The frozen reward
model is that same network with the value adapter disabled, so policy + reference + value + reward cost two
base models in memory. With ``value_lora: null`` the value model trains fully and a separate frozen reward
model is loaded (three base models, plus a reference copy if the policy has no LoRA).

Dropout stays off throughout (models in eval mode), so the first minibatch's ratio is exactly 1.
Rollouts go through text: responses are decoded, then re-encoded with ``encode`` for scoring and training,
so the tokens optimised are the ones every later forward sees.
"""

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tether.core.errors import TetherError
from tether.core.images import open_image
from tether.core.io import SkipLog, append_jsonl
from tether.data.rlhf import PromptRecord, load_captions, load_prompt_records
from tether.methods.ppo_checkpoint import PPO_STATE, load_ppo_checkpoint, save_ppo_checkpoint
from tether.methods.ppo_loss import (
    AdaptiveKLController,
    entropy_from_logits,
    gae,
    kl_penalty,
    masked_mean,
    masked_whiten,
    policy_loss,
    shape_scores,
    shaped_rewards,
    symbolic_bonus,
    value_loss,
)
from tether.methods.ppo_rollout import Rollout, drop_eos_where_unfinished, sample_indices
from tether.methods.reward import RewardModel, load_reward_model
from tether.methods.run_record import RunTimer, start_output, training_run, write_run_record
from tether.methods.settings import LoraSettings, ModelSettings, TrainSettings, read_options
from tether.methods.trainer import (
    accelerator_for,
    checkpointing_in_eval_mode,
    enable_activation_checkpointing,
    gather_full_parameters,
    last_complete_checkpoint,
    load_records,
)
from tether.methods.tuning import configure_trainable, export_model, load_for_training, training_load_options
from tether.models import DecodingSettings, ModelBatch, VisionLanguageModel, load
from tether.models.placement import placement_record

logger = logging.getLogger(__name__)

# score_fn(records, responses) -> one score per response; replaces the reward model's score when given
ScoreFn = Callable[[Sequence[PromptRecord], Sequence[str]], Sequence[float]]


@dataclass
class PPOData:
    """The ``data:`` section of a PPO recipe.

    Parameters:
        train: prompt files (tether or LLaVA-RLHF format).
        images: the folder that image paths are relative to.
        captions: LLaVA-RLHF's image_to_caption.json: facts for the reward model.
        skip_invalid: skip (and count) bad records instead of stopping at the first.
        streaming: Hugging Face datasets: read their rows lazily off the files, never whole (docs/pairs.md).
    """

    train: list[str] = field(default_factory=list)
    images: str = "."
    captions: str | None = None
    skip_invalid: bool = False
    streaming: bool = False


@dataclass
class PPOSettings:
    """PPO's rollouts, objective and reward shaping (the ``ppo:`` section).

    Parameters:
        reward_model: the folder written by ``tether train reward``.
        value_lora: the value model's own LoRA on the reward model's checkpoint; None: it trains fully.
        rollout_batch_size: prompts per step.
        mini_batch_size: rollouts per optimisation minibatch.
        ppo_epochs: passes over a step's rollouts.
        max_new_tokens, temperature, top_k, top_p: sampling of the responses.
        kl_coef: the KL penalty's coefficient (LLaVA-RLHF's is fixed).
        kl_target: set to make the coefficient adaptive (Ziegler et al.), towards this KL.
        kl_horizon: the adaptive controller's horizon, in rollouts.
        kl_estimator: k1 | k1_clamped (LLaVA-RLHF) | k3.
        gamma, lam: GAE's discount and λ.
        clip_range: the policy ratio's clip.
        value_clip_range: the value prediction's clip around the rollout's value.
        vf_coef: weight of the value loss.
        whiten_rewards: whiten the per-token rewards before GAE.
        no_eos_penalty: added to the score of responses cut by max_new_tokens (e.g. -1.0); 0: off.
        no_eos_penalty_replaces: True: the score becomes no_eos_penalty instead of adding to it.
        length_bonus: + length_bonus · response tokens / max_new_tokens · the record's length_bonus; 0: off.
        correct_bonus: + correct_bonus · symbolic_bonus(response, record.answer); 0: off.
        log_rollouts: responses per step written to rollouts.jsonl.
    """

    reward_model: str = ""
    value_lora: LoraSettings | None = field(default_factory=LoraSettings)
    rollout_batch_size: int = 8
    mini_batch_size: int = 4
    ppo_epochs: int = 2
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    kl_coef: float = 0.1
    kl_target: float | None = None
    kl_horizon: int = 10000
    kl_estimator: str = "k1"
    gamma: float = 1.0
    lam: float = 0.95
    clip_range: float = 0.2
    value_clip_range: float = 0.2
    vf_coef: float = 0.1
    whiten_rewards: bool = False
    no_eos_penalty: float = 0.0
    no_eos_penalty_replaces: bool = False
    length_bonus: float = 0.0
    correct_bonus: float = 0.0
    log_rollouts: int = 2


@dataclass
class PPOConfig:
    """``tether train ppo``: multimodal PPO against a reward model (LLaVA-RLHF).

    Parameters:
        model: the policy (and, with its adapters off, the reference).
        data: the prompts (``PPOData``).
        train: ``TrainSettings``; PPO uses output_dir, max_steps (PPO steps), learning_rate, weight_decay,
            max_grad_norm, seed, save_steps, logging_steps, bf16, resume, gradient_checkpointing and ignores the rest.
        ppo: rollouts, objective and shaping (``PPOSettings``).
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    data: PPOData = field(default_factory=PPOData)
    train: TrainSettings = field(default_factory=TrainSettings)
    ppo: PPOSettings = field(default_factory=PPOSettings)


class PolicyAndValue(torch.nn.Module):
    """What trains, as one module (so DDP wraps both): the policy, the value model and its head."""

    def __init__(self, policy: VisionLanguageModel, value: VisionLanguageModel, value_head: torch.nn.Linear):
        super().__init__()
        self.policy, self.value = policy, value
        self.policy_model, self.value_model, self.value_head = policy.model, value.model, value_head

    def forward(self, policy_batch: dict, value_batch: dict) -> dict:
        batch = ModelBatch.from_dict(policy_batch)
        out = self.policy.response_logprobs(batch, return_logits=True)
        entropy = torch.zeros_like(out.per_token)
        entropy[out.mask] = entropy_from_logits(out.logits[:, :-1][out.mask]).to(entropy.dtype)
        hidden = self.value.last_hidden_states(ModelBatch.from_dict(value_batch))[:, :-1]
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1).float()
        return {"logprobs": out.per_token, "mask": out.mask, "entropy": entropy, "values": values}


class PPORunner:
    """Holds the models and settings of a PPO run; ``step(records)`` runs one rollout + update."""

    def __init__(self, config: PPOConfig, score_fn: ScoreFn | None = None):
        self.config, self.settings, self.score_fn = config, config.ppo, score_fn
        if not self.settings.reward_model:
            raise TetherError("ppo.reward_model is not set: give the folder written by `tether train reward`")
        torch.manual_seed(config.train.seed)  # LoRA and head initialisation: a rerun builds the same models
        # the models are loaded before the Accelerator exists: under ZeRO-3 its DeepSpeed config would make
        # transformers build them inside deepspeed.zero.Init, whose wrapped __init__ skips the kernels
        # package's per-layer setup (AttributeError: '_kernel_funcs' at the first forward)
        self.policy = load_for_training(config.model)
        self.reference = None
        if config.model.lora is None:  # no adapters to switch off: the reference is a frozen copy
            self.reference = load(config.model.path, **training_load_options(config.model))
        reward = load_reward_model(self.settings.reward_model, **training_load_options(config.model))
        value_vlm = reward.vlm
        separate_reward = (
            None
            if self.settings.value_lora is not None
            else load_reward_model(self.settings.reward_model, **training_load_options(config.model))
        )
        self.accelerator = accelerator_for(config.model, config.train)
        device = self.accelerator.device
        if self.reference is not None:
            self.reference.model.requires_grad_(False).eval().to(device)
        frozen_llm = self.settings.value_lora is not None
        configure_trainable(
            value_vlm,
            ModelSettings(
                path=self.settings.reward_model,
                freeze_projector=True,
                freeze_llm=frozen_llm,
                lora=self.settings.value_lora,
            ),
        )
        value_head = copy.deepcopy(reward.head).requires_grad_(True)
        if frozen_llm:  # the reward model is the value network with its adapter disabled
            self.reward_model = RewardModel(value_vlm, reward.head.requires_grad_(False), reward.use_facts)
        else:
            self.reward_model = separate_reward.requires_grad_(False).to(device)
        if self.policy.tokenizer.get_vocab() != value_vlm.tokenizer.get_vocab():
            raise TetherError(
                "the reward model's tokenizer differs from the policy's; train it from the same model"
            )

        module = PolicyAndValue(self.policy, value_vlm, value_head).eval()
        if config.train.gradient_checkpointing:
            enable_activation_checkpointing(module)
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=config.train.learning_rate, weight_decay=config.train.weight_decay
        )
        plugin = self.accelerator.state.deepspeed_plugin
        if plugin is not None:  # no dataloader for accelerate to read it from: PPO's minibatch
            plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = self.settings.mini_batch_size
        # ZeRO-3 gathers each layer's shards as it runs: every rank must take as many generation steps
        zero3 = plugin is not None and plugin.zero_stage == 3 and self.accelerator.num_processes > 1
        self.generate_kwargs = {"synced_gpus": True} if zero3 else {}
        self.module, self.optimizer = self.accelerator.prepare(module, optimizer)
        self.reward_model.head.to(device)  # frozen: not in the prepared module, so moved by hand
        settings = self.settings
        self.kl = AdaptiveKLController(settings.kl_coef, settings.kl_target, settings.kl_horizon)
        self.decoding = DecodingSettings(
            max_new_tokens=self.settings.max_new_tokens,
            do_sample=True,
            temperature=self.settings.temperature,
            top_k=self.settings.top_k,
            top_p=self.settings.top_p,
        )

    @property
    def value_vlm(self) -> VisionLanguageModel:
        return self.accelerator.unwrap_model(self.module).value

    # ---- scoring -------------------------------------------------------------------------------------

    def _batches(self, images, records, responses, finished) -> tuple[dict, dict]:
        prompts = [r.prompt for r in records]
        policy_batch, value_batch = (
            drop_eos_where_unfinished(vlm, vlm.encode(images, prompts, responses), finished)
            for vlm in (self.policy, self.value_vlm)
        )
        if not torch.equal(policy_batch.response_mask, value_batch.response_mask):
            raise TetherError(
                "policy and value model lay out the same sequences differently (chat template or image "
                "processor differ); train the reward model from the policy's checkpoint"
            )
        return policy_batch.as_dict(), value_batch.as_dict()

    @torch.no_grad()
    def _scores(self, images, records, responses) -> torch.Tensor:
        if self.score_fn is not None:
            return torch.tensor([float(s) for s in self.score_fn(records, responses)])
        rm = self.reward_model
        args = (images, [r.prompt for r in records], responses, [r.facts for r in records])
        options = [r.options for r in records]
        if rm.vlm is self.value_vlm:
            with rm.vlm.model.disable_adapter():
                return rm.score(*args, options).cpu()
        return rm.score(*args, options).cpu()

    @torch.no_grad()
    def _reference_logprobs(self, policy_batch: dict) -> torch.Tensor:
        batch = ModelBatch.from_dict(policy_batch)
        if self.reference is not None:
            return self.reference.response_logprobs(batch).per_token
        with self.policy.model.disable_adapter():
            return self.policy.response_logprobs(batch).per_token

    # ---- one step ------------------------------------------------------------------------------------

    @torch.no_grad()
    def rollout(self, records: Sequence[PromptRecord], images: list | None) -> Rollout:
        s = self.settings
        prompts = [r.prompt for r in records]
        responses, finished = self.policy.generate_with_eos(
            images, prompts, self.decoding, **self.generate_kwargs
        )
        policy_batch, value_batch = self._batches(images, records, responses, finished)
        out = self.module(policy_batch, value_batch)
        mask, logprobs, values = out["mask"], out["logprobs"], out["values"]
        ref_logprobs = self._reference_logprobs(policy_batch).to(logprobs.device)

        reward = self._scores(images, records, responses).to(logprobs.device)
        unfinished = ~torch.tensor(finished, device=reward.device)
        lengths = mask.sum(dim=1).float()
        multipliers = torch.tensor([r.length_bonus for r in records], device=reward.device)
        bonus = torch.tensor(
            [symbolic_bonus(t, r.answer) for t, r in zip(responses, records)], device=reward.device
        )
        score = shape_scores(reward, unfinished, lengths, multipliers, bonus, s)

        kl = kl_penalty(logprobs, ref_logprobs, s.kl_estimator) * mask
        rewards = shaped_rewards(score, kl, mask, self.kl.value)
        if s.whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, values, mask, s.gamma, s.lam)
        advantages = masked_whiten(advantages, mask)
        metrics = {
            "reward": reward.mean().item(),
            "score": score.mean().item(),
            "kl": kl.sum(dim=1).mean().item(),
            "kl_coef": self.kl.value,
            "entropy": masked_mean(out["entropy"], mask).item(),
            "response_length": lengths.mean().item(),
            "no_eos_fraction": unfinished.float().mean().item(),
            "symbolic_bonus": bonus.mean().item(),
            "value": masked_mean(values, mask).item(),
        }
        return Rollout(
            list(records), images, responses, finished, mask, logprobs, values, advantages, returns, metrics
        )

    def update(self, rollout: Rollout, generator: torch.Generator) -> dict:

        s, n = self.settings, len(rollout.records)
        sums: dict[str, float] = {}
        count = 0
        for _ in range(s.ppo_epochs):
            order = torch.randperm(n, generator=generator).tolist()
            for start in range(0, n, s.mini_batch_size):
                rows = order[start : start + s.mini_batch_size]
                images = [rollout.images[i] for i in rows] if rollout.images is not None else None
                policy_batch, value_batch = self._batches(
                    images,
                    [rollout.records[i] for i in rows],
                    [rollout.responses[i] for i in rows],
                    [rollout.finished[i] for i in rows],
                )
                with checkpointing_in_eval_mode(self.module):
                    out = self.module(policy_batch, value_batch)
                width = out["mask"].shape[1]  # right padding: a sub-batch is a left slice of the full width
                mask = rollout.mask[rows, :width]
                if not torch.equal(out["mask"], mask):
                    raise RuntimeError("re-encoded minibatch does not match its rollout (tokenization drift)")
                pg_loss, pg_metrics = policy_loss(
                    out["logprobs"],
                    rollout.logprobs[rows, :width],
                    rollout.advantages[rows, :width],
                    mask,
                    s.clip_range,
                )
                vf_loss, vf_metrics = value_loss(
                    out["values"],
                    rollout.values[rows, :width],
                    rollout.returns[rows, :width],
                    mask,
                    s.value_clip_range,
                )
                loss = pg_loss + s.vf_coef * vf_loss
                self.accelerator.backward(loss)
                if self.config.train.max_grad_norm:
                    self.accelerator.clip_grad_norm_(
                        self.module.parameters(), self.config.train.max_grad_norm
                    )
                self.optimizer.step()
                self.optimizer.zero_grad()
                step_metrics = {"policy_loss": pg_loss.item(), "value_loss": vf_loss.item()}
                step_metrics.update({k: v.item() for k, v in {**pg_metrics, **vf_metrics}.items()})
                for k, v in step_metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
        return {k: v / max(count, 1) for k, v in sums.items()}

    def step(self, step: int, records: Sequence[PromptRecord]) -> tuple[dict, Rollout]:
        """Rollout then update; every random draw is seeded from (seed, step, rank), so resume is exact."""
        seed = self.config.train.seed + 1000 * step + self.accelerator.process_index
        torch.manual_seed(seed)
        images = None
        if all(r.image is not None for r in records):
            images = [open_image(self.config.data.images, r.image) for r in records]
        elif any(r.image is not None for r in records):
            raise TetherError("a PPO batch mixes prompts with and without images")
        rollout = self.rollout(records, images)
        metrics = {**rollout.metrics, **self.update(rollout, torch.Generator().manual_seed(seed))}
        metrics = self._mean_over_processes(metrics)
        self.kl.update(metrics["kl"], len(records) * self.accelerator.num_processes)
        return metrics, rollout

    def _mean_over_processes(self, metrics: dict) -> dict:
        """Average each metric over the data-parallel processes (all of them call this, every step)."""
        if self.accelerator.num_processes == 1:
            return metrics
        names = sorted(metrics)
        values = torch.tensor([float(metrics[k]) for k in names], device=self.accelerator.device)
        return dict(zip(names, self.accelerator.reduce(values, reduction="mean").tolist()))


@training_run("train ppo")
def train_ppo(config: PPOConfig, score_fn: ScoreFn | None = None) -> Path:
    """Run PPO from a config; returns the folder of the exported (merged, loadable) policy.

    ``score_fn(records, responses)`` replaces the reward model's scores (rule-based rewards, tests); the
    reward model folder is still needed to initialise the value model.
    """

    timer = RunTimer()
    if not config.data.train:
        raise TetherError("data.train lists no prompt files")
    if config.train.max_steps <= 0:
        raise TetherError("train.max_steps must be the number of PPO steps (> 0)")
    captions = load_captions(config.data.captions) if config.data.captions else None
    skips = SkipLog()
    records = load_records(
        config.data.train, load_prompt_records, captions=captions, **read_options(config.data, skips)
    )
    skips.require(records, "no PPO prompts to train on")
    runner = PPORunner(config, score_fn)
    out_dir = Path(config.train.output_dir)
    start_output(out_dir)
    start, history = 0, []
    last = last_complete_checkpoint(out_dir, PPO_STATE) if config.train.resume and out_dir.is_dir() else None
    if last:
        module = runner.accelerator.unwrap_model(runner.module)
        start, runner.kl.value, history = load_ppo_checkpoint(Path(last), module, runner.optimizer)
        logger.info("resuming PPO from %s (step %d)", last, start)
    main = runner.accelerator.is_main_process
    bar = tqdm(
        total=config.train.max_steps,
        initial=start,
        desc="ppo",
        unit="step",
        disable=not (main and config.train.progress_bar),
    )
    for step in range(start + 1, config.train.max_steps + 1):
        began = time.perf_counter()
        seed = config.train.seed + 1000 * step + runner.accelerator.process_index
        batch = [records[i] for i in sample_indices(len(records), config.ppo.rollout_batch_size, seed)]
        metrics, rollout = runner.step(step, batch)
        metrics = {"step": step, **metrics, "seconds": time.perf_counter() - began}
        history.append(metrics)
        if main:
            append_jsonl(out_dir / "log.jsonl", metrics)
            for record, response in list(zip(rollout.records, rollout.responses))[: config.ppo.log_rollouts]:
                append_jsonl(
                    out_dir / "rollouts.jsonl", {"step": step, "prompt": record.prompt, "response": response}
                )
            if step % max(config.train.logging_steps, 1) == 0:
                logger.info(
                    "step %d: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "step"), step
                )
        if config.train.save_steps and step % config.train.save_steps == 0:  # every rank (ZeRO-3 gathers)
            module = runner.accelerator.unwrap_model(runner.module)
            folder = out_dir / f"checkpoint-{step}"
            save_ppo_checkpoint(folder, runner.accelerator, module, runner.optimizer, runner.kl.value, step, history)
        bar.set_postfix(reward=f"{metrics.get('reward', float('nan')):.3g}", refresh=False)
        bar.update(1)
        runner.accelerator.wait_for_everyone()
    bar.close()
    gather_full_parameters(runner.accelerator.unwrap_model(runner.module))  # ZeRO-3: every rank joins
    out = out_dir / "model"
    if main:
        export_model(runner.policy, out)
        write_run_record(
            out_dir,
            command="train ppo",
            config=config,
            timer=timer,
            extra={
                "records": len(records),
                "skipped": skips.skipped,
                "world_size": runner.accelerator.num_processes,
                "history": history,
                "model_placement": placement_record(runner.policy.base_model),
            },
        )
    skips.report()
    return out
