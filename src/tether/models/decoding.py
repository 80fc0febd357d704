"""Decoding settings: explicit, recorded with every result."""

from dataclasses import asdict, dataclass, field


@dataclass
class DecodingSettings:
    max_new_tokens: int = 64
    do_sample: bool = False  # greedy by default: published baselines differ mostly by this
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    num_beams: int = 1
    repetition_penalty: float = 1.0
    seed: int | None = None
    # a training-free decoding strategy of ``tether.decoding`` (vcd, icd, m3id, ...); "greedy" is the model's
    # own generate with the settings above (greedy, sampling or beam search). ``strategy_options`` holds the
    # strategy's parameters, every one of them (``tether.decoding`` fills in the paper's defaults).
    strategy: str = "greedy"
    strategy_options: dict = field(default_factory=dict)

    def generate_kwargs(self) -> dict:
        kwargs = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or None)
        else:
            # unset sampling knobs so a checkpoint's generation_config cannot turn them on silently
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def to_dict(self) -> dict:
        return asdict(self)
