import os

import numpy as np
import pytest
from PIL import Image

from a3d_core.errors import InputError
from a3d_core.io.images import find_images, overlay, read_image, read_mask, write_png


def test_rgb_png_is_read_exactly(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    image = read_image(tmp_path / "rgb.png")
    assert image.dtype == np.uint8 and np.array_equal(image, pixels)
    assert image.flags.writeable


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque: its colour
    rgba[0, 1] = (10, 20, 30, 0)  # transparent: white
    rgba[0, 2] = (0, 0, 200, 128)  # half: 255 + (c - 255) * 128 / 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    image = read_image(tmp_path / "rgba.png")
    assert image.shape == (2, 3, 3)
    assert image[0, 0].tolist() == [10, 20, 30]
    assert image[0, 1].tolist() == [255, 255, 255]
    half = [round(255 + (c - 255) * 128 / 255) for c in (0, 0, 200)]
    assert np.abs(image[0, 2].astype(int) - half).max() <= 1


def test_grayscale_is_repeated_over_channels(tmp_path):
    gray = np.array([[0, 100], [200, 255]], np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    image = read_image(tmp_path / "gray.png")
    assert image.shape == (2, 2, 3)
    assert all(np.array_equal(image[..., c], gray) for c in range(3))


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    deep = np.array([[0, 65535], [257 * 100, 257 * 7]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    image = read_image(tmp_path / "deep.png")
    assert image[..., 0].tolist() == [[0, 255], [100, 7]]
    assert np.array_equal(image[..., 0], image[..., 2])


def test_exif_orientation_is_applied(tmp_path):
    # 20 wide, 10 high: left half red, right half blue. Orientation 6 = "rotate 90 degrees
    # clockwise to display", so the shown image is 10 wide, 20 high, red on top.
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = (255, 0, 0)
    pixels[:, 10:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "rotated.jpg")
    assert image.shape == (20, 10, 3)
    assert image[2, 5, 0] > 200 and image[2, 5, 2] < 60
    assert image[17, 5, 2] > 200 and image[17, 5, 0] < 60


def test_truncated_jpeg_and_garbage_raise_input_error_naming_the_file(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.jpg: not a readable image"):
        read_image(tmp_path / "cut.jpg")
    (tmp_path / "noise.png").write_bytes(b"\x89PNG not really an image")
    with pytest.raises(InputError, match=r"noise\.png: not a readable image"):
        read_image(tmp_path / "noise.png")
    with pytest.raises(InputError, match=r"absent\.png: file not found"):
        read_image(tmp_path / "absent.png")
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)


def test_large_images_read_without_warning_up_to_pillows_hard_limit(tmp_path, monkeypatch, recwarn):
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; shrink the limit to test both.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (40, 40), (1, 2, 3)).save(tmp_path / "large.png")  # 1600 pixels
    Image.new("RGB", (50, 50)).save(tmp_path / "huge.png")  # 2500 pixels
    assert read_image(tmp_path / "large.png").shape == (40, 40, 3)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    with pytest.raises(InputError, match=r"huge\.png: image too large"):
        read_image(tmp_path / "huge.png")


def test_masks_keep_their_stored_values_any_channel_alpha_included(tmp_path):
    labels = np.array([[0, 1], [1, 0]], np.uint16)  # 16-bit 0/1 labels: no scaling to 8 bits
    Image.fromarray(labels).save(tmp_path / "labels.png")
    assert read_mask(tmp_path / "labels.png").tolist() == [[False, True], [True, False]]
    cutout = np.zeros((1, 3, 4), np.uint8)
    cutout[0, 1, 3] = 255  # opaque black: inside through its alpha
    cutout[0, 2, 0] = 9  # transparent red: inside through its colour
    Image.fromarray(cutout, "RGBA").save(tmp_path / "cutout.png")
    assert read_mask(tmp_path / "cutout.png").tolist() == [[False, True, True]]
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    palette.putpalette([0, 0, 0, 0, 0, 70] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    assert read_mask(tmp_path / "palette.png").tolist() == [[False, True]]


def test_masks_are_read_oriented_and_fail_in_one_line(tmp_path):
    pixels = np.zeros((10, 20), np.uint8)
    pixels[:, :10] = 255  # left half; orientation 6 shows it on top
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    mask = read_mask(tmp_path / "rotated.jpg")
    assert mask.shape == (20, 10) and mask[2, 5] and not mask[17, 5]
    (tmp_path / "noise.png").write_bytes(b"\x89PNG not really an image")
    with pytest.raises(InputError, match=r"noise\.png: not a readable image"):
        read_mask(tmp_path / "noise.png")
    with pytest.raises(InputError, match=r"absent\.png: file not found"):
        read_mask(tmp_path / "absent.png")


def test_write_png_round_trips_and_leaves_no_temporary_file(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    write_png(tmp_path / "out" / "rgb.png", rgb)
    assert np.array_equal(read_image(tmp_path / "out" / "rgb.png"), rgb)
    mask = np.array([[True, False], [False, True]])
    write_png(tmp_path / "out" / "mask.png", mask)
    assert np.asarray(Image.open(tmp_path / "out" / "mask.png")).tolist() == [[255, 0], [0, 255]]
    assert sorted(os.listdir(tmp_path / "out")) == ["mask.png", "rgb.png"]
    with pytest.raises(ValueError, match="shape"):
        write_png(tmp_path / "bad.png", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="uint8 or bool"):
        write_png(tmp_path / "bad.png", np.zeros((2, 2), np.float32))


def test_overlay_tints_visible_hatches_occluded_and_outlines_amodal():
    image = np.full((12, 12, 3), 100, np.uint8)
    amodal = np.zeros((1, 12, 12), bool)
    amodal[0, 2:10, 2:10] = True
    visible = np.zeros((1, 12, 12), bool)
    visible[0, 2:10, 2:6] = True  # left half seen, right half hidden
    drawn = overlay(image, visible, amodal, visible_alpha=0.5, hatch_period=6)
    red = np.array([230, 25, 75])  # first palette colour

    assert drawn[0, 0].tolist() == [100, 100, 100]  # outside: untouched
    assert drawn[2, 2].tolist() == red.tolist()  # amodal outline
    assert drawn[2, 9].tolist() == red.tolist()
    assert drawn[5, 4].tolist() == np.rint(0.5 * 100 + 0.5 * red).tolist()  # visible: tint
    assert (7 + 5) % 6 < 2 and drawn[5, 7].tolist() == red.tolist()  # occluded, on a hatch line
    assert (6 + 5) % 6 >= 2 and drawn[5, 6].tolist() == [100, 100, 100]  # occluded, between lines
    assert np.array_equal(overlay(image, visible[:0], amodal[:0]), image)
    with pytest.raises(ValueError, match="visible masks"):
        overlay(image, visible, np.concatenate([amodal, amodal]))


def test_overlay_scale_draws_on_the_enlarged_image():
    image = np.full((4, 5, 3), 100, np.uint8)
    image[0, 0] = 7
    amodal = np.zeros((1, 4, 5), bool)
    amodal[0, 1:4, 1:4] = True
    visible = amodal.copy()
    visible[0, :, 3] = False
    drawn = overlay(image, visible, amodal, scale=3)
    enlarged = image.repeat(3, axis=0).repeat(3, axis=1)

    assert drawn.shape == (12, 15, 3)
    assert np.array_equal(drawn, overlay(enlarged, visible.repeat(3, 1).repeat(3, 2), amodal.repeat(3, 1).repeat(3, 2)))
    assert drawn[:3, :3].tolist() == [[[7, 7, 7]] * 3] * 3  # a pixel becomes a 3 x 3 block
    # interior of the visible part
    assert drawn[4, 4].tolist() == np.rint(0.45 * 100 + 0.55 * np.array([230, 25, 75])).tolist()
    with pytest.raises(ValueError, match="scale"):
        overlay(image, visible, amodal, scale=0)


def test_find_images_expands_files_folders_and_patterns(tmp_path):
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jpeg").write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()

    assert find_images(tmp_path) == [tmp_path / "a.JPG", tmp_path / "b.png"]
    assert find_images(tmp_path, recursive=True) == [
        tmp_path / "a.JPG",
        tmp_path / "b.png",
        tmp_path / "sub" / "c.jpeg",
    ]
    assert find_images(str(tmp_path / "**" / "*.jpeg")) == [tmp_path / "sub" / "c.jpeg"]
    assert find_images([tmp_path / "notes.txt", tmp_path / "b.png", tmp_path]) == [
        tmp_path / "notes.txt",
        tmp_path / "b.png",
        tmp_path / "a.JPG",
    ]
    with pytest.raises(InputError, match="missing.png: file or folder not found"):
        find_images(tmp_path / "missing.png")
    with pytest.raises(InputError, match="no files match"):
        find_images(str(tmp_path / "*.gif"))
    with pytest.raises(InputError, match="no images in this folder"):
        find_images(empty)
