"""Fact-RLHF's reward model: the VLM plus a scalar head, read at the last token of an evaluation prompt.

The evaluation prompt is one user turn holding the question, the facts (reference captions, scene-graph
sentences, ground-truth options — "factual augmentation", LLaVA-RLHF §2.3), the response to judge and an
evaluation question; the reward is ``head(h_last)`` where ``h_last`` is the last-layer hidden state at the
final prompt token (where the assistant would start to answer). Without facts (``use_facts: false``) it is
the vanilla reward model of the ablation. Training: pairwise logistic loss on r(chosen) − r(rejected) plus
a small centring term (``reward_loss.py``), through the shared trainer (LoRA, checkpoints, resume).

A trained reward model is a folder: the VLM checkpoint (LoRA merged), ``reward_head.safetensors`` and
``reward_model.json``; ``load_reward_model(path)`` opens it.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tether.core.errors import TetherError
from tether.core.images import open_image
from tether.core.io import SkipLog, read_json, write_json
from tether.data.rlhf import PreferenceRecord, load_captions, load_preference_records
from tether.methods.reward_loss import pairwise_reward_loss
from tether.methods.run_record import RunTimer, training_run
from tether.methods.settings import ModelSettings, TrainSettings, read_options
from tether.methods.trainer import MethodRun, load_records, loss_history, run_method
from tether.methods.tuning import export_model
from tether.models import ModelBatch, VisionLanguageModel, load

REWARD_HEAD_WEIGHTS = "reward_head.safetensors"
REWARD_MODEL_INFO = "reward_model.json"
FACTS_HEADER = "Facts about the image:"
EVALUATION_QUESTION = "Is the response accurate, helpful and supported by the image and the facts?"


def reward_prompt(
    question: str, response: str, facts: Sequence[str] = (), options: Sequence[str] = ()
) -> str:
    """The text the reward model reads (the image goes where the chat template puts it)."""
    parts = [f"Question: {question}"]
    if options:
        parts.append("Options: " + " ".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(options)))
    if facts:
        parts.append(FACTS_HEADER + "\n" + "\n".join(f"- {f}" for f in facts))
    parts.append(f"Response: {response}")
    parts.append(EVALUATION_QUESTION)
    return "\n".join(parts)


class RewardModel(torch.nn.Module):
    """VLM + ``Linear(hidden, 1)``; ``forward(batch)`` gives one reward per row of a left-padded batch."""

    def __init__(self, vlm: VisionLanguageModel, head: torch.nn.Linear | None = None, use_facts: bool = True):
        super().__init__()
        self.vlm = vlm
        self.model = vlm.model
        self.head = head if head is not None else torch.nn.Linear(vlm.hidden_size, 1)
        self.head.to(vlm.device)
        self.use_facts = use_facts

    def encode(
        self,
        images: Sequence | None,
        questions: Sequence[str],
        responses: Sequence[str],
        facts: Sequence[Sequence[str]] | None = None,
        options: Sequence[Sequence[str]] | None = None,
    ) -> ModelBatch:
        """Evaluation prompts as one left-padded batch, so every row's read-out position is the last."""
        n = len(questions)
        facts = facts if facts is not None and self.use_facts else [()] * n
        options = options if options is not None else [()] * n
        prompts = [reward_prompt(q, r, f, o) for q, r, f, o in zip(questions, responses, facts, options)]
        return self.vlm.encode(images, prompts, padding_side="left")

    def forward(self, batch: ModelBatch) -> torch.Tensor:
        hidden = self.vlm.last_hidden_states(batch)[:, -1]
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()

    @torch.no_grad()
    def score(self, images, questions, responses, facts=None, options=None) -> torch.Tensor:
        """Rewards of (image, question, response) triples, ``[n]``."""
        return self(self.encode(images, questions, responses, facts, options))

    def save(self, out_dir) -> Path:
        """Write a loadable reward-model folder (LoRA merged into the VLM weights)."""

        out_dir = Path(out_dir)
        export_model(self.vlm, out_dir)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()},
            out_dir / REWARD_HEAD_WEIGHTS,
        )
        info = {
            "format": "tether-reward-model-1",
            "hidden_size": self.vlm.hidden_size,
            "use_facts": self.use_facts,
            "facts_header": FACTS_HEADER,
            "evaluation_question": EVALUATION_QUESTION,
        }
        write_json(out_dir / REWARD_MODEL_INFO, info)
        return out_dir


def load_reward_model(path, *, dtype: str = "float32", **load_options) -> RewardModel:
    """Open a folder written by ``RewardModel.save`` (``tether train reward``), in eval mode."""

    path = Path(path)
    if not (path / REWARD_HEAD_WEIGHTS).is_file() or not (path / REWARD_MODEL_INFO).is_file():
        raise TetherError(
            f"{path}: not a reward model folder (needs {REWARD_HEAD_WEIGHTS}, {REWARD_MODEL_INFO})"
        )
    info = read_json(path / REWARD_MODEL_INFO)
    vlm = load(path, dtype=dtype, **load_options)  # device, attn_implementation
    head = torch.nn.Linear(vlm.hidden_size, 1)
    head.load_state_dict(load_file(str(path / REWARD_HEAD_WEIGHTS)))
    model = RewardModel(
        vlm, head, use_facts=info["use_facts"]
    )  # the head stays float32 (it may train as a value head)
    return model.eval()


