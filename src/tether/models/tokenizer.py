"""An offline word-level tokenizer, for tiny models and the synthetic world.

Real checkpoints bring their own tokenizer; this one exists so tests and the world need no download.
It lower-cases, splits on whitespace and punctuation, and keeps special tokens whole.
"""

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"

# Words every tiny model knows, so chat templates and generic prompts tokenize without <unk>.
BASE_WORDS = (
    "user assistant system : . , ? ! ' - yes no not the a an is are there in of this that image picture "
    "describe detail detailed what which how many color colour shape where answer question single word or phrase "
    "please briefly and with on to it"
).split()


def build_word_tokenizer(words, special_tokens: dict[str, str]) -> PreTrainedTokenizerFast:
    """Build a word-level fast tokenizer.

    ``special_tokens`` maps roles to token strings, e.g. ``{"image_token": "<image>"}``; pad/unk/bos/eos are
    always present. Role names become attributes of the returned tokenizer (``tok.image_token``).
    """
    specials = [PAD, UNK, BOS, EOS] + [t for t in special_tokens.values() if t not in (PAD, UNK, BOS, EOS)]
    vocab: dict[str, int] = {}
    for token in specials + list(BASE_WORDS) + [w.lower() for w in words]:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    extra = {
        k: v
        for k, v in special_tokens.items()
        if k not in ("pad_token", "unk_token", "bos_token", "eos_token")
    }
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=special_tokens.get("pad_token", PAD),
        unk_token=UNK,
        bos_token=special_tokens.get("bos_token", BOS),
        eos_token=special_tokens.get("eos_token", EOS),
        extra_special_tokens=extra,
    )
