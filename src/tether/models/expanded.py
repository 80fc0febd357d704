"""Families whose processor rewrites the template's image placeholder as text (delimiters, crop-grid tags,
newlines around the visual tokens): Gemma 3, InternVL, Idefics3 and SmolVLM.

tether writes the same text the family's HF processor writes (``image_text(layout)``), substitutes it for
the placeholder in the rendered prompt and tokenizes the whole prompt, so a tokenizer that merges newlines
with their neighbours sees what it sees under the HF processor. The visual-token count of every image is
then checked against the tokens produced before anything runs.
"""

from tether.core.errors import TetherError
from tether.models.adapter import VisionLanguageModel


class TextExpandingAdapter(VisionLanguageModel):
    placeholder: str = ""  # what the chat template writes for an image

    def image_text(self, layout) -> str:
        """The text that replaces one image's placeholder."""
        raise NotImplementedError

    def layout_token_count(self, layout) -> int:
        """Visual tokens of an image with this layout."""
        raise NotImplementedError

    def image_token_counts(self, image_inputs: dict) -> list[int]:
        return [self.layout_token_count(layout) for layout in self.image_layouts(image_inputs)]

    def _prompt_ids(self, question: str, layout) -> list[int]:
        if layout is None:
            return self.tokenizer(self.prompt_text(question, with_image=False)).input_ids
        return self._multi_image_prompt_ids(question, [layout])

    def _multi_image_prompt_ids(self, question: str, layouts: list) -> list[int]:
        pieces = self.prompt_text(question, n_images=len(layouts)).split(self.placeholder)
        if len(pieces) != len(layouts) + 1:
            raise TetherError(
                f"chat template produced {len(pieces) - 1} image placeholders ({self.placeholder!r}) for "
                f"{len(layouts)} images"
            )
        text = pieces[0] + "".join(self.image_text(lay) + piece for lay, piece in zip(layouts, pieces[1:]))
        ids = self.tokenizer(text).input_ids
        found, expected = ids.count(self.image_token_id), sum(map(self.layout_token_count, layouts))
        if found != expected:
            raise TetherError(
                f"the prompt has {found} image tokens after expansion, the image gives {expected}; "
                "does the template write the image token itself?"
            )
        return ids

    def image_span(self, layout) -> list[int]:
        return self.tokenizer(self.image_text(layout), add_special_tokens=False).input_ids
