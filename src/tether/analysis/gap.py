"""The modality gap that HACL sets out to close (its Figure 1), measured on a model's own representations.

For images with a true and a hallucinated caption: the last-layer hidden state at an EOS after the visual tokens
alone (image), after the caption alone, and after the hallucinated caption alone. Measured on L2-normalised
representations:

- ``centroid_distance``: Euclidean distance between the mean image and the mean caption representation;
- ``matched_cosine`` / ``negative_cosine``: mean cosine of each image with its caption / its hallucinated one;
- ``probe_accuracy``: held-out accuracy of a linear probe (logistic regression) telling caption representations
  from hallucinated ones (k-fold, a caption and its rewrite always in the same fold);

and a 2-D projection (PCA, or UMAP if ``umap-learn`` is installed and asked for) of the three groups, one
panel per model, so "before vs after HACL" reads in one figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tether.core.errors import TetherError
from tether.core.images import open_image
from tether.core.io import write_json
from tether.core.provenance import environment
from tether.data.negatives import load_negatives
from tether.models import load
from tether.models.placement import placement_record


@torch.no_grad()
def representations(
    vlm, images: Sequence, captions: Sequence[str], negatives: Sequence[str], batch_size: int = 16
):
    """Image, caption and negative representations ``[N, hidden]`` (float32, on CPU)."""
    was_training = vlm.model.training
    vlm.model.eval()
    try:
        out = {"image": [], "caption": [], "negative": []}
        # shown on a terminal only (tqdm's disable=None): this library function has no progress switch
        for start in tqdm(range(0, len(images), batch_size), desc="representations", disable=None):
            end = start + batch_size
            out["image"].append(vlm.visual_eos_representation(images[start:end]).float().cpu())
            texts = list(captions[start:end]) + list(negatives[start:end])
            reps = vlm.text_eos_representation(texts).float().cpu()
            n = len(texts) // 2
            out["caption"].append(reps[:n])
            out["negative"].append(reps[n:])
    finally:
        vlm.model.train(was_training)
    return tuple(torch.cat(out[k]) for k in ("image", "caption", "negative"))


def gap_metrics(
    image: torch.Tensor, caption: torch.Tensor, negative: torch.Tensor, *, folds: int = 5, seed: int = 0
):
    """The gap figures for matched rows of image, caption and negative representations."""
    image_n, caption_n, negative_n = (F.normalize(x.float(), dim=-1) for x in (image, caption, negative))
    return {
        "pairs": int(image.shape[0]),
        "centroid_distance": float((image_n.mean(0) - caption_n.mean(0)).norm()),
        "matched_cosine": float((image_n * caption_n).sum(-1).mean()),
        "negative_cosine": float((image_n * negative_n).sum(-1).mean()),
        "caption_beats_negative": float(
            ((image_n * caption_n).sum(-1) > (image_n * negative_n).sum(-1)).float().mean()
        ),
        "probe_accuracy": linear_probe_accuracy(caption_n, negative_n, folds=folds, seed=seed),
    }


def linear_probe_accuracy(
    true_reps: torch.Tensor, false_reps: torch.Tensor, *, folds: int = 5, seed: int = 0, l2: float = 1e-3
) -> float:
    """k-fold held-out accuracy of logistic regression separating ``true_reps`` (1) from ``false_reps`` (0).

    Row i of both is one pair (a caption and its rewrite); pairs never straddle folds, so the probe cannot
    win by remembering a caption.
    """
    n = true_reps.shape[0]
    folds = max(2, min(folds, n))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    correct = 0
    for k in range(folds):
        test_pairs = order[k::folds]
        train_mask = torch.ones(n, dtype=torch.bool)
        train_mask[test_pairs] = False
        x_train = torch.cat([true_reps[train_mask], false_reps[train_mask]]).double()
        y_train = torch.cat([torch.ones(int(train_mask.sum())), torch.zeros(int(train_mask.sum()))]).double()
        mean, std = x_train.mean(0), x_train.std(0) + 1e-6
        weights = _fit_logistic((x_train - mean) / std, y_train, l2)
        x_test = (torch.cat([true_reps[test_pairs], false_reps[test_pairs]]).double() - mean) / std
        y_test = torch.cat([torch.ones(len(test_pairs)), torch.zeros(len(test_pairs))])
        predicted = ((x_test @ weights[:-1] + weights[-1]) > 0).float()
        correct += int((predicted == y_test).sum())
    return correct / (2 * n)


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    weights = torch.zeros(x.shape[1] + 1, dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = x @ weights[:-1] + weights[-1]
        loss = F.binary_cross_entropy_with_logits(logits, y) + l2 * (weights[:-1] ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weights.detach()


def project_2d(points: torch.Tensor, method: str = "pca", seed: int = 0) -> torch.Tensor:
    """``[N, d]`` → ``[N, 2]`` by PCA (top two principal components) or UMAP."""
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise TetherError("projection 'umap' needs the umap-learn package; use 'pca'") from None
        return torch.from_numpy(umap.UMAP(n_components=2, random_state=seed).fit_transform(points.numpy()))
    centered = points.double() - points.double().mean(0)
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    return (centered @ v[:2].T).float()


def plot_gap(panels: Sequence[dict], out_png, method: str = "pca", columns: int | None = None) -> None:
    """One scatter panel per model of its image / caption / hallucinated-caption representations.

    Each panel is ``{"label", "image", "caption", "negative", "metrics"}`` (tensors ``[N, hidden]``);
    ``columns`` panels per row (default: all in one row).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = columns or len(panels)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4.6 * rows), squeeze=False)
    styles = {"image": ("tab:blue", "o"), "caption": ("tab:green", "^"), "negative": ("tab:red", "x")}
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        groups = [F.normalize(panel[k].float(), dim=-1) for k in styles]
        xy = project_2d(torch.cat(groups), method)
        start = 0
        for (name, (colour, marker)), group in zip(styles.items(), groups):
            part = xy[start : start + len(group)]
            start += len(group)
            label = {"image": "image", "caption": "caption", "negative": "hallucinated caption"}[name]
            ax.scatter(part[:, 0], part[:, 1], s=14, c=colour, marker=marker, label=label, alpha=0.8)
        m = panel["metrics"]
        ax.set_title(
            f"{panel['label']}\ncentroid dist {m['centroid_distance']:.3f}, "
            f"cos {m['matched_cosine']:.3f}, probe {m['probe_accuracy']:.2f}",
            fontsize=9,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=8, loc="best")
    fig.suptitle(f"modality gap ({method.upper()} of last-token representations)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def analyze_gap(
    models: Sequence[tuple[str, str]],
    negatives_path,
    images_root,
    out_dir,
    *,
    limit: int | None = None,
    projection: str = "pca",
    batch_size: int = 16,
    seed: int = 0,
    columns: int | None = None,
    load_settings=None,
) -> dict:
    """Measure every ``(label, checkpoint)`` on the same pairs; write ``gap.json`` and ``gap.png`` to ``out_dir``.

    ``load_settings`` (a ``ModelLoadSettings``) places each model: device, dtype, attention."""
    from pathlib import Path

    pairs = [p for p in load_negatives(negatives_path) if p.image is not None][:limit]
    if len(pairs) < 4:
        raise TetherError(f"{negatives_path}: need at least 4 records with an image, found {len(pairs)}")
    images = [open_image(images_root, p.image, source=negatives_path) for p in pairs]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    panels, results = [], []
    for label, path in models:
        vlm = load(path, **(load_settings.load_options() if load_settings else {}))
        image, caption, negative = representations(
            vlm, images, [p.caption for p in pairs], [p.negative for p in pairs], batch_size
        )
        metrics = gap_metrics(image, caption, negative, seed=seed)
        panels.append(
            {"label": label, "image": image, "caption": caption, "negative": negative, "metrics": metrics}
        )
        results.append(
            {"label": label, "model": str(path), "model_placement": placement_record(vlm.model), **metrics}
        )
        del vlm
    plot_gap(panels, out_dir / "gap.png", projection, columns)
    report = {
        "negatives": str(negatives_path),
        "pairs": len(pairs),
        "projection": projection,
        "models": results,
        "environment": environment(),
    }
    write_json(out_dir / "gap.json", report)
    return report
