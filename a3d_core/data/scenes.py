"""Multi-object scenes with exact amodal ground truth: the built-in detection dataset (issue 5).

Two parts, composed by :mod:`a3d_core.data.prepare_scenes`:

1. **Object views** (:func:`render_object_views`): a shape-library object rendered alone at random
   poses (azimuth, elevation, distance) by :class:`a3d_core.data.render.MeshRenderer`, each view
   cropped to its silhouette's box. A view's silhouette is the object's complete, unoccluded
   outline: its amodal mask.
2. **Composition** (:func:`compose_scene`): several views scaled and placed on a procedural
   background (:mod:`a3d_core.data.backgrounds`) and painted back to front (painter's order by a
   random depth). Objects are placed front to back, so when an object is placed everything in
   front of it is already known and its masks are final:

   * amodal mask = its whole scaled silhouette at its position, clipped to the image (COCO masks
     live in the image; an object may leave the image by at most ``max_truncation`` of its area),
   * visible mask = amodal mask minus the union of the amodal masks of the objects in front.

   Each object behind the front one draws a target occlusion rate; among several candidate
   positions (some anchored on the objects already placed, so that overlaps are common, as in
   D2SA) the one closest to the target is kept, provided at least ``min_visible_fraction`` of the
   object stays visible and its visible part is not only slivers. An object with no acceptable
   position is dropped. The composite is a plain alpha blend, without shadows.

Every random draw comes from the ``numpy`` Generator passed in, so a scene is a pure function of
its generator state and its pool of views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from a3d_core.data.backgrounds import random_background
from a3d_core.data.masks import component_areas, erode

# ------------------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class PoseSettings:
    """How object views are rendered.

    elevation_range, distance_range: uniform ranges of the camera's elevation (degrees) and
        distance; the azimuth is uniform in [0, 360). The smallest distance must keep every
        object (unit bounding-box diagonal, so within 0.5 of the origin) inside the field of
        view, so no silhouette is cut by the render's border.
    fov_degrees: the perspective lens (Kato's 30 degrees).
    """

    elevation_range: tuple[float, float] = (5.0, 45.0)
    distance_range: tuple[float, float] = (2.0, 2.4)
    fov_degrees: float = 30.0

    def __post_init__(self) -> None:
        low, high = self.elevation_range
        if not -90.0 < low <= high < 90.0:
            raise ValueError(f"elevation_range must satisfy -90 < low <= high < 90, got {self.elevation_range}")
        if not 0.0 < self.fov_degrees < 180.0:
            raise ValueError(f"fov_degrees must be in (0, 180), got {self.fov_degrees}")
        nearest_safe = 0.5 / math.sin(math.radians(self.fov_degrees / 2))
        low, high = self.distance_range
        if not nearest_safe < low <= high:
            raise ValueError(
                f"distance_range {self.distance_range}: the nearest distance must exceed {nearest_safe:.3f} "
                "so that a unit-diagonal object stays inside the field of view"
            )

    def pixels_per_unit(self, render_size: int, distance: float) -> float:
        """Render pixels per world unit at the origin for a camera at ``distance``."""
        return render_size / (2.0 * distance * math.tan(math.radians(self.fov_degrees / 2)))


@dataclass
class ObjectView:
    """One object rendered alone, cropped to its silhouette's box.

    rgb: ``(h, w, 3)`` float32, premultiplied by coverage (the render's background is black).
    silhouette: ``(h, w)`` bool, the complete outline of the object (its amodal mask).
    pixels_per_unit: render pixels per world unit, so that scenes scale every object alike.
    camera: ``{"elevation", "azimuth", "distance"}``, angles in degrees (metadata only).
    """

    category: str
    object_id: str
    view_id: int
    camera: dict[str, float]
    rgb: np.ndarray
    silhouette: np.ndarray
    pixels_per_unit: float


def random_viewpoints(rng: np.random.Generator, count: int, poses: PoseSettings) -> list[dict[str, float]]:
    """``count`` cameras ``{"elevation", "azimuth", "distance"}`` (degrees) drawn from ``poses``."""
    return [
        {
            "elevation": float(rng.uniform(*poses.elevation_range)),
            "azimuth": float(rng.uniform(0.0, 360.0)),
            "distance": float(rng.uniform(*poses.distance_range)),
        }
        for _ in range(count)
    ]


def render_object_views(
    mesh,
    category: str,
    object_id: str,
    cameras: Sequence[dict[str, float]],
    render_size: int,
    poses: PoseSettings,
) -> list[ObjectView]:
    """Render ``mesh`` (a :class:`a3d_core.data.shapes.TriangleMesh`) at ``cameras``, cropped views.

    Rendered without supersampling at ``render_size`` x ``render_size``: the composer resizes
    each view with a filtering resampler anyway, which anti-aliases it. torch and pytorch3d are
    imported here, not at module level, so that processes that only compose scenes never load them.
    """
    from a3d_core.data.render import MeshRenderer, RenderSettings
    from a3d_core.data.shapes import to_pytorch3d
    from a3d_core.geometry import Viewpoint

    renderer = MeshRenderer(RenderSettings(image_size=render_size, supersample=1, fov_degrees=poses.fov_degrees))
    viewpoint = Viewpoint.from_degrees(
        [c["elevation"] for c in cameras], [c["azimuth"] for c in cameras], [c["distance"] for c in cameras]
    )
    rendered = renderer(to_pytorch3d(mesh), viewpoint)
    rgb = rendered.rgb.permute(0, 2, 3, 1).numpy()
    silhouettes = rendered.silhouette.numpy()
    views = []
    for view_id, camera in enumerate(cameras):
        silhouette = silhouettes[view_id]
        rows = np.flatnonzero(silhouette.any(axis=1))
        cols = np.flatnonzero(silhouette.any(axis=0))
        if len(rows) == 0:
            raise ValueError(f"{object_id}: view {view_id} rendered nothing (camera {camera})")
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        views.append(
            ObjectView(
                category=category,
                object_id=object_id,
                view_id=view_id,
                camera=dict(camera),
                rgb=np.ascontiguousarray(rgb[view_id][box] * silhouette[box][..., None], dtype=np.float32),
                silhouette=np.ascontiguousarray(silhouette[box]),
                pixels_per_unit=poses.pixels_per_unit(render_size, camera["distance"]),
            )
        )
    return views


# ---------------------------------------------------------------------------------- composition


@dataclass(frozen=True)
class SceneSettings:
    """How views become a scene.

    width, height: image size in pixels.
    objects_min, objects_max: objects drawn per image (uniform); dropped ones make it fewer.
    size_range: an object's unit diagonal spans this fraction of ``min(width, height)`` at depth 1.
    depth_range: painter's depths are uniform here; size divides by depth, so objects behind
        are somewhat smaller, as under perspective.
    occluded_probability: chance that an object behind the front one aims at an occlusion rate
        drawn uniformly in ``target_occlusion`` (otherwise it aims at being unoccluded).
    min_visible_fraction: an object keeps at least this fraction of its amodal area visible.
    min_solid_fraction: the largest piece of the visible mask, eroded by one pixel, must hold at
        least this fraction of the amodal area (no object visible only through slivers).
    max_truncation: at most this fraction of an object's silhouette may lie outside the image.
    truncation_penalty: a candidate's score is ``|occlusion - target| + truncation_penalty *
        (fraction outside the image)``; the lowest acceptable score wins, so objects prefer to
        stay inside the image when the occlusion target allows.
    placement_candidates: positions tried per object.
    anchored_fraction: share of the candidates centred near an object already placed.
    """

    width: int = 256
    height: int = 192
    objects_min: int = 3
    objects_max: int = 6
    size_range: tuple[float, float] = (0.55, 0.85)
    depth_range: tuple[float, float] = (1.0, 1.4)
    occluded_probability: float = 0.95
    target_occlusion: tuple[float, float] = (0.05, 0.75)
    min_visible_fraction: float = 0.1
    min_solid_fraction: float = 0.05
    max_truncation: float = 0.3
    truncation_penalty: float = 0.5
    placement_candidates: int = 24
    anchored_fraction: float = 0.75

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError(f"image size must be at least 16x16, got {self.width}x{self.height}")
        if not 1 <= self.objects_min <= self.objects_max:
            raise ValueError(f"need 1 <= objects_min <= objects_max, got {self.objects_min} and {self.objects_max}")
        for name in ("size_range", "depth_range"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f"{name} must be an ordered range of positive numbers, got {getattr(self, name)}")
        low, high = self.target_occlusion
        if not 0.0 <= low <= high < 1.0:
            raise ValueError(f"target_occlusion must satisfy 0 <= low <= high < 1, got {self.target_occlusion}")
        for name in ("occluded_probability", "anchored_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.min_visible_fraction <= 1.0:
            raise ValueError(f"min_visible_fraction must be in (0, 1], got {self.min_visible_fraction}")
        if not 0.0 <= self.min_solid_fraction <= self.min_visible_fraction:
            raise ValueError(f"min_solid_fraction must be in [0, min_visible_fraction], got {self.min_solid_fraction}")
        if not 0.0 <= self.max_truncation < 1.0:
            raise ValueError(f"max_truncation must be in [0, 1), got {self.max_truncation}")
        if self.truncation_penalty < 0:
            raise ValueError(f"truncation_penalty must be non-negative, got {self.truncation_penalty}")
        if self.placement_candidates < 1:
            raise ValueError(f"placement_candidates must be at least 1, got {self.placement_candidates}")

    @property
    def largest_object_pixels(self) -> float:
        """The largest on-image span, in pixels, of an object's unit diagonal."""
        return self.size_range[1] / self.depth_range[0] * min(self.width, self.height)


@dataclass
class SceneInstance:
    """One placed object. Masks are bool ``(H, W)``; ``depth_order`` 0 is the front-most object."""

    view: ObjectView
    amodal: np.ndarray
    visible: np.ndarray
    depth: float
    depth_order: int


@dataclass
class Scene:
    """A composed image ``(H, W, 3)`` uint8, its instances front to back, and what was dropped."""

    image: np.ndarray
    background: str
    instances: list[SceneInstance]
    dropped: int = 0


@dataclass
class _Sprite:
    """A view resized for the scene: premultiplied ``rgb (h, w, 3)``, coverage ``alpha (h, w)``."""

    rgb: np.ndarray
    alpha: np.ndarray

    @property
    def silhouette(self) -> np.ndarray:
        return self.alpha >= 0.5


def _resize(view: ObjectView, scale: float) -> _Sprite:
    """Resample a view by ``scale`` with bilinear filtering (antialiased when shrinking)."""
    height, width = view.silhouette.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    channels = [np.ascontiguousarray(view.rgb[..., c]) for c in range(3)] + [view.silhouette.astype(np.float32)]
    # float32 "F" images
    resized = [np.asarray(Image.fromarray(c).resize(size, Image.Resampling.BILINEAR)) for c in channels]
    alpha = np.clip(resized[3], 0.0, 1.0)
    rgb = np.clip(np.stack(resized[:3], axis=-1), 0.0, alpha[..., None])
    return _Sprite(rgb, alpha)


@dataclass
class _Placement:
    """Where a sprite's top-left corner goes, and how well that position meets the target."""

    x: int
    y: int
    score: float


def _window(
    x: int, y: int, shape: tuple[int, int], width: int, height: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """(sprite slices, image slices) of the part of a sprite at ``(x, y)`` inside the image; None if none."""
    h, w = shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x0 >= x1 or y0 >= y1:
        return None
    return (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)), (slice(y0, y1), slice(x0, x1))


def _candidate_corners(
    rng: np.random.Generator, shape: tuple[int, int], occupied: np.ndarray, settings: SceneSettings
) -> list[tuple[int, int]]:
    """Top-left corners to try: some centred near occupied pixels, the rest anywhere."""
    h, w = shape
    occupied_pixels = np.flatnonzero(occupied)
    corners = []
    for _ in range(settings.placement_candidates):
        if len(occupied_pixels) and rng.random() < settings.anchored_fraction:
            anchor = int(occupied_pixels[rng.integers(len(occupied_pixels))])
            cy, cx = divmod(anchor, settings.width)
            cx += rng.uniform(-0.5, 0.5) * w
            cy += rng.uniform(-0.5, 0.5) * h
        else:
            cx, cy = rng.uniform(0, settings.width), rng.uniform(0, settings.height)
        corners.append((int(round(cx - w / 2)), int(round(cy - h / 2))))
    return corners


def _is_solid(visible: np.ndarray, amodal_area: int, settings: SceneSettings) -> bool:
    """Whether the visible part holds a piece thicker than slivers (see ``min_solid_fraction``)."""
    if settings.min_solid_fraction == 0:
        return True
    pieces = component_areas(erode(visible))
    return bool(pieces) and pieces[0] >= settings.min_solid_fraction * amodal_area


def _place(
    rng: np.random.Generator, sprite: _Sprite, occupied: np.ndarray, target: float, settings: SceneSettings
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The amodal mask ``(H, W)`` and top-left corner ``(x, y)`` of the best acceptable position, or None."""
    silhouette = sprite.silhouette
    full_area = int(silhouette.sum())
    if full_area == 0:
        return None
    scored = []
    for x, y in _candidate_corners(rng, silhouette.shape, occupied, settings):
        window = _window(x, y, silhouette.shape, settings.width, settings.height)
        if window is None:
            continue
        inside = silhouette[window[0]]
        inside_area = int(inside.sum())
        if inside_area == 0 or inside_area < (1.0 - settings.max_truncation) * full_area:
            continue
        occlusion = int((inside & occupied[window[1]]).sum()) / inside_area
        if 1.0 - occlusion < settings.min_visible_fraction:
            continue
        truncation = 1.0 - inside_area / full_area
        scored.append(_Placement(x, y, abs(occlusion - target) + settings.truncation_penalty * truncation))
    for placement in sorted(scored, key=lambda p: p.score):
        amodal = np.zeros_like(occupied)
        sprite_part, image_part = _window(placement.x, placement.y, silhouette.shape, settings.width, settings.height)
        amodal[image_part] = silhouette[sprite_part]
        if _is_solid(amodal & ~occupied, int(amodal.sum()), settings):
            return amodal, (placement.x, placement.y)
    return None


def _paint(canvas: np.ndarray, sprite: _Sprite, amodal_corner: tuple[int, int], settings: SceneSettings) -> None:
    """Alpha-blend a premultiplied sprite over ``canvas (H, W, 3)`` in place."""
    window = _window(*amodal_corner, sprite.alpha.shape, settings.width, settings.height)
    sprite_part, image_part = window
    alpha = sprite.alpha[sprite_part][..., None]
    canvas[image_part] = sprite.rgb[sprite_part] + (1.0 - alpha) * canvas[image_part]


def compose_scene(rng: np.random.Generator, views: Sequence[ObjectView], settings: SceneSettings) -> Scene:
    """One scene from a pool of object views (drawn without repetition when the pool allows).

    Returns instances front to back; ``visible`` masks of different instances never overlap and
    each ``visible`` lies inside its ``amodal`` mask.
    """
    if not views:
        raise ValueError("compose_scene needs at least one object view")
    count = int(rng.integers(settings.objects_min, settings.objects_max + 1))
    chosen = rng.choice(len(views), size=count, replace=count > len(views))
    depths = np.sort(rng.uniform(*settings.depth_range, size=count))
    background, background_kind = random_background(rng, settings.height, settings.width)

    occupied = np.zeros((settings.height, settings.width), dtype=bool)
    placed: list[tuple[SceneInstance, _Sprite, tuple[int, int]]] = []
    dropped = 0
    for view_index, depth in zip(chosen, depths):
        view = views[int(view_index)]
        span = rng.uniform(*settings.size_range) / depth * min(settings.width, settings.height)
        sprite = _resize(view, span / view.pixels_per_unit)
        wants_occlusion = bool(placed) and rng.random() < settings.occluded_probability
        target = float(rng.uniform(*settings.target_occlusion)) if wants_occlusion else 0.0
        placement = _place(rng, sprite, occupied, target, settings)
        if placement is None:
            dropped += 1
            continue
        amodal, corner = placement
        instance = SceneInstance(view, amodal, amodal & ~occupied, float(depth), len(placed))
        placed.append((instance, sprite, corner))
        occupied |= amodal

    canvas = background.copy()
    for _, sprite, corner in reversed(placed):
        _paint(canvas, sprite, corner, settings)
    image = np.clip(np.round(canvas * 255.0), 0, 255).astype(np.uint8)
    return Scene(image, background_kind, [instance for instance, _, _ in placed], dropped)
