"""open_image on random bytes, truncated PNGs and huge declared sizes: an RGB image or a DataError naming
the record — never a PIL exception or a decompression bomb."""

import io
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tether.core.errors import DataError
from tether.core.images import open_image

FUZZ = settings(max_examples=50, deadline=None)


def png_bytes(size=(4, 3), colour="red", fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims ``width`` x ``height`` pixels (the data does not follow)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def check(data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "x.png").write_bytes(data)
        try:
            image = open_image(folder, "x.png", source="records.jsonl", line=4)
        except DataError as e:
            assert str(e).startswith("records.jsonl:4: image 'x.png'"), str(e)
            return None
        assert image.mode == "RGB"
        return image


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    check(data)


@FUZZ
@given(st.sampled_from(["PNG", "JPEG", "GIF", "BMP"]), st.data())
def test_truncated_and_corrupted_images(fmt, data):
    whole = png_bytes(fmt=fmt)
    cut = data.draw(st.integers(0, len(whole)))
    check(whole[:cut])
    position = data.draw(st.integers(0, len(whole) - 1))
    flipped = bytearray(whole)
    flipped[position] ^= data.draw(st.integers(1, 255))
    check(bytes(flipped))


@FUZZ
@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_declared_sizes(width, height):
    image = check(png_declaring(width, height))
    if width * height > 64_000_000:
        assert image is None  # refused before decoding, however big the claim


def test_huge_declared_size_is_refused_by_name(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    with pytest.raises(DataError, match="records.jsonl:2: image 'bomb.png'"):
        open_image(tmp_path, "bomb.png", source="records.jsonl", line=2)


def test_a_good_image_opens(tmp_path):
    (tmp_path / "ok.gif").write_bytes(png_bytes((5, 2), fmt="GIF"))
    image = open_image(tmp_path, "ok.gif")
    assert image.size == (5, 2) and image.mode == "RGB"
