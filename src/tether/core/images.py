"""Opening images named by data files: inside the image root only, with errors that name the record."""

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tether.core.errors import DataError
from tether.core.hf_dataset import EMBEDDED, open_embedded_image
from tether.core.io import resolve_under

MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs rather than exhausting memory
# key in PIL's ``Image.info`` naming the file an image was read from (the processed-input cache's key,
# tether.models.image_cache); images from open_image are not to be modified in place
FILE_TAG = "tether.file"


def open_image(root, relative: str, *, source=None, line: int | None = None) -> Image.Image:
    """Open ``root/relative`` as RGB. ``source``/``line`` name the data record that referred to it.

    An ``embedded://`` name is an image inside a Hugging Face dataset (``tether.core.hf_dataset``)."""
    if isinstance(relative, str) and relative.startswith(EMBEDDED):
        return _open_embedded(relative, source, line)
    path = resolve_under(root, relative, path=source, line=line)
    where = f"image '{relative}'"
    if not Path(path).is_file():
        raise DataError(f"{where} not found under {root}", source, line)
    stat = Path(path).stat()  # before reading: a file replaced meanwhile gets a key of its own
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise DataError(f"{where} is {img.width}x{img.height}, over the size limit", source, line)
            image = img.convert("RGB")
        image.info[FILE_TAG] = (str(path), stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
        return image
    except Image.DecompressionBombError:  # PIL's own limit, past twice its MAX_IMAGE_PIXELS
        raise DataError(
            f"{where} declares a size over the limit (decompression bomb?)", source, line
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{where} is not a readable image ({type(e).__name__}: {e})", source, line) from None


def _open_embedded(ref: str, source, line) -> Image.Image:

    where = f"image '{ref}'"
    try:
        with open_embedded_image(ref, source=source, line=line) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise DataError(f"{where} is {img.width}x{img.height}, over the size limit", source, line)
            image = img.convert("RGB")
    except Image.DecompressionBombError:
        raise DataError(
            f"{where} declares a size over the limit (decompression bomb?)", source, line
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{where} is not a readable image ({type(e).__name__}: {e})", source, line) from None
    image.info[FILE_TAG] = (ref,)  # the dataset is read-only: the reference alone identifies the image
    return image
