"""The processed-image cache: same tensors as processing, each file processed once, keyed by file state."""

import os

import torch
from PIL import Image

from tether.core.images import open_image
from tether.models.image_cache import ImageInputCache


def _write_images(folder, colours, size=(40, 28)):
    for i, colour in enumerate(colours):
        Image.new("RGB", size, colour).save(folder / f"{i}.png")


def _count_processing(vlm, monkeypatch) -> list[int]:
    processed = []
    original = vlm.process_images

    def counting(images):
        processed.append(len(images))
        return original(images)

    monkeypatch.setattr(vlm, "process_images", counting)
    return processed


def test_cached_inputs_equal_processing_and_each_file_is_processed_once(tiny_vlm, tmp_path, monkeypatch):
    monkeypatch.setattr(tiny_vlm, "image_cache", ImageInputCache())
    _write_images(tmp_path, ["red", "blue", "green"])
    images = [open_image(tmp_path, f"{i}.png") for i in (0, 1, 2, 1)]
    expected = tiny_vlm.process_images(images)  # one batch through the processor, no cache
    processed = _count_processing(tiny_vlm, monkeypatch)

    first = tiny_vlm.image_inputs(images)
    again = tiny_vlm.image_inputs([open_image(tmp_path, f"{i}.png") for i in (0, 1, 2, 1)])

    assert first.keys() == expected.keys()
    for name in expected:  # LLaVA's pixels; Qwen2-VL's patch rows and grids
        assert torch.equal(first[name], expected[name]) and torch.equal(again[name], expected[name])
    assert sum(processed) == 3  # three distinct files, the repeated one and the second call served cached


def test_a_rewritten_file_is_processed_again(tiny_vlm, tmp_path, monkeypatch):
    monkeypatch.setattr(tiny_vlm, "image_cache", ImageInputCache())
    _write_images(tmp_path, ["red"])
    before = tiny_vlm.image_inputs([open_image(tmp_path, "0.png")])["pixel_values"]
    _write_images(tmp_path, ["blue"])
    os.utime(tmp_path / "0.png", ns=(1, 1))  # a new modification time even on a coarse clock
    after = tiny_vlm.image_inputs([open_image(tmp_path, "0.png")])["pixel_values"]
    assert not torch.equal(before, after)


def test_images_not_read_from_files_are_always_processed(tiny_vlm, monkeypatch):
    monkeypatch.setattr(tiny_vlm, "image_cache", ImageInputCache())
    processed = _count_processing(tiny_vlm, monkeypatch)
    image = Image.new("RGB", (40, 28), "red")
    tiny_vlm.image_inputs([image, image])
    tiny_vlm.image_inputs([image])
    assert processed == [2, 1] and not tiny_vlm.image_cache.entries


def test_least_recently_used_entries_go_past_the_byte_budget():
    def entry(n_floats):
        return {"pixel_values": torch.zeros(n_floats)}

    cache = ImageInputCache(max_bytes=3 * 4 * 10)  # room for three 10-float entries
    for key in "abc":
        cache.put(key, entry(10))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("d", entry(10))
    assert set(cache.entries) == {"a", "c", "d"} and cache.bytes == 120
    cache.put("huge", entry(100))  # larger than the whole budget: not kept, nothing evicted for it
    assert set(cache.entries) == {"a", "c", "d"}
