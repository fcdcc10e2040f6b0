"""Viewpoint protocols: which cameras training sees and which only the test objects show.

The paper's central claim (sections 1 and 5) is that a 3D shape prior completes objects seen from
viewpoints that were not in the training set, where 2D amodal methods fail. Testing it needs test
cameras whose silhouettes no training camera shows. A camera is ``(elevation, view id)``: view
``v`` is Kato's azimuth ``-15 v`` degrees (:mod:`a3d_core.geometry`).

**The mirror relation.** The camera at azimuth ``a`` sees the left-right mirror image of what the
camera at ``-a`` sees of the mirrored object. For a left-right symmetric object (most ShapeNet
objects, all built-in shapes but some chair and sofa variants) the silhouette at view ``v`` is
therefore the horizontal flip of the silhouette at view ``(24 - v) mod 24``. A held-out azimuth
wedge whose mirror is in training is not new: a network that flips its input (or is trained with
flips) has seen it.

**The twin relation.** The camera at azimuth ``a`` and the one at ``180 - a`` (view ``12 - v``,
front and back swapped) see near-identical silhouettes of most objects: an object seen from the
front-left and from the back-left shows the same outline up to its front/back asymmetry (on the
built-in library at 32 px, tests/data/test_viewpoints.py checks that a view overlaps its twin
more than its 90-degree turn). So every held-out set of azimuths here is closed under the mirror
AND the twin (and so under the 180-degree turn, their composition, :func:`closed_views`):
holding out view 3 (azimuth -45) also holds out 21 (+45), 9 (-135) and 15 (+135).

Protocols (they combine; each writes its own test split of the test objects, see
:data:`PROTOCOL_SPLITS`):

* ``holdout_views``: an azimuth wedge (and its mirror) at the training elevations -> ``test_newview``;
* ``holdout_elevations``: elevations training never sees, at the seen azimuths -> ``test_elevation``;
* ``holdout_pairs``: unseen combinations: every elevation and every azimuth appears in training,
  but these ``(elevation, view)`` pairs (closed like the views) only in ``test_combination``;
* ``farview``: far views -> ``test_farview``: cameras each at least ``farview_degrees`` (45) from
  every training camera and from their mirrors and twins (the angle between the view
  directions), e.g. from the side and from above when training sees only the front and back.
  A far camera takes precedence over the other protocols' splits.

A camera at a held-out elevation AND a held-out azimuth belongs to no protocol and is not
rendered. Training and validation objects are rendered at the training cameras only (the ``val``
split stays on training viewpoints: checkpoints and hyper-parameters are chosen there); the test
objects at every camera, their training cameras forming the ``test`` split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from a3d_core.errors import InputError
from a3d_core.geometry import ELEVATION_RANGE_DEG, KATO_AZIMUTH_STEP_DEG, KATO_ELEVATION_DEG, KATO_NUM_VIEWS

SEEN_SPLIT = "test"
NEW_VIEW_SPLIT = "test_newview"
ELEVATION_SPLIT = "test_elevation"
COMBINATION_SPLIT = "test_combination"
FARVIEW_SPLIT = "test_farview"
PROTOCOL_SPLITS = (NEW_VIEW_SPLIT, ELEVATION_SPLIT, COMBINATION_SPLIT, FARVIEW_SPLIT)
"""The held-out test splits, one per protocol (in this order in every listing)."""


def mirror_view(view_id: int) -> int:
    """The view whose azimuth is the negative of ``view_id``'s: ``(24 - v) mod 24``."""
    return (KATO_NUM_VIEWS - int(view_id)) % KATO_NUM_VIEWS


