"""OPERA: over-trust penalty and retrospection-allocation (Huang et al., CVPR 2024, arXiv 2311.17911;
github.com/shikiw/OPERA, ``opera_beam_search`` in its patched ``transformers-4.29.2/.../generation/utils.py``).

Beam search in which every beam's next token is chosen among its ``num_attn_candidates`` most likely tokens,
each penalised by how its attention map looks once it is appended. Per step, for each beam and candidate:

1. the candidate is fed to the model (one extra forward per candidate, the cache then cropped back) and the
   last layer's attention of its query is read: the maximum over heads, normalised to sum 1 over all keys;
2. the **local window** ``W`` is the attention among the response tokens so far plus the candidate (rows:
   queries, columns: keys, lower-triangular), each row as read when its token was fed;
3. the **over-trust score** of column ``j`` is ``1e-7 * prod_{i >= j} (scale_factor * W[i, j])``: large when
   every later token keeps attending to token ``j`` (a "summary token"); its maximum over ``j`` is the
   penalty, and its arg-max the candidate's rollback location;
4. while the window has at most 10 tokens, the penalty is instead minus the candidate's attention to the
   image tokens (a reward for looking at the image);
5. the candidate's score is its logit minus ``penalty_weights * penalty``; every other token gets -999; the
   log-softmax of that goes into the beam search.

**Retrospection-allocation.** Each step records, per beam, the most common rollback location among its
candidates. When, for every beam, more than ``threshold`` of the recorded locations equal the step's
location ``c`` (the most common over beams) and ``c >= 10``, decoding rolls back to the state just after
token ``c`` (position ``c + 1``; at most ``num_attn_candidates`` times per position, then one position earlier)
and chooses that position's token again over the whole vocabulary (the logits shifted so that their minimum
is -999), with the tokens chosen there before set to -999.

Defaults are the README's and ``opera_beam_search``'s: 5 beams, ``scale_factor = 50``, ``threshold = 15``,
``num_attn_candidates = 5``, ``penalty_weights = 1``, a history of ``window_size = 512`` steps; the 10-token
image-attention phase, the 1e-7 factor and the -999 fill are constants of the repo's code. Deviations: the
repo stores the over-trust scores in float16 (where they overflow to inf past 65504) and we keep float32;
the repo takes the rollback location's mode over the beams of the whole batch, we decode one prompt at a
time (its beams and candidates share each forward) so that a rollback rewinds that prompt alone, and
batched output equals one-by-one output.

The beam search itself (``BeamSearch``) follows transformers' ``_beam_search`` step for step (top
``2 * num_beams`` continuations, finished hypotheses scored ``sum log p / length ** length_penalty``, its
early-stop heuristic), so that with no penalty, all candidates and no rollback it gives exactly what
``vlm.generate(..., DecodingSettings(num_beams=...))`` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from tether.decoding.attention import AttentionHooks, attention_hooks, decoder_layers
from tether.decoding.pai import text_model
from tether.decoding.registry import Strategy
from tether.models.adapter import ModelBatch
from tether.models.decoding import DecodingSettings

IMAGE_ATTENTION_STEPS = 10  # while the window has this many tokens or fewer, reward image attention instead
MIN_ROLLBACK_LOCATION = 10  # no rollback to a summary token among the first response tokens
SCORE_FACTOR = 1e-7  # the repo's factor on the column products
BLOCKED = -999.0  # the repo's logit for tokens out of the candidates (or rejected on a rollback)


@dataclass
class OperaSettings:
    num_beams: int = 5
    scale_factor: float = 50.0
    threshold: int = 15
    num_attn_candidates: int = 5
    penalty_weights: float = 1.0
    window_size: int = 512  # steps kept in the history that a rollback can return to


def over_trust_scores(window: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """Column scores ``1e-7 * prod_{i >= j} scale_factor * window[..., i, j]`` ``[..., L]`` of a lower-triangular
    local window ``[..., L, L]`` (rows: queries, columns: keys)."""
    scaled = scale_factor * window.float()
    length = window.shape[-1]
    below = torch.ones(length, length, dtype=torch.bool, device=window.device).tril()  # i >= j
    return SCORE_FACTOR * torch.where(below, scaled, torch.ones_like(scaled)).prod(dim=-2)


def candidate_penalties(
    window: torch.Tensor, image_attention: torch.Tensor, scale_factor: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penalty ``[beams, candidates]`` and rollback location per candidate, from each candidate's local window
    ``[beams, candidates, L, L]`` and its attention to the image tokens ``[beams, candidates]``."""
    scores = over_trust_scores(window, scale_factor)
    rollback_scores, locations = scores.max(dim=-1)
    penalty = -image_attention if window.shape[-1] <= IMAGE_ATTENTION_STEPS else rollback_scores
    return penalty, locations


