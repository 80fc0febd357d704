"""HACL's contrastive loss (arXiv 2312.06968) as a pure function of normalised embeddings.

Symmetric InfoNCE between image and caption embeddings of a batch, where each image may also have one
hallucinated caption. The hallucinated captions join the candidate texts of the image→text direction (every
image must pick its true caption over all captions *and* all hallucinated captions of the batch). With
``negatives_both_sides`` the text→image direction also uses them: caption j's row gains the logit of its own
hallucinated twin against image j, so the true caption must out-score its twin as the match of that image.
"""

import torch
import torch.nn.functional as F

TEMPERATURE_INIT = 0.07
TEMPERATURE_MIN = 0.001
TEMPERATURE_MAX = 0.5


def hacl_contrastive_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    negative_embeds: torch.Tensor,
    has_negative: torch.Tensor,
    temperature: torch.Tensor,
    *,
    negatives_both_sides: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(loss_v, loss_t)``: mean image→text and text→image cross-entropies.

    ``image_embeds``, ``text_embeds``, ``negative_embeds``: ``[B, d]``, L2-normalised; row i of each belongs to
    sample i. ``has_negative[i]`` says whether row i of ``negative_embeds`` is a real hallucinated caption (rows
    without one are ignored). ``temperature`` is clamped to [0.001, 0.5] here, so the clamp holds whatever
    parametrisation the caller learns.
    """
    temperature = temperature.clamp(TEMPERATURE_MIN, TEMPERATURE_MAX)
    batch = image_embeds.shape[0]
    targets = torch.arange(batch, device=image_embeds.device)
    has_negative = has_negative.to(image_embeds.device, torch.bool)

    image_text = image_embeds @ text_embeds.T / temperature  # [B images, B captions]
    image_negative = image_embeds @ negative_embeds.T / temperature  # [B images, B hallucinated]
    image_negative = image_negative.masked_fill(~has_negative[None, :], float("-inf"))
    loss_v = F.cross_entropy(torch.cat([image_text, image_negative], dim=1), targets)

    text_image = image_text.T  # [B captions, B images]
    if negatives_both_sides:
        # caption j against its own hallucinated twin, both as descriptions of image j
        twin = (image_embeds * negative_embeds).sum(-1) / temperature
        twin = twin.masked_fill(~has_negative, float("-inf"))
        text_image = torch.cat([text_image, twin[:, None]], dim=1)
    loss_t = F.cross_entropy(text_image, targets)
    return loss_v, loss_t


class LearnableTemperature(torch.nn.Module):
    """CLIP-style temperature learned on a log scale (init 0.07) and clamped to [0.001, 0.5] when read."""

    def __init__(self, init: float = TEMPERATURE_INIT):
        super().__init__()
        # shape (1,), not a 0-dim scalar: DeepSpeed (ZeRO-0/1/2) broadcasts every parameter viewed as bytes,
        # which a 0-dim tensor cannot be ("self.dim() cannot be 0 to view Float as Byte")
        self.log_temperature = torch.nn.Parameter(torch.tensor([float(init)]).log())

    def forward(self) -> torch.Tensor:
        return self.log_temperature.exp().clamp(TEMPERATURE_MIN, TEMPERATURE_MAX).squeeze(0)