def twin_view(view_id: int) -> int:
    """The front/back near-twin: the view whose azimuth is ``180 -`` ``view_id``'s, ``(12 - v) mod 24``."""
    return (KATO_NUM_VIEWS // 2 - int(view_id)) % KATO_NUM_VIEWS


def closed_views(view_ids: Iterable[int]) -> tuple[int, ...]:
    """``view_ids`` with every mirror and twin added (so every 180-degree turn too), sorted."""
    views = {int(v) for v in view_ids}
    return tuple(sorted(views | {relative(v) for v in views for relative in (mirror_view, twin_view, _turned)}))


def _turned(view_id: int) -> int:
    """The view 180 degrees around: the mirror of the twin."""
    return mirror_view(twin_view(view_id))


@dataclass(frozen=True)
class Camera:
    """One camera of a protocol: ``elevation`` in degrees and Kato's azimuth index ``view_id``."""

    elevation: float
    view_id: int

    @property
    def azimuth(self) -> float:
        """Degrees: ``-15 * view_id`` (Kato's convention)."""
        return KATO_AZIMUTH_STEP_DEG * self.view_id

    def angle_to(self, other: "Camera") -> float:
        """Degrees between the two view directions (both cameras look at the origin)."""
        e1, a1, e2, a2 = (math.radians(x) for x in (self.elevation, self.azimuth, other.elevation, other.azimuth))
        cosine = math.cos(e1) * math.cos(e2) * math.cos(a1 - a2) + math.sin(e1) * math.sin(e2)
        return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))

    def relatives(self) -> list["Camera"]:
        """This camera, its mirror, its twin and its 180-degree turn, at its elevation."""
        return [Camera(self.elevation, v) for v in closed_views([self.view_id])]


FARVIEW_DEGREES = 45.0
"""The least angle between a far view and every training camera, its mirror and its twin."""