@dataclass
class BeamSearch:
    """transformers' beam-search state for one prompt: running beams and the finished hypotheses."""

    running: torch.Tensor  # [beams, t] generated tokens
    running_scores: torch.Tensor  # [beams] summed log-probs
    finished: torch.Tensor  # [beams, max_new] finished hypotheses, padded
    finished_scores: torch.Tensor  # [beams] length-normalised scores (-1e9: empty slot)
    finished_lengths: torch.Tensor  # [beams]
    is_finished: torch.Tensor  # [beams] bool
    improvable: bool = True  # transformers' "early stop heuristic unsatisfied"
    done: bool = False

    @classmethod
    def start(cls, num_beams: int, max_new_tokens: int, pad_token_id: int) -> BeamSearch:
        scores = torch.zeros(num_beams)
        scores[1:] = -1e9  # only the first beam expands at the first step
        return cls(
            running=torch.zeros((num_beams, 0), dtype=torch.long),
            running_scores=scores,
            finished=torch.full((num_beams, max_new_tokens), pad_token_id, dtype=torch.long),
            finished_scores=torch.full((num_beams,), -1e9),
            finished_lengths=torch.zeros(num_beams, dtype=torch.long),
            is_finished=torch.zeros(num_beams, dtype=torch.bool),
        )

    def step(self, log_probs: torch.Tensor, stop_ids: torch.Tensor, max_new_tokens: int, config) -> tuple:
        """Advance by one token given the step's log-probs ``[beams, vocab]``; returns the new state and, per new
        running beam, the beam it continues (for the cache)."""
        num_beams, vocab = log_probs.shape
        t = self.running.shape[1]
        keep = max(2, 1 + len(stop_ids)) * num_beams
        top_scores, top_index = torch.topk((log_probs + self.running_scores[:, None]).view(-1), keep)
        source, tokens = top_index // vocab, top_index % vocab
        sequences = torch.cat([self.running[source], tokens[:, None]], dim=1)
        hits = torch.isin(tokens, stop_ids) | (t + 1 >= max_new_tokens)
        # the best num_beams continuations that go on
        running_scores = top_scores + hits.float() * -1.0e9
        chosen = torch.topk(running_scores, num_beams).indices
        # the continuations among the best num_beams that end enter the finished hypotheses
        just_finished = hits & (torch.arange(keep) < num_beams)
        scores = top_scores / ((t + 1) ** config.length_penalty)
        if bool(self.is_finished.all()) and config.early_stopping is True:
            scores = scores - 1.0e9
        if not self.improvable:
            scores = scores - 1.0e9
        scores = scores + (~just_finished).float() * -1.0e9
        padded = torch.full((keep, self.finished.shape[1]), int(self.finished[0, -1]), dtype=torch.long)
        padded[:, : t + 1] = sequences
        merged = torch.topk(torch.cat([self.finished_scores, scores]), num_beams).indices
        state = BeamSearch(
            running=sequences[chosen],
            running_scores=running_scores[chosen],
            finished=torch.cat([self.finished, padded])[merged],
            finished_scores=torch.cat([self.finished_scores, scores])[merged],
            finished_lengths=torch.cat([self.finished_lengths, torch.full((keep,), t + 1)])[merged],
            is_finished=torch.cat([self.is_finished, just_finished])[merged],
        )
        # transformers' early-stop heuristic, at the new length
        lp = config.length_penalty
        best_length = max_new_tokens if config.early_stopping == "never" and lp > 0.0 else t + 1
        best_possible = state.running_scores[0] / (best_length**lp)
        worst = torch.where(state.is_finished, state.finished_scores.min(), torch.tensor(-1.0e9))
        state.improvable = self.improvable and bool((best_possible > worst).any())
        open_beams = not (bool(state.is_finished.all()) and config.early_stopping is True)
        state.done = not (state.improvable and open_beams and not bool(hits.all()))
        return state, source[chosen]

    def best(self) -> torch.Tensor:
        return self.finished[0, : int(self.finished_lengths[0])]


