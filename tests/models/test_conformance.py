"""One conformance suite over every registered family, each as a tiny random-init checkpoint built from its
transformers config class and loaded through ``load()``.

``scripts/support_matrix.py`` runs this file and writes docs/models.md from the outcomes: a test's name
(after ``test_``) is the capability, its ``[family...]`` parameter the row.
"""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tokenizers import AddedToken

from tether.core.errors import TetherError
from tether.models import ADAPTERS, DecodingSettings, ImageTokenMismatch, ModelBatch, load
from tether.models.batch import model_image_inputs

FAMILIES = sorted(ADAPTERS)
WORDS = "red blue green square circle triangle left right above below".split()
PROMPTS = ["is there a red square ?", "what color is the circle ?", "describe this image ."]
RESPONSES = ["yes", "the circle is blue .", "a red square left of a green triangle ."]
# three sizes and aspects: anyres grids, tile counts, crop grids and native-resolution grids all vary
SIZES = [(32, 32), (64, 40), (40, 72)]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def images(n=3):
    colours = ["red", "blue", "green"]
    out = []
    for i in range(n):
        img = Image.new("RGB", SIZES[i % 3], colours[i % 3])
        img.paste((i * 60, 0, 255 - i * 60), (4 * i, 4, 4 * i + 12, 20))
        out.append(img)
    return out


@pytest.fixture(scope="module", params=FAMILIES)
def checkpoint(request, tmp_path_factory):
    from tether.models.tiny import TinyConfig, build_tiny_checkpoint

    return build_tiny_checkpoint(
        TinyConfig(arch=request.param), tmp_path_factory.mktemp(request.param), WORDS
    )


@pytest.fixture(scope="module")
def vlm(checkpoint):
    return load(checkpoint)


@pytest.fixture(scope="module")
def images_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for i, image in enumerate(images()):
        image.save(root / f"{i}.png")
    return root


def fresh(checkpoint, lora: bool, **settings):
    """A newly loaded model made trainable as a recipe would (LoRA on the LLM, or the LLM itself)."""
    from tether.methods.settings import LoraSettings, ModelSettings
    from tether.methods.tuning import configure_trainable

    vlm = load(checkpoint)
    lora_settings = LoraSettings(r=4, alpha=8, dropout=0.0) if lora else None
    configure_trainable(vlm, ModelSettings(path=str(checkpoint), lora=lora_settings, **settings))
    return vlm


