"""A warning when a tokenizer reads much of a model's text as its unknown token.

A word-level vocabulary that lacks the data's words (a tiny checkpoint built without the synthetic world's
vocabulary) maps each of them to ``<unk>``: every POPE question then reads the same, captions train on
``<unk>``, and nothing fails. Every text tether encodes for a model passes through ``count``, so the check
holds for every command and every checkpoint; byte-level tokenizers (those of real checkpoints) have no
unknown token, or never emit it.
"""

import logging

logger = logging.getLogger(__name__)

# a vocabulary built for the data leaves no word unknown: past this share it does not cover the data
WARN_SHARE = 0.05
MAX_EXAMPLES = 8
# ``count`` checks by itself past this many tokens (for callers that encode without ``encode``'s check)
CHECK_AFTER_TOKENS = 256


class UnknownTokenMonitor:
    """Counts the text tokens a model reads and how many are unknown (``count``, per text); ``check`` warns once
    when the share is past ``WARN_SHARE``. Checked after a batch, the warning can name several of the words."""

    def __init__(self, tokenizer, model_path=None):
        self.tokenizer = tokenizer
        self.unk_id = getattr(tokenizer, "unk_token_id", None)
        self.model_path = model_path
        self.tokens = 0
        self.unknown = 0
        self.examples: list[str] = []
        self.warned = False

    @property
    def share(self) -> float:
        return self.unknown / self.tokens if self.tokens else 0.0

    def count(self, ids: list[int], text: str, **tokenize_kwargs) -> None:
        """Count one encoded text (``ids`` as the tokenizer gave them for ``text``)."""
        if self.unk_id is None:
            return
        unknown = ids.count(self.unk_id)
        self.tokens += len(ids)
        self.unknown += unknown
        if unknown and len(self.examples) < MAX_EXAMPLES:
            self._add_examples(text, tokenize_kwargs)
        if self.tokens >= CHECK_AFTER_TOKENS:
            self.check()

    def check(self) -> None:
        if not self.warned and self.share > WARN_SHARE:
            self.warned = True
            logger.warning(
                "%.1f%% of the text tokens %s has read so far (%d of %d) are its unknown token %s: its "
                "vocabulary does not cover these words (e.g. %s), and texts that differ only in them look "
                "the same to it. For the synthetic world: `tether models tiny --for-world DIR`.",
                100 * self.share,
                self.model_path or "the model",
                self.unknown,
                self.tokens,
                self.tokenizer.unk_token,
                ", ".join(repr(w) for w in self.examples) or "?",
            )

    def _add_examples(self, text: str, tokenize_kwargs: dict) -> None:
        """The words behind the unknown tokens (fast tokenizers give character offsets; others give none)."""
        try:
            encoded = self.tokenizer(text, return_offsets_mapping=True, **tokenize_kwargs)
        except (NotImplementedError, ValueError, TypeError):
            return
        for token_id, (start, end) in zip(encoded.input_ids, encoded.offset_mapping):
            word = text[start:end]
            if token_id == self.unk_id and word and word not in self.examples:
                self.examples.append(word)
                if len(self.examples) >= MAX_EXAMPLES:
                    return
