"""What the decoding tests share: the tiny vocabulary, prompts and images."""

from PIL import Image

WORDS = "red blue green square circle triangle left right above below yes no is there a the ?".split()
# ICD's disturbance instruction, spelled by the tiny tokenizer
WORDS += "you are confused object detector .".split()
PROMPTS = ["is there a red square ?", "is the circle blue ?", "describe the image ."]
SIZES = [(32, 32), (64, 40), (40, 72)]  # anyres grids, tiles, crops and native grids vary with them


def images(n: int = 3) -> list:
    out = []
    for i in range(n):
        image = Image.new("RGB", SIZES[i % 3], ["red", "blue", "green"][i % 3])
        image.paste((i * 60, 0, 255 - i * 60), (4 * i, 4, 4 * i + 12, 20))
        out.append(image)
    return out