@dataclass
class _BeamConfig:
    length_penalty: float = 1.0  # transformers' defaults where the checkpoint sets none
    early_stopping: bool | str = False

    @classmethod
    def of(cls, generation_config) -> _BeamConfig:
        values = {k: getattr(generation_config, k, None) for k in ("length_penalty", "early_stopping")}
        return cls(**{k: v for k, v in values.items() if v is not None})


@dataclass
class _Snapshot:
    """What a rollback restores: the step's beam search and local attention, and the choice made from it."""

    beams: BeamSearch
    attention: torch.Tensor
    chosen: tuple[torch.Tensor, torch.Tensor] | None = None  # (source beam, token) of the step's choice


class _Forwards:
    """The model under OPERA: a prompt's beams share every forward, the last layer's attention rows are read."""

    def __init__(self, vlm, image, prompt: str, num_beams: int):
        self.vlm, self.step_model = vlm, text_model(vlm)
        self.images = None if image is None else [image] * num_beams
        self.prompt_batch = vlm.encode(self.images, [prompt] * num_beams)
        self.prompt_length = self.prompt_batch.input_ids.shape[1]
        self.hooks = AttentionHooks(record_layer=decoder_layers(vlm) - 1)
        self.cache = None

    def prefill(self, generated: torch.Tensor) -> torch.Tensor:
        """Logits ``[beams, vocab]`` after the prompt and each beam's ``generated`` tokens, on a new cache."""
        prompt = self.prompt_batch
        input_ids = torch.cat([prompt.input_ids, generated], dim=1)
        batch = ModelBatch(
            input_ids,
            torch.ones_like(input_ids),
            torch.zeros_like(input_ids, dtype=torch.bool),
            prompt.image_inputs,
            self.vlm.extra_inputs(input_ids),
        )
        self.vlm.check_image_tokens(batch)
        output = self.vlm.model(**batch.to(self.vlm.device).model_inputs(), use_cache=True)
        self.cache = _cache_of(output)
        if hasattr(self.cache, "activate_past_recording"):  # sliding-window layers keep what a crop restores
            self.cache.activate_past_recording()
        return output.logits[:, -1].float().cpu()

    def step(self, tokens: torch.Tensor, keep: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed one token per beam: next-token logits ``[beams, vocab]`` and the last layer's attention row of
        the fed token (maximum over heads, normalised) ``[beams, sequence]``. ``keep=False`` crops it back out."""
        self.hooks.recorded.clear()
        output = self.step_model(
            input_ids=tokens[:, None].to(self.vlm.device), cache=self.cache, use_cache=True, logits_to_keep=1
        )
        if not keep:
            self.cache.crop(-1)
        row = self.hooks.recorded[-1].float().max(dim=1).values
        return output.logits[:, -1].float().cpu(), (row / row.sum(dim=-1, keepdim=True)).cpu()

    def reorder(self, beams: torch.Tensor) -> None:
        self.cache.reorder_cache(beams.to(self.vlm.device))


def _cache_of(output):
    """The cache a forward returned (InstructBLIP's is in its language model's output)."""
    inner = getattr(output, "language_model_outputs", None)
    return (inner if inner is not None else output).cache


@torch.no_grad()
def generate(
    vlm, images: Sequence | None, prompts: Sequence[str], settings: OperaSettings, decoding: DecodingSettings
) -> list[str]:
    """OPERA decoding of each (image, prompt), within ``decoding.max_new_tokens`` and the model's stop tokens."""
    decoding = decoding or DecodingSettings()
    was_training = vlm.model.training
    vlm.model.eval()
    try:
        tokens = [
            _decode(vlm, None if images is None else images[i], prompt, settings, decoding.max_new_tokens)
            for i, prompt in enumerate(prompts)
        ]
    finally:
        vlm.model.train(was_training)
    return [t.strip() for t in vlm.tokenizer.batch_decode(tokens, skip_special_tokens=True)]


def _decode(vlm, image, prompt: str, settings: OperaSettings, max_new_tokens: int) -> list[int]:
    forwards = _Forwards(vlm, image, prompt, settings.num_beams)
    with attention_hooks(vlm, forwards.hooks):
        return _opera_beam_search(vlm, forwards, settings, max_new_tokens)


def _opera_beam_search(vlm, forwards: _Forwards, settings: OperaSettings, max_new_tokens: int) -> list[int]:
    config = _BeamConfig.of(vlm.model.generation_config)
    stop_ids = torch.tensor(vlm.stop_token_ids)
    prompt_length = forwards.prompt_length
    image_positions = vlm.visual_token_mask(forwards.prompt_batch.input_ids[0])
    beams = BeamSearch.start(settings.num_beams, max_new_tokens, vlm.pad_token_id)
    attention = torch.zeros((settings.num_beams, 0, 0))  # rows and columns: the response tokens
    logits = forwards.prefill(beams.running)
    history: dict[int, _Snapshot] = {}
    locations: dict[int, torch.Tensor] = {}  # per step, each beam's most common rollback location
    rollbacks = torch.zeros(max(settings.window_size, max_new_tokens) + 2, dtype=torch.long)
    rejected: dict[int, torch.Tensor] = {}
    while True:
        t = beams.running.shape[1]
        candidate_logits, candidates = torch.topk(logits, min(settings.num_attn_candidates, logits.shape[-1]))
        rows = []
        for c in range(candidates.shape[1]):
            rows.append(forwards.step(candidates[:, c], keep=False)[1])
        rows = torch.stack(rows, dim=1)  # [beams, candidates, prompt + t + 1]
        image_attention = rows[..., :prompt_length][..., image_positions].sum(dim=-1)
        previous = torch.nn.functional.pad(attention, (0, 1))[:, None].expand(-1, rows.shape[1], -1, -1)
        window = torch.cat([previous, rows[:, :, None, prompt_length:]], dim=2)
        penalty, candidate_locations = candidate_penalties(window, image_attention, settings.scale_factor)
        beam_locations = candidate_locations.mode(dim=-1).values
        location = int(beam_locations.mode().values)
        locations[t] = beam_locations
        candidate_scores = candidate_logits - settings.penalty_weights * penalty
        history[t] = _Snapshot(replace(beams), attention)
        history.pop(t - settings.window_size, None)

        target = _rollback_target(locations, location, t + 1, settings, rollbacks)
        # the repo revives the state at the target, or the previous step's when the target is not behind it
        revived = None if target is None else min(target, t - 1)
        if revived is not None and revived in history:
            for step in [s for s in history if s > revived]:
                history.pop(step)
                locations.pop(step)
            rejected.pop(target + 1, None)
            snapshot = history[revived]
            source, token = snapshot.chosen
            flat = source * logits.shape[-1] + token
            rejected[target] = torch.cat([rejected[target], flat]) if target in rejected else flat
            beams, attention = replace(snapshot.beams), snapshot.attention
            logits = forwards.prefill(beams.running)
            step_logits = logits - (-BLOCKED + logits.min(dim=-1, keepdim=True).values)
            step_logits = step_logits.view(-1).scatter(0, rejected[target], BLOCKED).view(logits.shape)
        else:
            step_logits = torch.full_like(logits, BLOCKED).scatter(1, candidates, candidate_scores)
        step = beams.running.shape[1]
        beams, source = beams.step(torch.log_softmax(step_logits, dim=-1), stop_ids, max_new_tokens, config)
        history[step].chosen = (source, beams.running[:, -1])
        if beams.done:
            return beams.best().tolist()
        forwards.reorder(source)
        logits, row = forwards.step(beams.running[:, -1])
        attention = torch.nn.functional.pad(attention[source], (0, 1))
        attention = torch.cat([attention, row[:, None, prompt_length:]], dim=1)


def _rollback_target(
    locations, location: int, window_length: int, settings: OperaSettings, rollbacks
) -> int | None:
    """The position to decode again, or None: OPERA's retrospection rule (see the module docstring)."""
    recorded = torch.stack(list(locations.values()), dim=1)  # [beams, steps]
    if not bool(((recorded == location).sum(dim=1) > settings.threshold).all()):
        return None
    if location < MIN_ROLLBACK_LOCATION:
        return None
    target = location + 1
    if rollbacks[target] >= settings.num_attn_candidates:
        target -= 1
        if rollbacks[target] >= settings.num_attn_candidates:
            return None
    rollbacks[target] += 1
    if window_length - target > settings.window_size + 1:
        target = max(1, window_length - settings.window_size - 1)
    return target


# OPERA is a beam search over generated text: no fast yes/no variant
STRATEGY = Strategy("opera", OperaSettings, generate, None)