@dataclass(frozen=True)
class ViewProtocol:
    """The cameras of a dataset and which split each belongs to; see the module docstring.

    Attributes:
        view_ids: the Kato view ids (azimuths) rendered, at every elevation.
        elevations: the training elevations (degrees).
        holdout_views: view ids held out at every elevation; closed under :func:`mirror_view`
            and :func:`twin_view` by :meth:`build`.
        holdout_elevations: elevations (degrees) only the test objects show.
        holdout_pairs: ``(elevation, view id)`` pairs only the test objects show; closed likewise.
        farview: ``(elevation, view id)`` far cameras only the test objects show (``test_farview``).
    """

    view_ids: tuple[int, ...]
    elevations: tuple[float, ...] = (KATO_ELEVATION_DEG,)
    holdout_views: tuple[int, ...] = ()
    holdout_elevations: tuple[float, ...] = ()
    holdout_pairs: tuple[tuple[float, int], ...] = ()
    farview: tuple[tuple[float, int], ...] = ()

    @classmethod
    def build(
        cls,
        view_ids: Sequence[int],
        elevations: Sequence[float] = (KATO_ELEVATION_DEG,),
        holdout_views: Iterable[int] = (),
        holdout_elevations: Sequence[float] = (),
        holdout_pairs: Iterable[tuple[float, int]] = (),
        elevation_range: tuple[float, float] = ELEVATION_RANGE_DEG,
        farview: Iterable[tuple[float, int]] = (),
        farview_degrees: float = FARVIEW_DEGREES,
    ) -> "ViewProtocol":
        """A checked protocol: held-out azimuths and pairs closed under the mirror and the twin,
        restricted to ``view_ids``. Raises :class:`InputError` (before anything is rendered) for
        held-out sets that overlap, elevations outside ``elevation_range`` (the viewpoint
        estimator's: it could not predict them), a protocol that leaves training or a test split
        empty, or a far view closer than ``farview_degrees`` to a training camera, its mirror or
        its twin."""
        views = tuple(sorted({int(v) for v in view_ids}))
        if not views or not all(0 <= v < KATO_NUM_VIEWS for v in views):
            raise InputError(f"view ids must be in 0..{KATO_NUM_VIEWS - 1}, got {list(view_ids)}")
        elevations = tuple(float(e) for e in elevations)
        held_elevations = tuple(float(e) for e in holdout_elevations)
        if not elevations:
            raise InputError("--elevations: at least one training elevation is needed")
        low, high = elevation_range
        far = tuple(dict.fromkeys((float(e), int(v)) for e, v in farview))
        outside = [e for e in (*elevations, *held_elevations, *(e for e, _ in far)) if not low < e < high]
        if outside:
            raise InputError(
                f"elevations {outside} are outside the viewpoint estimator's range ({low:g}, {high:g}) degrees"
            )
        for name, values in (("--elevations", elevations), ("--holdout-elevations", held_elevations)):
            if len(set(values)) != len(values):
                raise InputError(f"{name}: an elevation is listed twice ({', '.join(f'{e:g}' for e in values)})")
        overlap = sorted(set(elevations) & set(held_elevations))
        if overlap:
            raise InputError(
                f"--holdout-elevations {', '.join(f'{e:g}' for e in overlap)} are also training elevations"
            )

        requested = {int(v) for v in holdout_views}
        held_views = tuple(v for v in closed_views(requested) if v in views)
        if requested and not held_views:
            raise InputError(f"--holdout-views {sorted(requested)} selects none of the views used ({list(views)})")
        pairs = set()
        for elevation, view in holdout_pairs:
            elevation, view = float(elevation), int(view)
            if elevation not in elevations:
                raise InputError(
                    f"--holdout-pairs {elevation:g}:{view}: {elevation:g} is not a training elevation "
                    f"({', '.join(f'{e:g}' for e in elevations)})"
                )
            for member in closed_views([view]):
                if member in held_views:
                    raise InputError(
                        f"--holdout-pairs {elevation:g}:{view} overlaps --holdout-views (view {member} is held out)"
                    )
                if member in views:
                    pairs.add((elevation, member))
        if holdout_pairs and not pairs:
            raise InputError("--holdout-pairs selects none of the views used")
        protocol = cls(views, elevations, held_views, held_elevations, tuple(sorted(pairs)))
        trained = protocol.training_cameras
        if not trained:
            raise InputError("the held-out views leave no camera to train on")
        if pairs:
            unseen_views = set(views) - set(held_views) - {c.view_id for c in trained}
            unseen_elevations = set(elevations) - {c.elevation for c in trained}
            if unseen_views or unseen_elevations:
                raise InputError(
                    "--holdout-pairs must leave every training elevation and azimuth in training "
                    f"(left none of views {sorted(unseen_views)}, elevations {sorted(unseen_elevations)})"
                )
        if far:
            protocol = replace(protocol, farview=_checked_farview(far, views, trained, farview_degrees))
        return protocol

    @property
    def cameras(self) -> list[Camera]:
        """Every camera of the protocol that some split uses, elevation-major."""
        far_elevations = (e for e, _ in self.farview)
        elevations = dict.fromkeys((*self.elevations, *self.holdout_elevations, *far_elevations))
        every = (Camera(e, v) for e in elevations for v in self.view_ids)
        return [camera for camera in every if self.split_of(camera) is not None]

    @property
    def training_cameras(self) -> list[Camera]:
        """The cameras of the train and val objects (and of the ``test`` split)."""
        return [c for c in self.cameras if self.split_of(c) == SEEN_SPLIT]

    def split_of(self, camera: Camera) -> str | None:
        """``"test"`` for a training camera, a :data:`PROTOCOL_SPLITS` name for a held-out one,
        ``None`` for a camera no protocol uses (held-out elevation and held-out azimuth, or an
        elevation only far views have)."""
        if (camera.elevation, camera.view_id) in self.farview:
            return FARVIEW_SPLIT
        if camera.elevation not in (*self.elevations, *self.holdout_elevations):
            return None
        held_view = camera.view_id in self.holdout_views
        if camera.elevation in self.holdout_elevations:
            return None if held_view else ELEVATION_SPLIT
        if held_view:
            return NEW_VIEW_SPLIT
        if (camera.elevation, camera.view_id) in self.holdout_pairs:
            return COMBINATION_SPLIT
        return SEEN_SPLIT

    @property
    def test_splits(self) -> list[str]:
        """The test splits this protocol writes: ``test`` and the held-out splits it defines."""
        used = {self.split_of(c) for c in self.cameras}
        return [SEEN_SPLIT, *(s for s in PROTOCOL_SPLITS if s in used)]

    def cameras_of_split(self, split: str) -> list[Camera]:
        return [c for c in self.cameras if self.split_of(c) == split]

    def as_dict(self) -> dict:
        """JSON-able, for the dataset manifest."""
        return {
            "view_ids": list(self.view_ids),
            "elevations": list(self.elevations),
            "holdout_views": list(self.holdout_views),
            "holdout_elevations": list(self.holdout_elevations),
            "holdout_pairs": [list(p) for p in self.holdout_pairs],
            "farview": [list(p) for p in self.farview],
            "cameras": {
                split: [[c.elevation, c.view_id] for c in self.cameras_of_split(split)] for split in self.test_splits
            },
        }