# ---- training -------------------------------------------------------------------------------------------


@dataclass
class RewardData:
    """The ``data:`` section of a reward-model recipe.

    Parameters:
        train: preference files (tether or LLaVA-RLHF format).
        eval: held-out pairs: their accuracy is reported in run.json.
        images: the folder that image paths are relative to.
        captions: LLaVA-RLHF's image_to_caption.json: facts for every image.
        skip_invalid: skip (and count) bad records instead of stopping at the first.
        streaming: Hugging Face datasets: read their rows lazily off the files, never whole (docs/pairs.md).
    """

    train: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)
    images: str = "."
    captions: str | None = None
    skip_invalid: bool = False
    streaming: bool = False


@dataclass
class RewardSettings:
    """The reward model's objective (the ``reward:`` section).

    Parameters:
        use_facts: False: the vanilla reward model (facts are left out of its prompt).
        center_coef: weight of mean((r_chosen + r_rejected)²).
        eval_batch_size: pairs per forward when scoring ``data.eval``.
    """

    use_facts: bool = True
    center_coef: float = 0.01
    eval_batch_size: int = 8


@dataclass
class RewardConfig:
    """``tether train reward``: Fact-RLHF's reward model (VLM + scalar head, pairwise loss).

    Parameters:
        model: the VLM under the head (``ModelSettings``).
        data: the pairs (``RewardData``).
        train: ``TrainSettings``.
        reward: the objective (``RewardSettings``).
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    data: RewardData = field(default_factory=RewardData)
    train: TrainSettings = field(default_factory=TrainSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)


class PreferenceCollator:
    """Pairs → ``{"pairs": batch}``: the chosen evaluation prompts, then the rejected ones, in one batch."""

    def __init__(self, reward_model: RewardModel, images_root):
        self.reward_model = reward_model
        self.images_root = images_root

    def __call__(self, records: Sequence[PreferenceRecord]) -> dict:
        return {"pairs": encode_pairs(self.reward_model, records, self.images_root).as_dict()}


def encode_pairs(reward_model: RewardModel, records: Sequence[PreferenceRecord], images_root) -> ModelBatch:
    has_image = [r.image is not None for r in records]
    if any(has_image) and not all(has_image):
        raise TetherError("a batch mixes pairs with and without images; give every pair an image")
    images = [open_image(images_root, r.image) for r in records] if all(has_image) else None
    return reward_model.encode(
        images * 2 if images else None,
        [r.prompt for r in records] * 2,
        [r.chosen for r in records] + [r.rejected for r in records],
        [r.facts for r in records] * 2,
        [r.options for r in records] * 2,
    )


class PairwiseRewardModule(torch.nn.Module):
    """The trainer's method module: reward model + pairwise loss."""

    def __init__(self, reward_model: RewardModel, center_coef: float = 0.01):
        super().__init__()
        self.reward_model = reward_model
        self.center_coef = center_coef

    def forward(self, pairs: dict) -> dict:
        rewards = self.reward_model(ModelBatch.from_dict(pairs))
        chosen, rejected = rewards.chunk(2)
        loss, metrics = pairwise_reward_loss(chosen, rejected, self.center_coef)
        return {"loss": loss, "metrics": metrics}


@torch.no_grad()
def evaluate_reward_model(
    reward_model: RewardModel, records: Sequence[PreferenceRecord], images_root, batch_size: int = 8
) -> dict:
    """Pairwise accuracy (r_chosen > r_rejected) and mean margin on held-out pairs."""
    was_training = reward_model.training
    reward_model.eval()
    margins = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        chosen, rejected = reward_model(encode_pairs(reward_model, chunk, images_root)).chunk(2)
        margins.append(chosen - rejected)
    reward_model.train(was_training)
    margin = torch.cat(margins) if margins else torch.zeros(0)
    return {
        "pairs": len(records),
        "accuracy": (margin > 0).float().mean().item() if len(records) else None,
        "mean_margin": margin.mean().item() if len(records) else None,
    }


@training_run("train reward", output="reward_model")
def train_reward(config: RewardConfig) -> Path:
    """Train a reward model from a config; returns the reward-model folder (``<output_dir>/reward_model``)."""
    timer, skips = RunTimer(), SkipLog()
    if not config.data.train:
        raise TetherError("data.train lists no preference files")
    captions = load_captions(config.data.captions) if config.data.captions else None
    options = {"captions": captions, **read_options(config.data, skips)}
    records = load_records(config.data.train, load_preference_records, **options)
    held_out = load_records(config.data.eval, load_preference_records, **options)
    skips.require(records, "no preference pairs to train on")

    def build(vlm: VisionLanguageModel, perturbation) -> MethodRun:
        reward_model = RewardModel(vlm, use_facts=config.reward.use_facts)
        module = PairwiseRewardModule(reward_model, config.reward.center_coef)

        def save(trainer, out: Path) -> dict:
            evaluation = evaluate_reward_model(
                reward_model, held_out, config.data.images, config.reward.eval_batch_size
            )
            reward_model.save(out)
            history = loss_history(trainer)
            return {
                "final_train_accuracy": history[-1].get("accuracy") if history else None,
                "eval": evaluation,
            }

        return MethodRun(module, PreferenceCollator(reward_model, config.data.images), records, save=save)

    return run_method(
        config,
        "train reward",
        build,
        timer=timer,
        skips=skips,
        record={"records": len(records)},
        output="reward_model",
    )
