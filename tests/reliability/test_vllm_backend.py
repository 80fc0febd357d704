"""The optional vLLM backend, against a fake `vllm` module (vLLM itself is not installable here).

Checks what tether controls: the install hint when vLLM is missing, the prompts (the checkpoint's chat
template, exactly as the HF adapter builds them) and images handed to `LLM.generate`, the mapping of
DecodingSettings to SamplingParams, and that runs write the same samples.jsonl / results.json as HF runs.
"""

import json
import sys
import types

import pytest
from PIL import Image

from tether.cli import main
from tether.core.errors import TetherError
from tether.data.pairs import PairSettings, build_pairs
from tether.eval.registry import get_benchmark
from tether.eval.runner import run_benchmark
from tether.models.decoding import DecodingSettings
from tether.models.vllm_backend import VllmGenerator, generator


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class FakeLLM:
    instances = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        FakeLLM.instances.append(self)

    def generate(self, requests, sampling_params=None, use_tqdm=True):
        self.calls.append((requests, sampling_params))
        # answers depend on the request, so mix-ups between requests and outputs would show
        answers = ["Yes" if "square" in r["prompt"] else "No. There is none." for r in requests]
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" {a} ")]) for a in answers]


@pytest.fixture
def fake_vllm(monkeypatch):
    FakeLLM.instances.clear()
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def make_pope(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue"]):
        Image.new("RGB", (32, 24), colour).save(images / f"img{i}.png")
        for shape, label in (("square", "yes"), ("circle", "no")):
            rows.append(
                {
                    "question_id": len(rows) + 1,
                    "image": f"img{i}.png",
                    "text": f"Is there a {shape}?",
                    "label": label,
                }
            )
    path = tmp_path / "world_pope_random.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, images


def test_missing_vllm_is_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(TetherError, match=r"install it with `pip install tether\[vllm\]`"):
        VllmGenerator(tmp_path)
    questions, images = make_pope(tmp_path)
    code = main(
        [
            "eval",
            "pope",
            "run",
            "--data",
            str(questions),
            "--model",
            str(tmp_path),
            "--images",
            str(images),
            "--out",
            str(tmp_path / "out"),
            "--backend",
            "vllm",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "pip install tether[vllm]" in err


def test_prompts_images_and_sampling_params(fake_vllm, tiny_checkpoint, tiny_vlm):
    model = generator(tiny_checkpoint, "vllm", max_model_len=512)
    llm = FakeLLM.instances[-1]
    assert llm.kwargs["model"] == str(tiny_checkpoint) and llm.kwargs["max_model_len"] == 512
    assert llm.kwargs["limit_mm_per_prompt"] == {"image": 1} and llm.kwargs["trust_remote_code"] is False
    images = [Image.new("RGB", (32, 24), "red"), Image.new("RGB", (16, 16), "blue")]
    questions = ["Is there a square?", "Is there a circle?"]

    answers = model.generate(images, questions, DecodingSettings(max_new_tokens=7))
    assert answers == ["Yes", "No. There is none."]  # stripped, in request order
    requests, params = llm.calls[-1]
    for request, image, question in zip(requests, images, questions):
        assert request["prompt"] == tiny_vlm.prompt_text(question)  # the same text the HF adapter encodes
        assert request["prompt"].count(tiny_vlm.image_token) == 1
        assert request["multi_modal_data"]["image"] is image
    greedy = params[0].kwargs
    assert greedy["temperature"] == 0.0 and greedy["top_k"] == -1 and greedy["max_tokens"] == 7
    assert greedy["stop_token_ids"] == [tiny_vlm.eos_token_id] and greedy["repetition_penalty"] == 1.0

    sampled = DecodingSettings(do_sample=True, temperature=0.7, top_p=0.9, top_k=5, seed=11)
    model.generate(images, questions, sampled)
    params = [p.kwargs for p in llm.calls[-1][1]]
    assert [(p["temperature"], p["top_p"], p["top_k"]) for p in params] == [(0.7, 0.9, 5)] * 2
    assert [p["seed"] for p in params] == [11, 12]  # identical prompts in one batch still sample differently

    with pytest.raises(TetherError, match="beam search"):
        model.generate(images, questions, DecodingSettings(num_beams=3))


def test_runner_writes_the_same_files_with_either_backend(fake_vllm, tiny_checkpoint, tiny_vlm, tmp_path):
    questions, images = make_pope(tmp_path)
    bench = get_benchmark("pope")
    items = bench.load_items(questions)
    runs = {}
    for backend in ("hf", "vllm"):
        out = tmp_path / backend
        run_benchmark(
            bench,
            items,
            model_path=tiny_checkpoint,
            vlm=tiny_vlm if backend == "hf" else None,
            images_root=images,
            out_dir=out,
            decoding={"max_new_tokens": 3, "batch_size": 2},
            backend=backend,
            progress=False,
        )
        samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        runs[backend] = (samples, json.loads((out / "results.json").read_text()))
    (hf_samples, hf_results), (vllm_samples, vllm_results) = runs["hf"], runs["vllm"]
    assert [s["id"] for s in vllm_samples] == [s["id"] for s in hf_samples] == [it.id for it in items]
    assert [set(s) for s in vllm_samples] == [set(s) for s in hf_samples]
    assert set(vllm_results) == set(hf_results)
    assert vllm_results["decoding"]["backend"] == "vllm" and hf_results["decoding"]["backend"] == "hf"
    # the fake answers "Yes" exactly to the square questions, which are the "yes" labels: all correct
    assert vllm_results["metrics"]["accuracy"] == 1.0
    assert sum(len(requests) for requests, _ in FakeLLM.instances[-1].calls) == len(items)


def test_fast_mode_and_unknown_backends_are_refused(tmp_path):
    questions, images = make_pope(tmp_path)
    items = get_benchmark("pope").load_items(questions)
    for backend, mode, message in (
        ("vllm", "fast", "use --backend hf"),
        ("onnx", "generate", "unknown generation backend"),
    ):
        with pytest.raises(TetherError, match=message):
            run_benchmark(
                get_benchmark("pope"),
                items,
                model_path=tmp_path,
                images_root=images,
                out_dir=tmp_path / "o",
                mode=mode,
                backend=backend,
                progress=False,
            )


def test_pair_pipeline_samples_through_the_chosen_backend(fake_vllm, tiny_checkpoint, tmp_path):
    image_root = tmp_path / "images"
    image_root.mkdir()
    Image.new("RGB", (16, 16), "red").save(image_root / "a.png")
    out = tmp_path / "pairs.jsonl"

    def judge(image_id, sentences):
        return ["hallucination" if "none" in s else "correct" for s in sentences]

    settings = PairSettings(prompt="Is there a circle?", samples_per_image=3, backend="vllm", seed=2)
    counts = build_pairs(
        str(tiny_checkpoint), [("a", "a.png")], image_root, out, judge, settings=settings, progress=False
    )
    requests, params = FakeLLM.instances[-1].calls[-1]
    assert len(requests) == 3 and [p.kwargs["seed"] for p in params] == [2_000_006, 2_000_007, 2_000_008]
    assert counts["descriptions"] == 1 and counts["pairs"] == 1  # three identical samples make one candidate
    pair = json.loads(out.read_text())
    assert (pair["chosen"], pair["rejected"]) == ("No.", "No. There is none.")  # joined with their periods
    assert pair["provenance"]["settings"]["backend"] == "vllm"


def test_vllm_stops_where_hf_stops_and_takes_a_chosen_template(fake_vllm, tiny_checkpoint, tmp_path):
    """Every EOS id of generation_config.json stops vLLM too; --chat-template reaches its prompts."""
    import shutil

    from tether.models import load

    path = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, path)
    generation_config = json.loads((path / "generation_config.json").read_text())
    vlm = load(path)
    other = vlm.tokenizer.convert_tokens_to_ids("<unk>")
    generation_config["eos_token_id"] = [vlm.eos_token_id, other]
    (path / "generation_config.json").write_text(json.dumps(generation_config))
    template = tmp_path / "plain.jinja"
    template.write_text("{% for m in messages %}Q: {{ m['content'] }}{% endfor %} A:")

    model = generator(path, "vllm", chat_template=str(template))
    model.generate([Image.new("RGB", (32, 24))], ["Is there a square?"])
    requests, params = FakeLLM.instances[-1].calls[-1]
    assert params[0].kwargs["stop_token_ids"] == load(path).stop_token_ids == [vlm.eos_token_id, other]
    image_text = "<|vision_start|><|image_pad|><|vision_end|>" if "qwen" in vlm.arch else "<image>\n"
    assert requests[0]["prompt"] == f"Q: {image_text}Is there a square? A:"
    assert requests[0]["prompt"] == load(path, chat_template=str(template)).prompt_text("Is there a square?")
