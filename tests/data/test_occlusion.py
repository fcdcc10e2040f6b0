"""Synthetic occlusion: the rate stays in range, visible is a subset of amodal, seeds reproduce."""

import numpy as np
import pytest

from a3d_core.data.occlusion import OcclusionGenerator, OcclusionSettings

SIZE = 32


def disc(radius: float, centre=(16, 16)) -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    return (ys - centre[0]) ** 2 + (xs - centre[1]) ** 2 <= radius**2


def object_bank():
    """Two other 'objects': a green disc and a blue square, as (rgb, mask) renders."""
    square = np.zeros((SIZE, SIZE), bool)
    square[8:24, 6:26] = True
    green, blue = np.zeros((3, SIZE, SIZE), np.float32), np.zeros((3, SIZE, SIZE), np.float32)
    green[1], blue[2] = 1.0, 1.0
    return [(green * disc(9), disc(9)), (blue * square, square)]


def red_object(radius=10.0):
    amodal = disc(radius)
    rgb = np.zeros((3, SIZE, SIZE), np.float32)
    rgb[0][amodal] = 1.0
    return rgb, amodal


@pytest.mark.parametrize("low, high", [(0.1, 0.7), (0.3, 0.4), (0.0, 0.2)])
def test_rate_stays_in_range_and_masks_are_consistent(low, high):
    generator = OcclusionGenerator(OcclusionSettings(min_rate=low, max_rate=high), object_bank())
    rgb, amodal = red_object()
    kinds = set()
    for seed in range(40):
        sample = generator(rgb, amodal, np.random.default_rng(seed))
        kinds.add(sample.kind)
        assert low - 1e-9 <= sample.occlusion_rate <= high + 1e-9
        assert not (sample.visible & ~sample.amodal).any()  # visible is a subset of amodal
        np.testing.assert_array_equal(sample.visible, amodal & ~sample.occluder)
        np.testing.assert_array_equal(sample.amodal, amodal)
        assert sample.occlusion_rate == pytest.approx(1 - sample.visible.sum() / amodal.sum())
        np.testing.assert_array_equal(sample.rgb[:, ~sample.occluder], rgb[:, ~sample.occluder])  # untouched elsewhere
    assert len(kinds) >= 3  # objects, shapes and bars all occur


def test_minimum_visible_fraction_caps_the_rate():
    settings = OcclusionSettings(min_rate=0.1, max_rate=0.9, min_visible_fraction=0.6)
    generator = OcclusionGenerator(settings)
    rgb, amodal = red_object()
    rates = [generator(rgb, amodal, np.random.default_rng(seed)).occlusion_rate for seed in range(25)]
    assert max(rates) <= 0.4 + 1e-9 and min(rates) >= 0.1 - 1e-9


def test_same_seed_same_occlusion():
    generator = OcclusionGenerator(bank=object_bank())
    rgb, amodal = red_object()
    first, again = generator(rgb, amodal, np.random.default_rng(7)), generator(rgb, amodal, np.random.default_rng(7))
    np.testing.assert_array_equal(first.rgb, again.rgb)
    np.testing.assert_array_equal(first.occluder, again.occluder)
    assert first.occlusion_rate == again.occlusion_rate
    other = [generator(rgb, amodal, np.random.default_rng(seed)).occlusion_rate for seed in range(8, 12)]
    assert len(set(other + [first.occlusion_rate])) > 1


def test_object_occluders_paint_their_rendered_appearance():
    generator = OcclusionGenerator(OcclusionSettings(kind_weights=(1.0, 0.0, 0.0, 0.0), max_attempts=20), object_bank())
    rgb, amodal = red_object()
    for seed in range(10):
        sample = generator(rgb, amodal, np.random.default_rng(seed))
        if sample.kind != "object":
            continue
        painted = sample.rgb[:, sample.occluder]
        # every occluder pixel is pure green (the disc) or pure blue (the square), never the red target
        assert ((painted[1] == 1.0) | (painted[2] == 1.0)).all() and (painted[0] == 0.0).all()


def test_excluding_the_whole_bank_falls_back_to_shapes():
    generator = OcclusionGenerator(OcclusionSettings(kind_weights=(1.0, 1.0, 0.0, 0.0)), object_bank())
    rgb, amodal = red_object()
    kinds = {generator(rgb, amodal, np.random.default_rng(s), exclude=[0, 1]).kind for s in range(10)}
    assert "object" not in kinds


def test_half_plane_wall_hits_the_target_exactly_when_nothing_else_fits():
    rgb, amodal = red_object(radius=6)  # 113 pixels
    generator = OcclusionGenerator(OcclusionSettings(min_rate=0.5, max_rate=0.51, max_attempts=0))
    for seed in range(10):
        sample = generator(rgb, amodal, np.random.default_rng(seed))
        assert sample.kind == "wall"
        assert int((sample.occluder & amodal).sum()) in (57,)  # the only count with 0.5 <= k / 113 <= 0.51
    impossible = OcclusionGenerator(OcclusionSettings(min_rate=0.5, max_rate=0.5, max_attempts=0))
    with pytest.raises(ValueError, match="113 pixels cannot be occluded"):
        impossible(rgb, amodal, np.random.default_rng(0))


def test_bad_input_and_settings_are_rejected():
    with pytest.raises(ValueError, match="max_rate"):
        OcclusionSettings(min_rate=0.8, max_rate=0.2)
    with pytest.raises(ValueError, match="min_visible_fraction"):
        OcclusionSettings(min_rate=0.5, max_rate=0.6, min_visible_fraction=0.6)
    generator = OcclusionGenerator()
    with pytest.raises(ValueError, match="empty amodal"):
        generator(np.zeros((3, SIZE, SIZE), np.float32), np.zeros((SIZE, SIZE), bool), np.random.default_rng(0))
    with pytest.raises(ValueError, match="expected rgb"):
        generator(np.zeros((SIZE, SIZE, 3), np.float32), disc(5), np.random.default_rng(0))