def _checked_farview(
    far: tuple[tuple[float, int], ...], views: tuple[int, ...], trained: list[Camera], degrees: float
) -> tuple[tuple[float, int], ...]:
    """``far`` sorted, each checked to be a used view at least ``degrees`` from every training
    camera, its mirror and its twin (a one-line :class:`InputError` naming the nearest otherwise)."""
    references = sorted(
        {relative for camera in trained for relative in camera.relatives()}, key=lambda c: (c.elevation, c.view_id)
    )
    for elevation, view in far:
        if view not in views:
            raise InputError(f"far view {elevation:g}:{view}: view {view} is not among the views used ({list(views)})")
        camera = Camera(elevation, view)
        nearest = min(references, key=camera.angle_to)
        if camera.angle_to(nearest) < degrees - 1e-6:
            raise InputError(
                f"far view {elevation:g}:{view} is {camera.angle_to(nearest):.1f} degrees from "
                f"{nearest.elevation:g}:{nearest.view_id}, a training camera or its mirror or twin "
                f"(at least {degrees:g} needed)"
            )
    return tuple(sorted(far))


def parse_numbers(text: str | None, option: str) -> tuple[float, ...]:
    """``"0,30,60"`` -> ``(0.0, 30.0, 60.0)``; a one-line :class:`InputError` naming ``option`` otherwise."""
    if text is None or not text.strip():
        return ()
    try:
        return tuple(float(piece) for piece in text.split(","))
    except ValueError:
        raise InputError(f"{option}: expected comma-separated degrees such as 0,30,60, got {text!r}") from None


def parse_view_range(text: str, option: str) -> tuple[int, ...]:
    """``"18-23"`` -> ``(18, ..., 23)``, ``"6"`` -> ``(6,)``: Kato view ids, FIRST <= LAST."""
    pieces = text.strip().split("-")
    try:
        first, last = (int(pieces[0]), int(pieces[-1])) if len(pieces) in (1, 2) else (None, None)
    except ValueError:
        first = last = None
    if first is None or not 0 <= first <= last < KATO_NUM_VIEWS:
        raise InputError(
            f"{option}: expected FIRST-LAST view ids within 0..{KATO_NUM_VIEWS - 1} such as 18-23, got {text!r}"
        )
    return tuple(range(first, last + 1))


def parse_pairs(text: str | None, option: str = "--holdout-pairs") -> tuple[tuple[float, int], ...]:
    """``"0:4-8,30:14"`` -> ``((0.0, 4), ..., (0.0, 8), (30.0, 14))``: ELEVATION:VIEWS entries."""
    if text is None or not text.strip():
        return ()
    pairs = []
    for entry in text.split(","):
        elevation, separator, views = entry.partition(":")
        try:
            degrees = float(elevation)
        except ValueError:
            separator = ""
        if not separator:
            raise InputError(f"{option}: expected ELEVATION:FIRST-LAST entries such as 0:4-8,30:16-20, got {entry!r}")
        pairs += [(degrees, view) for view in parse_view_range(views, option)]
    return tuple(pairs)
