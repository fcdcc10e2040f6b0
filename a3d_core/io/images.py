"""Reading, writing and visualising images.

:func:`read_image` turns any image a user is likely to hand over into one thing, an RGB
``uint8`` array ``(H, W, 3)``:

- RGB and palette images are taken as they are.
- Images with transparency (RGBA, LA, PA, palettes with a transparent entry) are composited on
  a WHITE background, the way a viewer shows them on a page; transparent pixels become white.
- Grayscale (``L``, ``1``) is repeated over the three channels.
- 16-bit grayscale (``I;16``, and ``I`` as older Pillow versions open 16-bit PNGs) is scaled
  from ``[0, 65535]`` to ``[0, 255]``; 32-bit float (``F``) is taken as ``[0, 1]`` when its
  maximum is at most 1 and as ``[0, 255]`` otherwise (clipped). 16-bit RGB PNGs are already
  reduced to 8 bits by Pillow.
- JPEGs with an EXIF orientation tag are rotated/flipped as the tag says
  (``PIL.ImageOps.exif_transpose``), so ``(H, W)`` is the shape a viewer shows.
- Multi-frame files (GIF, TIFF) give their first frame.
- Very large images are read without Pillow's decompression-bomb warning; beyond Pillow's hard
  limit (``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 megapixels by default) an
  :class:`~a3d_core.errors.InputError` says so.

An unreadable, truncated or missing file raises :class:`~a3d_core.errors.InputError` naming it.

:func:`read_mask` reads a mask image the same way (orientation, size limit, errors) as ``(H, W)``
bool, taking the stored values as they are: any non-zero channel, alpha included, is inside.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from a3d_core.errors import InputError
from a3d_core.io.atomic import atomic_write_bytes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm")
"""File endings :func:`find_images` picks up inside folders (case-insensitive)."""

GLOB_CHARACTERS = frozenset("*?[")

_TRANSPARENT_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


# ---------------------------------------------------------------------------------- reading
def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read any image file as RGB ``uint8`` of shape ``(H, W, 3)`` (see the module docstring)."""
    with _opened_image(path) as image:
        return _to_rgb_array(image)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask image as bool ``(H, W)``: a pixel is inside where any of its channels (alpha
    included) is non-zero. Values count as stored (a 16-bit mask of 0s and 1s keeps its 1s);
    palette images are looked up in their palette first."""
    with _opened_image(path) as image:
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        values = np.asarray(image)
    return (values.max(axis=2) if values.ndim == 3 else values) > 0


@contextmanager
def _opened_image(path: str | os.PathLike) -> Iterator[Image.Image]:
    """The loaded, EXIF-oriented first frame of an image file; any failure reading it (here or in
    the caller's block) becomes an :class:`InputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {'is a folder, not an image' if path.is_dir() else 'file not found'}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                yield ImageOps.exif_transpose(opened)
    except Image.DecompressionBombError as error:
        raise InputError(f"{path}: image too large to read safely ({error})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
        raise InputError(f"{path}: not a readable image ({type(error).__name__}: {error})") from None


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """A loaded Pillow image of any mode -> ``(H, W, 3)`` uint8."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _TRANSPARENT_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, rgba).convert("RGB"))
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        gray = np.clip(np.rint(values * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.array(image.convert("RGB"))


# ---------------------------------------------------------------------------------- writing
def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as a PNG atomically (temporary file + rename).

    ``array`` is ``(H, W)`` grayscale, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, of dtype
    ``uint8`` or ``bool``; a boolean mask is written as 0 / 255 so that it is visible in a viewer.
    """
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8 or bool, got {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"write_png expects (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


# ---------------------------------------------------------------------------------- overlays
PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (220, 190, 255),
        (170, 110, 40),
        (128, 0, 0),
        (170, 255, 195),
        (128, 128, 0),
        (0, 0, 128),
    ],
    dtype=np.float64,
)
"""Instance colours, cycled (Sasha Trubetskoy's distinct colours)."""


def overlay(
    image: np.ndarray,
    visible_masks: np.ndarray,
    amodal_masks: np.ndarray,
    visible_alpha: float = 0.55,
    hatch_period: int = 6,
    scale: int = 1,
) -> np.ndarray:
    """Draw instances on an image so that what is seen and what is completed look different.

    With ``scale > 1`` the image and the masks are first enlarged ``scale`` times (nearest
    neighbour), so that the hatching and outlines of a small image stay readable.

    For instance ``i`` (colour ``PALETTE[i % 16]``):

    - the VISIBLE part (``visible``) gets a solid tint: ``(1 - a) * pixel + a * colour`` with
      ``a = visible_alpha``;
    - the OCCLUDED part (``amodal and not visible``, the part A3D completes) gets diagonal
      hatching: pixels with ``(x + y) % hatch_period < hatch_period // 3`` take the colour, the
      others keep the image;
    - the AMODAL outline (amodal pixels with a 4-neighbour outside the amodal mask or on the
      image border) takes the colour.

    Instances are drawn in order, later ones on top. Masks are boolean, ``uint8`` or
    probabilities (``> 0.5`` counts).

    Args:
        image: ``(H, W, 3)`` uint8.
        visible_masks: ``(N, H, W)``.
        amodal_masks: ``(N, H, W)``.

    Returns:
        ``(scale * H, scale * W, 3)`` uint8, a new array.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"overlay expects an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    visible = _binary_masks(visible_masks, image.shape[:2], "visible_masks")
    amodal = _binary_masks(amodal_masks, image.shape[:2], "amodal_masks")
    if len(visible) != len(amodal):
        raise ValueError(f"overlay got {len(visible)} visible masks but {len(amodal)} amodal masks")
    if not 0.0 <= visible_alpha <= 1.0:
        raise ValueError(f"visible_alpha must be in [0, 1], got {visible_alpha}")
    if hatch_period < 3:
        raise ValueError(f"hatch_period must be at least 3, got {hatch_period}")
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
        visible, amodal = (masks.repeat(scale, axis=1).repeat(scale, axis=2) for masks in (visible, amodal))

    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    hatch = (xs + ys) % hatch_period < hatch_period // 3
    canvas = image.astype(np.float64)
    for index, (seen, whole) in enumerate(zip(visible, amodal)):
        colour = PALETTE[index % len(PALETTE)]
        canvas[seen] = (1.0 - visible_alpha) * canvas[seen] + visible_alpha * colour
        canvas[whole & ~seen & hatch] = colour
        canvas[_outline(whole)] = colour
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def _binary_masks(masks: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[1:] != size:
        raise ValueError(f"overlay expects {name} of shape (N, {size[0]}, {size[1]}), got {masks.shape}")
    return masks > 0.5 if masks.dtype != bool else masks


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` ``(H, W)`` bool with a 4-neighbour outside it (outside the image counts)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


# ---------------------------------------------------------------------------------- finding
def find_images(inputs: str | os.PathLike | Sequence[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """Expand image arguments into a sorted, duplicate-free list of files.

    Each input is one of:

    - a FILE: taken as it is, whatever its ending (reading it decides whether it is an image);
    - a FOLDER: the files in it whose ending is in :data:`IMAGE_EXTENSIONS` (sub-folders too
      with ``recursive``), sorted by path;
    - a GLOB pattern (``*``, ``?``, ``[``; ``**`` crosses folders): the matching files, sorted.

    A missing path, or a folder/pattern that matches no image, raises
    :class:`~a3d_core.errors.InputError` naming it. Order follows the inputs; a file named twice
    is listed once.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: dict[Path, None] = {}
    for argument in inputs:
        for path in _expand(str(argument), recursive):
            found.setdefault(path, None)
    return list(found)


def _expand(argument: str, recursive: bool) -> Iterable[Path]:
    path = Path(argument)
    if path.is_file():
        return [path]
    if path.is_dir():
        candidates = path.rglob("*") if recursive else path.iterdir()
        images = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise InputError(f"{path}: no images in this folder (looked for {', '.join(IMAGE_EXTENSIONS)})")
        return images
    if GLOB_CHARACTERS & set(argument):
        matches = sorted(Path(p) for p in glob.glob(argument, recursive=True) if os.path.isfile(p))
        if not matches:
            raise InputError(f"{argument}: no files match this pattern")
        return matches
    raise InputError(f"{path}: file or folder not found")