def train_step(module, params, **batch) -> dict:
    """One optimizer step; returns the output. Asserts a finite loss that moved the trainable weights."""
    optimizer = torch.optim.SGD([p for p in params if p.requires_grad], lr=0.5)
    before = [p.detach().clone() for p in params if p.requires_grad]
    out = module(**batch)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    optimizer.step()
    after = [p.detach() for p in params if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    return out


# ---- encoding ---------------------------------------------------------------------------------------------


def test_every_family_has_a_tiny_builder():
    from tether.models.commands import TINY_ARCHS
    from tether.models.tiny_families import BUILDERS

    assert sorted(TINY_ARCHS) == FAMILIES == sorted({"llava", "qwen2_vl", *BUILDERS})


def test_encode(vlm):
    batch = vlm.encode(images(), PROMPTS, RESPONSES)
    counts = vlm.image_token_counts(batch.image_inputs)
    assert vlm.visual_token_mask(batch.input_ids).sum(1).tolist() == counts and min(counts) > 0
    for i, response in enumerate(RESPONSES):
        expected = vlm.tokenizer(response, add_special_tokens=False).input_ids + [vlm.eos_token_id]
        assert batch.input_ids[i][batch.response_mask[i]].tolist() == expected
    # one image at a time gives the same rows (the cache and the batch padding change nothing)
    for i, image in enumerate(images()):
        alone = vlm.encode([image], PROMPTS[i : i + 1], RESPONSES[i : i + 1])
        length = int(batch.attention_mask[i].sum())
        assert alone.input_ids[0].tolist() == batch.input_ids[i, :length].tolist()


def hf_processor(vlm):
    """The family's own transformers processor over the checkpoint's tokenizer and image processor (use
    with the ``processors_without_torchvision`` fixture)."""
    import transformers

    config, parts = vlm.base_model.config, (vlm.image_processor, vlm.tokenizer)
    anyres = dict(vision_feature_select_strategy=getattr(config, "vision_feature_select_strategy", None))
    qwen = lambda cls: cls(*parts, video_processor=None)  # noqa: E731
    factories = {
        "llava": lambda: transformers.LlavaProcessor(
            *parts, patch_size=config.vision_config.patch_size, num_additional_image_tokens=1, **anyres
        ),
        "llava_next": lambda: transformers.LlavaNextProcessor(
            *parts, patch_size=config.vision_config.patch_size, num_additional_image_tokens=1, **anyres
        ),
        "llava_onevision": lambda: transformers.LlavaOnevisionProcessor(
            *parts,
            video_processor=None,
            num_image_tokens=(config.vision_config.image_size // config.vision_config.patch_size) ** 2,
            vision_aspect_ratio=config.vision_aspect_ratio,
            **anyres,
        ),
        "gemma3": lambda: transformers.Gemma3Processor(*parts, image_seq_length=config.mm_tokens_per_image),
        "internvl": lambda: transformers.InternVLProcessor(
            *parts, video_processor=None, image_seq_length=config.image_seq_length
        ),
        "idefics3": lambda: transformers.Idefics3Processor(*parts, image_seq_len=vlm.tokens_per_crop),
        "smolvlm": lambda: transformers.SmolVLMProcessor(
            *parts, video_processor=None, image_seq_len=vlm.tokens_per_crop
        ),
        "qwen2_vl": lambda: qwen(transformers.Qwen2VLProcessor),
        "qwen2_5_vl": lambda: qwen(transformers.Qwen2_5_VLProcessor),
        "qwen3_vl": lambda: qwen(transformers.Qwen3VLProcessor),
        "llava_onevision1_5": lambda: qwen(transformers.Qwen2VLProcessor),  # its hub processor class
        "instructblip": lambda: transformers.InstructBlipProcessor(
            *parts, qformer_tokenizer=vlm.qformer_tokenizer, num_query_tokens=config.num_query_tokens
        ),
    }
    processor = factories[vlm.base_model.config.model_type]()
    if vlm.arch == "instructblip":  # it takes the tokenizer's image_token string for an AddedToken
        processor.image_token = AddedToken(vlm.image_token, special=True)
    return processor


def test_inputs_equal_hf_processor(vlm, processors_without_torchvision):
    """tether's own expansion gives the token ids and pixels of the family's HF processor, image by image
    (sizes that change the anyres grid, the tile and crop counts and the native-resolution grid)."""
    processor = hf_processor(vlm)
    for image in images():
        ours = vlm.encode([image], [PROMPTS[1]])
        theirs = processor(images=[image], text=[vlm.prompt_text(PROMPTS[1])], return_tensors="pt")
        assert ours.input_ids[0].tolist() == theirs["input_ids"][0].tolist()
        for name, value in model_image_inputs(ours.image_inputs).items():
            torch.testing.assert_close(value, theirs[name].to(value.dtype), atol=0, rtol=0, msg=name)


def test_log_probs_equal_manual(vlm):
    batch = vlm.encode(images(), PROMPTS, RESPONSES)
    with torch.no_grad():
        result = vlm.response_logprobs(batch, return_logits=True)
        all_logps = F.log_softmax(result.logits.float(), dim=-1)
    for i in range(len(PROMPTS)):
        positions = batch.response_mask[i].nonzero().flatten().tolist()
        manual = sum(all_logps[i, t - 1, batch.input_ids[i, t]].item() for t in positions)
        assert result.summed[i].item() == pytest.approx(manual, abs=1e-4)
    assert torch.all(result.per_token[~result.mask] == 0)


def test_batched_log_probs_equal_one_by_one(vlm):
    imgs = images()
    with torch.no_grad():
        batched = vlm.response_logprobs(vlm.encode(imgs, PROMPTS, RESPONSES)).summed
        single = [
            vlm.response_logprobs(vlm.encode([imgs[i]], [PROMPTS[i]], [RESPONSES[i]])).summed[0]
            for i in range(len(PROMPTS))
        ]
    torch.testing.assert_close(batched, torch.stack(single), atol=1e-5, rtol=1e-5)


def test_batched_generation_equals_batch_of_one(vlm):
    imgs = images()
    settings = DecodingSettings(max_new_tokens=5)
    batched = vlm.generate(imgs, PROMPTS, settings)
    assert batched == [vlm.generate([imgs[i]], [PROMPTS[i]], settings)[0] for i in range(len(PROMPTS))]


def test_fast_yes_no_equals_full_forward(vlm):
    from tether.decoding.yes_no import yes_no_margins, yes_no_token_ids

    image = images(2)[1]
    yes_ids, no_ids = yes_no_token_ids(vlm.tokenizer)
    full = []
    with torch.no_grad():
        for prompt in PROMPTS:
            logits = vlm.forward(vlm.encode([image], [prompt])).logits[0, -1].float().log_softmax(-1)
            full.append(torch.logsumexp(logits[yes_ids], 0) - torch.logsumexp(logits[no_ids], 0))
    torch.testing.assert_close(yes_no_margins(vlm, image, PROMPTS), torch.stack(full), atol=1e-4, rtol=1e-4)


def test_eos_representation_padding_invariant(vlm):
    imgs = images()
    with torch.no_grad():
        alone = vlm.text_eos_representation(["red square"])
        padded = vlm.text_eos_representation(["red square", "a blue circle above a green triangle ."])
        visual_alone = vlm.visual_eos_representation(imgs[:1])
        visual_batch = vlm.visual_eos_representation(imgs)
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)
    assert visual_batch.shape == (3, vlm.hidden_size)
    torch.testing.assert_close(visual_alone[0], visual_batch[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(visual_batch[0], visual_batch[1])


def test_image_token_guard(vlm):
    batch = vlm.encode(images(2), PROMPTS[:2], RESPONSES[:2])
    first = int(vlm.visual_token_mask(batch.input_ids[0]).nonzero()[0])
    keep = [i for i in range(batch.input_ids.shape[1]) if i != first]
    ids = batch.input_ids[:, keep]
    cut = ModelBatch(
        ids,
        batch.attention_mask[:, keep],
        batch.response_mask[:, keep],
        batch.image_inputs,
        vlm.extra_inputs(ids),
    )
    with pytest.raises(ImageTokenMismatch, match="sample 0: .* image tokens"):
        vlm.forward(cut)
    with pytest.raises(TetherError, match="never truncated inside the image span"):
        vlm.encode(images(1), PROMPTS[:1], RESPONSES[:1], max_length=5)
    # max_length cuts the response only, and what is left still passes the guard
    full = vlm.encode(images(1), PROMPTS[2:], RESPONSES[2:])
    short = vlm.encode(images(1), PROMPTS[2:], RESPONSES[2:], max_length=full.input_ids.shape[1] - 2)
    assert short.response_mask.sum() == full.response_mask.sum() - 2
    vlm.check_image_tokens(short)


# ---- NoiseBoost ---------------------------------------------------------------------------------------------


def llm_input_embeddings(vlm, batch) -> torch.Tensor:
    """The embeddings the language model reads (text embeddings with the visual tokens scattered in), from a
    tether batch or a dict of model inputs."""
    captured = {}

    def grab(module, args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"].detach().clone()

    model = getattr(vlm.base_model, "model", vlm.base_model)  # InstructBLIP keeps its parts at the top
    llm = model.language_model if hasattr(model, "language_model") else model.text_model  # Idefics3, SmolVLM
    handle = llm.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            vlm.forward(batch) if isinstance(batch, ModelBatch) else vlm.base_model(**batch)
    finally:
        handle.remove()
    return captured["embeds"]


def test_noiseboost_exactly_on_visual_tokens_only_while_training(vlm):
    from tether.methods.noise import NoiseSettings, VisualNoise, noise_hook

    batch = vlm.encode(images(), PROMPTS, RESPONSES)
    noise = VisualNoise(NoiseSettings(scale=1.0))
    clean = llm_input_embeddings(vlm, batch)
    try:
        vlm.model.train()
        noise.train()
        with noise_hook(vlm, noise):
            noisy = llm_input_embeddings(vlm, batch)
        vlm.model.eval()
        with noise_hook(vlm, noise):
            evaluated = llm_input_embeddings(vlm, batch)
    finally:
        vlm.model.eval()
    changed = (noisy != clean).any(dim=-1)
    expected = vlm.visual_token_mask(batch.input_ids)
    newline = getattr(getattr(vlm.base_model, "model", None), "image_newline", None)
    if newline is not None:
        # anyres row separators are a learned embedding appended after the projector, never noised
        expected &= ~(clean == newline.detach()).all(dim=-1)
    assert torch.equal(changed, expected) and expected.any()
    torch.testing.assert_close(evaluated, clean, atol=0, rtol=0)


def test_the_adapter_declares_its_vision_tower_and_lora_adapts_only_the_language_model(checkpoint):
    # the family's adapter names its vision encoder (``vision_tower_name``); LoRA's target pattern comes from
    # it: every attention projection of the language model is adapted, none inside the tower
    vlm = fresh(checkpoint, lora=True)
    tower = {id(m) for m in vlm.vision_tower.modules()}
    projector = {id(p) for p in vlm.projector.parameters()}
    tower_only = {id(p) for p in vlm.vision_tower.parameters()} - projector
    assert tower_only and len(tower_only) < len(list(vlm.base_model.parameters()))
    projections = [
        (name, module)
        for name, module in vlm.base_model.named_modules()
        if name.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "o_proj")
    ]
    outside = [(name, m) for name, m in projections if id(m) not in tower]
    assert outside and all(hasattr(m, "lora_A") for _, m in outside), [n for n, m in outside]
    assert not any(hasattr(m, "lora_A") for m in vlm.vision_tower.modules())


# ---- one training step of every method, with LoRA and without --------------------------------------------


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_sft_noiseboost_step(checkpoint, lora):
    from tether.methods.noise import NoiseSettings, VisualNoise
    from tether.methods.sft import SFTModule

    vlm = fresh(checkpoint, lora)
    module = SFTModule(vlm, VisualNoise(NoiseSettings(scale=0.5))).train()
    batch = vlm.encode(images(), PROMPTS, RESPONSES).as_dict()
    train_step(module, list(vlm.model.parameters()), image_batch=batch)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_hacl_step(checkpoint, images_root, lora):
    from tether.data.sft import SFTRecord
    from tether.methods.hacl import HACLCollator, HACLExample, HACLModule

    vlm = fresh(checkpoint, lora)
    examples = [
        HACLExample(SFTRecord(f"{i}.png", PROMPTS[2], r), f"a {c} circle")
        for i, (r, c) in enumerate(zip(RESPONSES, ["blue", "green", "red"]))
    ]
    module = HACLModule(vlm).train()
    out = train_step(module, list(module.parameters()), **HACLCollator(vlm, images_root)(examples))
    assert math.isfinite(out["metrics"]["loss_v"].item())


def pair_items(vlm, images_root):
    from tether.data.preference import PreferenceRecord
    from tether.methods.dpo import DPOCollator
    from tether.methods.dpo_reference import compute_reference_logprobs

    pairs = [
        PreferenceRecord(PROMPTS[i], RESPONSES[i], RESPONSES[(i + 1) % 3], [f"{i}.png"]) for i in range(3)
    ]
    reference = compute_reference_logprobs(vlm, pairs, DPOCollator(vlm, images_root, shared_prefix=False), 3)
    return [
        {"index": i, "pair": p, "ref_chosen": float(c), "ref_rejected": float(r)}
        for i, (p, c, r) in enumerate(zip(pairs, *reference))
    ]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_dpo_step_packed_equals_two_sequence(checkpoint, images_root, lora):
    from tether.methods.dpo import DPOCollator, DPOModule
    from tether.methods.packing import supports_packing

    vlm = fresh(checkpoint, lora)
    assert supports_packing(vlm)
    items = pair_items(vlm, images_root)
    torch.manual_seed(0)
    with torch.no_grad():  # move the policy off its reference so the loss is not at its constant start
        for name, param in vlm.model.named_parameters():
            if param.requires_grad and ("lora_B" in name or not lora):
                param.add_(torch.randn_like(param) * 0.05)
    module = DPOModule(vlm, beta=0.1, sft_weight=0.3)
    losses = {}
    for shared in (True, False):
        out = module(**DPOCollator(vlm, images_root, shared_prefix=shared)(items))
        losses[shared] = out["loss"].detach()
    torch.testing.assert_close(losses[True], losses[False], atol=1e-5, rtol=0)
    train_step(module, list(vlm.model.parameters()), **DPOCollator(vlm, images_root)(items))


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_reward_step(checkpoint, images_root, lora):
    from tether.data.rlhf import PreferenceRecord
    from tether.methods.reward import PairwiseRewardModule, RewardModel, encode_pairs

    vlm = fresh(checkpoint, lora, freeze_projector=True)
    reward_model = RewardModel(vlm)
    records = [
        PreferenceRecord(f"{i}.png", PROMPTS[i], RESPONSES[i], RESPONSES[(i + 1) % 3], ["a red square"])
        for i in range(3)
    ]
    batch = encode_pairs(reward_model, records, images_root).as_dict()
    train_step(PairwiseRewardModule(reward_model).train(), list(reward_model.parameters()), pairs=batch)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_ppo_step(checkpoint, images_root, tmp_path, lora):
    from tether.core.config import load_config
    from tether.data.rlhf import load_prompt_records
    from tether.methods.ppo import PPOConfig, PPORunner
    from tether.methods.reward import RewardModel

    prompts = tmp_path / "prompts.jsonl"
    rows = [{"image": f"{i}.png", "prompt": PROMPTS[i], "facts": ["a red square ."]} for i in range(2)]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reward_folder = RewardModel(load(checkpoint)).save(tmp_path / "rm")
    overrides = [
        f"model.path={checkpoint}",
        f"data.train=[{prompts}]",
        f"data.images={images_root}",
        f"ppo.reward_model={reward_folder}",
        f"train.output_dir={tmp_path / 'run'}",
        "ppo.rollout_batch_size=2",
        "ppo.mini_batch_size=2",
        "ppo.max_new_tokens=3",
    ]
    if lora:
        overrides.append("model.lora={r: 4, alpha: 8, dropout: 0.0}")
    runner = PPORunner(load_config(PPOConfig, None, overrides))
    before = [p.detach().clone() for p in runner.module.parameters() if p.requires_grad]
    metrics, _ = runner.step(0, load_prompt_records(prompts))
    assert all(math.isfinite(metrics[k]) for k in ("policy_loss", "value_loss", "kl", "reward"))
    after = [p.detach() for p in runner.module.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_lora_save_and_reload(checkpoint, tmp_path):
    from tether.methods.tuning import export_model

    vlm = fresh(checkpoint, lora=True)
    with torch.no_grad():
        for name, param in vlm.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # adapters that change the output, as after training
    batch = vlm.encode(images(), PROMPTS, RESPONSES)
    with torch.no_grad():
        adapted = vlm.response_logprobs(batch).summed
        with vlm.model.disable_adapter():
            base = vlm.response_logprobs(batch).summed
    assert not torch.allclose(adapted, base, atol=1e-3)
    export_model(vlm, tmp_path / "export")
    with torch.no_grad():
        reloaded = load(tmp_path / "export").response_logprobs(batch).summed
    torch.testing.assert_close(reloaded, adapted, atol=1e-4, rtol=1e-5)


# ---- analyses -------------------------------------------------------------------------------------------------


def test_attention_share_and_modality_gap(vlm):
    from tether.analysis.attention import AttentionItem, attention_share_report
    from tether.analysis.gap import gap_metrics, representations

    items = [AttentionItem(image, PROMPTS[2], ["square"]) for image in images(2)]
    settings = DecodingSettings(max_new_tokens=4)
    report = attention_share_report(vlm, items, lambda word: None, settings)["groups"]["all"]
    layers = vlm.base_model.config.get_text_config().num_hidden_layers
    assert report["tokens"] > 0 and len(report["visual"]) == layers
    for visual, text in zip(report["visual"], report["text"]):  # every query's attention sums to one
        assert 0 < visual < 1 and visual + text == pytest.approx(1, abs=1e-4)
    image, caption, negative = representations(vlm, images(), RESPONSES, ["a blue circle ."] * 3)
    metrics = gap_metrics(image, caption, negative, folds=3)
    assert metrics["pairs"] == 3 and all(math.isfinite(v) for v in metrics.values())


# ---- precision and attention settings -------------------------------------------------------------------------


def test_bfloat16_close_to_float32(checkpoint):
    """Stated tolerance: summed response log-probs (up to ten tokens) within 0.02 nats and the mean token loss
    within 0.1% of float32, several times what these models show (docs/results/notes-from-code.md): bfloat16
    keeps 8 mantissa bits, and the log-softmax runs in float32."""
    from tether.methods.sft import SFTModule

    results = {}
    for dtype in ("float32", "bfloat16"):
        vlm = load(checkpoint, dtype=dtype)
        assert vlm.base_model.dtype == getattr(torch, dtype)
        batch = vlm.encode(images(), PROMPTS, RESPONSES)
        assert batch.image_inputs["pixel_values"].dtype == getattr(torch, dtype)
        with torch.no_grad():
            results[dtype] = (
                vlm.response_logprobs(batch).summed,
                SFTModule(vlm)(image_batch=batch.as_dict())["loss"].float(),
            )
    (logps32, loss32), (logps16, loss16) = results["float32"], results["bfloat16"]
    assert not torch.equal(logps16, logps32)  # the bfloat16 run really ran in bfloat16
    torch.testing.assert_close(logps16, logps32, atol=0.02, rtol=0)
    assert abs(loss16.item() - loss32.item()) <= 1e-3 * loss32.item()


def test_attention_implementations_agree(checkpoint):
    batch = None
    results = {}
    for implementation in ("eager", "sdpa"):
        vlm = load(checkpoint, attn_implementation=implementation)
        assert vlm.base_model.config.get_text_config()._attn_implementation == implementation
        batch = batch or vlm.encode(images(), PROMPTS, RESPONSES)
        with torch.no_grad():
            results[implementation] = vlm.response_logprobs(batch).summed
    torch.testing.assert_close(results["eager"], results["sdpa"], atol=1e-4, rtol=1e-5)
    with pytest.raises(TetherError, match="unknown attention implementation"):
        load(checkpoint, attn_implementation="fast")


def test_pixels_the_model_reads(vlm):
    """The image inputs passed to the model are the processor's tensors; tether's layout records stay out."""
    inputs = vlm.image_inputs(images())
    assert all(not k.startswith("tether_") for k in model_image_inputs(inputs))
    assert inputs["pixel_values"].dtype == vlm.base_model.dtype


# ---- several images per prompt ----------------------------------------------------------------------------


def test_multiple_images_per_prompt(vlm, processors_without_torchvision):
    imgs = images()
    groups = [[imgs[0], imgs[1]], [imgs[2]], [imgs[1], imgs[2], imgs[0]]]
    if vlm.arch == "instructblip":
        from tether.models.instructblip import ONE_IMAGE

        with pytest.raises(TetherError, match="one image per prompt"):
            vlm.encode(groups, PROMPTS, RESPONSES)
        pytest.skip(ONE_IMAGE)
    batch = vlm.encode(groups, PROMPTS, RESPONSES)
    counts = vlm.sample_token_counts(batch.image_inputs)
    assert [len(c) for c in counts] == [2, 1, 3]
    assert vlm.visual_token_mask(batch.input_ids).sum(1).tolist() == [sum(c) for c in counts]
    # the guard sums each sample's images: one visual token short in the three-image row is caught
    last = int(vlm.visual_token_mask(batch.input_ids[2]).nonzero()[-1])
    ids = batch.input_ids.clone()
    ids[2, last] = vlm.pad_token_id
    with pytest.raises(ImageTokenMismatch, match="sample 2: "):
        vlm.check_image_tokens(ModelBatch(ids, batch.attention_mask, batch.response_mask, batch.image_inputs))
    # the same ids as the family's HF processor for the three-image prompt, and the same LLM inputs (the
    # pixel tensors may be laid out differently: Idefics3 stacks a sample's crops, OneVision keeps all tiles)
    processor = hf_processor(vlm)
    ours = vlm.encode(groups[2:], PROMPTS[2:])
    text = [vlm.prompt_text(PROMPTS[2], n_images=3)]
    theirs = processor(images=[groups[2]], text=text, return_tensors="pt")
    assert ours.input_ids[0].tolist() == theirs["input_ids"][0].tolist()
    theirs = {k: v.to(vlm.base_model.dtype) if k == "pixel_values" else v for k, v in theirs.items()}
    torch.testing.assert_close(
        llm_input_embeddings(vlm, ours), llm_input_embeddings(vlm, theirs), atol=1e-6, rtol=1e-6
    )
    with torch.no_grad():
        batched = vlm.response_logprobs(batch).summed
        single = [
            vlm.response_logprobs(vlm.encode([g], [p], [r])).summed[0]
            for g, p, r in zip(groups, PROMPTS, RESPONSES)
        ]
        swapped = vlm.response_logprobs(vlm.encode([groups[0][::-1]], PROMPTS[:1], RESPONSES[:1])).summed[0]
    torch.testing.assert_close(batched, torch.stack(single), atol=1e-5, rtol=1e-5)
    assert abs(swapped.item() - single[0].item()) > 1e-6  # the images are read in their order
    settings = DecodingSettings(max_new_tokens=4)
    assert vlm.generate(groups, PROMPTS, settings) == [
        vlm.generate([g], [p], settings)[0] for g, p in zip(groups, PROMPTS)
    ]
