"""Procedural generators for the 13 ShapeNet categories of Kato's renders (paper 4.1).

Each generator draws one object from a parametric family: an assembly of convex parts
(``shapes.primitives``) whose proportions, part counts, styles and thicknesses vary per object,
so objects of one category differ while categories differ by shape. Chairs, tables, benches and
lamps have thin parts and holes (legs, slats, poles), the topology that a deformed sphere cannot
reproduce and where the paper's mIoU is lowest (chair 79.7, lamp 67.8; Table 1).

Frame: +Y up, the object's front faces -Z (towards Kato's view 0), long objects (vehicles,
rifles, benches, sofas) extend along X or Z. Objects are returned unnormalised; use
:func:`a3d_core.data.shapes.generate_shape` for a normalised one.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from a3d_core.data.shapes.mesh import TriangleMesh, merge_meshes
from a3d_core.data.shapes.primitives import box, circle, ellipsoid, frustum, loft, rotation_matrix, tapered_box

Generator = Callable[[np.random.Generator], TriangleMesh]

WOODS = ((0.55, 0.36, 0.2), (0.72, 0.53, 0.34), (0.4, 0.26, 0.15), (0.85, 0.72, 0.55))
PAINTS = (
    (0.8, 0.15, 0.12),
    (0.15, 0.3, 0.75),
    (0.9, 0.75, 0.15),
    (0.2, 0.6, 0.3),
    (0.85, 0.85, 0.85),
    (0.25, 0.25, 0.28),
    (0.95, 0.45, 0.1),
    (0.55, 0.2, 0.6),
)
FABRICS = ((0.55, 0.12, 0.15), (0.2, 0.35, 0.55), (0.45, 0.45, 0.42), (0.65, 0.55, 0.4), (0.25, 0.45, 0.3))
METALS = ((0.6, 0.62, 0.65), (0.3, 0.3, 0.32), (0.8, 0.8, 0.78))
DARK = np.array([0.08, 0.08, 0.09])
GLASS = np.array([0.18, 0.24, 0.32])


def _color(
    rng: np.random.Generator, palette: tuple[tuple[float, float, float], ...], jitter: float = 0.06
) -> np.ndarray:
    """A palette colour with a little per-object variation."""
    base = np.asarray(palette[rng.integers(len(palette))])
    return np.clip(base + rng.uniform(-jitter, jitter, 3), 0.0, 1.0)


def _legs(
    rng: np.random.Generator,
    width: float,
    depth: float,
    height: float,
    inset: float,
    thickness: float,
    color: np.ndarray,
    round_legs: bool,
    splay: float = 0.0,
) -> list[TriangleMesh]:
    """Four legs from the floor (y = 0) to ``height`` at the corners of a ``width x depth`` footprint."""
    parts = []
    for sx in (-1, 1):
        for sz in (-1, 1):
            top = np.array([sx * (width / 2 - inset), height, sz * (depth / 2 - inset)])
            foot = top + np.array([sx * splay, -height, sz * splay])
            if round_legs:
                parts.append(frustum(foot, top, thickness / 2, thickness / 2, color, segments=8))
            else:
                parts.append(box((top + foot) / 2, (thickness, height, thickness), color))
    return parts


def airplane(rng: np.random.Generator) -> TriangleMesh:
    """Fuselage ellipsoid, swept tapered wings, tail plane and fin, 0, 2 or 4 engines."""
    length = rng.uniform(0.9, 1.2)
    radius = rng.uniform(0.045, 0.075)
    body, wing_color = _color(rng, ((0.9, 0.9, 0.92), (0.75, 0.78, 0.8), (0.85, 0.85, 0.8))), _color(rng, METALS)
    span = rng.uniform(0.8, 1.25) * length
    root_chord, taper, sweep = rng.uniform(0.14, 0.26), rng.uniform(0.3, 0.7), rng.uniform(0.0, 0.3)
    wing_z, wing_y = rng.uniform(-0.12, 0.05), rng.uniform(-0.6, 0.3) * radius
    parts = [ellipsoid((0, 0, 0), (radius, radius, length / 2), body, segments=14)]

    def half_wings(half_span, chord, z, y, thickness, color):
        for side in (-1, 1):
            tip_front = z - chord / 2 + sweep * half_span / (span / 2) * 0.6
            ring = np.array(
                [
                    [0, z - chord / 2],
                    [side * half_span, tip_front],
                    [side * half_span, tip_front + chord * taper],
                    [0, z + chord / 2],
                ]
            )
            parts.append(loft(ring, ring, thickness, color, translation=(0, y, 0)))

    half_wings(span / 2, root_chord, wing_z, wing_y, 0.022, wing_color)
    tail_z = length * 0.42
    half_wings(span * rng.uniform(0.15, 0.22), root_chord * 0.55, tail_z, radius * 0.3, 0.015, wing_color)
    fin_height, fin_chord = rng.uniform(0.12, 0.22), root_chord * rng.uniform(0.6, 0.9)
    fin_ring = np.array(
        [
            [0, tail_z - fin_chord / 2],
            [fin_height, tail_z + fin_chord * 0.1],
            [fin_height, tail_z + fin_chord * 0.45],
            [0, tail_z + fin_chord / 2],
        ]
    )
    parts.append(
        loft(fin_ring, fin_ring, 0.016, wing_color, rotation=rotation_matrix("z", 90), translation=(0, radius * 0.5, 0))
    )
    engines_per_side = rng.choice([0, 1, 2], p=[0.25, 0.5, 0.25])
    for k in range(engines_per_side):
        offset = span / 2 * (0.3 + 0.3 * k)
        z = wing_z - root_chord * 0.5 + sweep * offset / (span / 2) * 0.6
        for side in (-1, 1):
            centre_y = wing_y - radius * 0.55
            parts.append(
                frustum(
                    (side * offset, centre_y, z - 0.1),
                    (side * offset, centre_y, z + 0.06),
                    radius * 0.45,
                    radius * 0.38,
                    DARK * 3,
                    segments=10,
                )
            )
    return merge_meshes(parts)


def bench(rng: np.random.Generator) -> TriangleMesh:
    """Long seat (one slab or slats), end frames or legs, optional slatted backrest."""
    width, depth, height = rng.uniform(1.2, 1.8), rng.uniform(0.32, 0.45), rng.uniform(0.38, 0.48)
    thickness = rng.uniform(0.03, 0.06)
    seat_color, frame_color = _color(rng, WOODS), _color(rng, METALS + WOODS)
    parts = []
    slats = int(rng.integers(3, 6)) if rng.random() < 0.5 else 1
    slat_depth = depth / slats
    for k in range(slats):
        z = -depth / 2 + slat_depth * (k + 0.5)
        gap = 0.012 if slats > 1 else 0.0
        parts.append(box((0, height - thickness / 2, z), (width, thickness, slat_depth - gap), seat_color))
    leg = rng.uniform(0.03, 0.06)
    inset = rng.uniform(0.05, 0.2)
    if rng.random() < 0.5:
        for side in (-1, 1):
            x = side * (width / 2 - inset)
            parts.append(box((x, (height - thickness) / 2, 0), (leg, height - thickness, depth * 0.95), frame_color))
    else:
        parts += _legs(rng, width, depth, height - thickness, inset, leg, frame_color, rng.random() < 0.5)
        parts.append(box((0, (height - thickness) * 0.25, 0), (width - 2 * inset, leg * 0.7, leg * 0.7), frame_color))
    if rng.random() < 0.65:
        back_height, rails = rng.uniform(0.3, 0.45), int(rng.integers(2, 4))
        tilt = rotation_matrix("x", -rng.uniform(5, 15))
        back_z = depth / 2 - leg / 2
        for side in (-1, 1):
            post_centre = np.array([side * (width / 2 - inset), height + back_height / 2, back_z])
            parts.append(box(post_centre, (leg, back_height, leg), frame_color, rotation=tilt))
        for k in range(rails):
            y = height + back_height * (0.35 + 0.6 * k / max(rails - 1, 1))
            parts.append(
                box(
                    (0, y, back_z + (y - height) * 0.15), (width * 0.96, back_height / (rails * 2.5), 0.025), seat_color
                )
            )
    return merge_meshes(parts)


def cabinet(rng: np.random.Generator) -> TriangleMesh:
    """A carcass with drawers or doors on the front, handles, and a plinth or short legs."""
    width, height, depth = rng.uniform(0.5, 1.1), rng.uniform(0.6, 1.4), rng.uniform(0.35, 0.55)
    body_color = _color(rng, WOODS + ((0.9, 0.9, 0.88), (0.3, 0.3, 0.32)))
    front_color = np.clip(body_color * rng.uniform(0.8, 1.15), 0, 1)
    handle_color = _color(rng, METALS)
    base = rng.uniform(0.03, 0.12)
    parts = [box((0, base + height / 2, 0), (width, height, depth), body_color)]
    if rng.random() < 0.5:
        parts.append(box((0, base / 2, 0), (width * 0.94, base, depth * 0.9), body_color * 0.7))
    else:
        parts += _legs(rng, width, depth, base, 0.04, 0.04, body_color * 0.7, rng.random() < 0.5)
    front_z, gap = -depth / 2 - 0.012, 0.02
    if rng.random() < 0.5:
        rows = int(rng.integers(2, 6))
        row_height = (height - gap) / rows
        for r in range(rows):
            y = base + gap / 2 + row_height * (r + 0.5)
            parts.append(box((0, y, front_z), (width - 2 * gap, row_height - gap, 0.024), front_color))
            parts.append(box((0, y + row_height * 0.15, front_z - 0.02), (width * 0.25, 0.02, 0.02), handle_color))
    else:
        doors = int(rng.integers(1, 3))
        door_width = (width - gap) / doors
        for d in range(doors):
            x = -width / 2 + gap / 2 + door_width * (d + 0.5)
            parts.append(box((x, base + height / 2, front_z), (door_width - gap, height - 2 * gap, 0.024), front_color))
            side = 1 if d == 0 else -1  # handles sit by the middle of a pair of doors
            handle_x = x + side * door_width * 0.35
            parts.append(
                box((handle_x, base + height * 0.55, front_z - 0.02), (0.02, height * 0.2, 0.02), handle_color)
            )
    return merge_meshes(parts)


def car(rng: np.random.Generator) -> TriangleMesh:
    """Lower body, tapered cabin (sedan, hatchback, van or pickup proportions), four wheels."""
    length, width = 1.0, rng.uniform(0.38, 0.48)
    wheel_radius = rng.uniform(0.075, 0.105)
    clearance = wheel_radius * rng.uniform(0.55, 0.85)
    body_height = rng.uniform(0.14, 0.22)
    paint = _color(rng, PAINTS)
    body_top = clearance + body_height
    parts = [tapered_box((0, clearance + body_height / 2, 0), (width, body_height, length), (0.97, 0.95), paint)]
    cabin_length = rng.uniform(0.38, 0.75) * length
    cabin_z = rng.uniform(-0.05, 0.12) if cabin_length < 0.6 else rng.uniform(-0.02, 0.08)
    cabin_height = rng.uniform(0.1, 0.22)
    parts.append(
        tapered_box(
            (0, body_top + cabin_height / 2, cabin_z),
            (width * 0.9, cabin_height, cabin_length),
            (rng.uniform(0.8, 0.95), rng.uniform(0.5, 0.9)),
            GLASS,
            top_offset=(0, rng.uniform(0.0, 0.06)),
        )
    )
    parts.append(
        box((0, body_top + cabin_height + 0.008, cabin_z + 0.02), (width * 0.72, 0.016, cabin_length * 0.5), paint)
    )
    wheelbase = rng.uniform(0.55, 0.7) * length
    for sx in (-1, 1):
        for sz in (-1, 1):
            x, z = sx * (width / 2 - 0.03), sz * wheelbase / 2
            parts.append(
                frustum(
                    (x - 0.045, wheel_radius, z),
                    (x + 0.045, wheel_radius, z),
                    wheel_radius,
                    wheel_radius,
                    DARK,
                    segments=14,
                )
            )
    return merge_meshes(parts)


def chair(rng: np.random.Generator) -> TriangleMesh:
    """Seat, four legs or a swivel base, a solid or slatted backrest, optional armrests."""
    width, depth, seat_height = rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.5)
    thickness = rng.uniform(0.03, 0.07)
    seat_color = _color(rng, WOODS + FABRICS)
    frame_color = seat_color if rng.random() < 0.5 else _color(rng, METALS + WOODS)
    leg = rng.uniform(0.025, 0.05)
    parts = [box((0, seat_height - thickness / 2, 0), (width, thickness, depth), seat_color)]
    if rng.random() < 0.25:
        pole_top = seat_height - thickness
        parts.append(frustum((0, 0.06, 0), (0, pole_top, 0), 0.025, 0.025, DARK, segments=10))
        for k in range(5):
            angle = 2 * np.pi * k / 5
            foot = np.array([np.cos(angle), 0, np.sin(angle)]) * width * 0.55
            parts.append(box(foot / 2 + np.array([0, 0.04, 0]), (abs(foot[0]) + 0.03, 0.03, abs(foot[2]) + 0.03), DARK))
    else:
        parts += _legs(
            rng,
            width,
            depth,
            seat_height - thickness,
            leg * 0.6,
            leg,
            frame_color,
            rng.random() < 0.4,
            splay=rng.uniform(0.0, 0.03),
        )
        if rng.random() < 0.4:
            for sx in (-1, 1):
                parts.append(
                    box(
                        (sx * (width / 2 - leg * 0.6), seat_height * 0.3, 0),
                        (leg * 0.6, leg * 0.6, depth - leg),
                        frame_color,
                    )
                )
    back_height = rng.uniform(0.35, 0.6)
    tilt = rotation_matrix("x", -rng.uniform(3, 15))
    back_z = depth / 2 - 0.02
    centre = np.array([0, seat_height + back_height / 2, back_z])
    if rng.random() < 0.45:
        parts.append(box(centre, (width, back_height, 0.035), seat_color, rotation=tilt))
    else:
        for sx in (-1, 1):
            parts.append(
                box(centre + [sx * (width / 2 - leg / 2), 0, 0], (leg, back_height, leg), frame_color, rotation=tilt)
            )
        parts.append(box(centre + [0, back_height / 2 - 0.04, 0], (width, 0.08, 0.03), frame_color, rotation=tilt))
        slats = int(rng.integers(0, 5))
        for k in range(slats):
            x = -width / 2 + width * (k + 1) / (slats + 1)
            parts.append(box(centre + [x, -0.04, 0], (0.025, back_height - 0.08, 0.02), frame_color, rotation=tilt))
        if slats == 0:
            parts.append(box(centre + [0, -back_height * 0.1, 0], (width, 0.05, 0.025), frame_color, rotation=tilt))
    if rng.random() < 0.35:
        arm_height = rng.uniform(0.18, 0.25)
        for sx in (-1, 1):
            x = sx * (width / 2 + 0.02)
            parts.append(box((x, seat_height + arm_height, 0), (0.05, 0.03, depth * 0.9), frame_color))
            parts.append(box((x, seat_height + arm_height / 2, -depth * 0.35), (0.03, arm_height, 0.03), frame_color))
    return merge_meshes(parts)


def display(rng: np.random.Generator) -> TriangleMesh:
    """A thin screen with a bezel on a neck and a foot (or a flat stand-less panel)."""
    width = rng.uniform(0.8, 1.1)
    height = width * rng.uniform(0.5, 0.68)
    depth = rng.uniform(0.025, 0.06)
    frame = _color(rng, ((0.32, 0.32, 0.35), (0.75, 0.75, 0.77), (0.9, 0.9, 0.9)))
    stand = rng.uniform(0.15, 0.3)
    screen_y = stand + height / 2
    parts = [
        box((0, screen_y, 0), (width, height, depth), frame),
        box((0, screen_y + 0.01, -depth / 2 - 0.004), (width * 0.94, height * 0.88, 0.008), GLASS * 0.6),
        tapered_box((0, screen_y, depth / 2 + 0.04), (width * 0.6, height * 0.6, 0.08), (0.6, 0.5), frame),
    ]
    neck_width = rng.uniform(0.04, 0.1)
    parts.append(box((0, stand / 2 + 0.01, depth / 2 + 0.05), (neck_width, stand + 0.02, 0.03), frame))
    if rng.random() < 0.5:
        parts.append(box((0, 0.01, 0.04), (rng.uniform(0.3, 0.5), 0.02, rng.uniform(0.18, 0.28)), frame))
    else:
        disc = circle(rng.uniform(0.14, 0.22), rng.uniform(0.1, 0.15), 20)
        parts.append(loft(disc, disc, 0.02, frame, translation=(0, 0.01, 0.04)))
    return merge_meshes(parts)


def lamp(rng: np.random.Generator) -> TriangleMesh:
    """A base, a thin pole (straight, or bent into an arm) and a conical shade."""
    base_radius = rng.uniform(0.1, 0.2)
    metal, shade_color = (
        _color(rng, METALS + (DARK,)),
        _color(rng, ((0.95, 0.92, 0.8), (0.85, 0.3, 0.2), (0.2, 0.4, 0.6), (0.9, 0.9, 0.9))),
    )
    parts = [frustum((0, 0, 0), (0, 0.035, 0), base_radius, base_radius * 0.85, metal, segments=20)]
    pole_radius = rng.uniform(0.008, 0.018)
    pole_height = rng.uniform(0.45, 1.0)
    top = np.array([0.0, pole_height, 0.0])
    parts.append(frustum((0, 0.03, 0), top, pole_radius, pole_radius, metal, segments=8))
    shade_height = rng.uniform(0.14, 0.26)
    shade_bottom, shade_top = rng.uniform(0.12, 0.24), rng.uniform(0.04, 0.12)
    if rng.random() < 0.45:
        reach = rng.uniform(0.2, 0.4)
        elbow = top + np.array([0.0, rng.uniform(0.05, 0.2), -reach])
        parts.append(frustum(top, elbow, pole_radius, pole_radius, metal, segments=8))
        parts.append(ellipsoid(top, (pole_radius * 2,) * 3, metal, rings=6, segments=8))
        direction = np.array([0.0, -1.0, -rng.uniform(0.2, 0.8)])
        direction /= np.linalg.norm(direction)
        parts.append(
            frustum(
                elbow, elbow + direction * shade_height, shade_top * 0.7, shade_bottom * 0.8, shade_color, segments=16
            )
        )
    else:
        parts.append(
            frustum(
                top + [0, -shade_height * 0.55, 0],
                top + [0, shade_height * 0.45, 0],
                shade_bottom,
                shade_top,
                shade_color,
                segments=20,
            )
        )
    return merge_meshes(parts)


def loudspeaker(rng: np.random.Generator) -> TriangleMesh:
    """A tall (sometimes tapered) enclosure with 1 to 3 circular drivers on its front."""
    width, height, depth = rng.uniform(0.28, 0.5), rng.uniform(0.5, 1.1), rng.uniform(0.3, 0.45)
    cabinet_color = _color(rng, WOODS + ((0.1, 0.1, 0.1), (0.9, 0.9, 0.9)))
    parts = [
        tapered_box(
            (0, height / 2, 0), (width, height, depth), (rng.uniform(0.75, 1.0), rng.uniform(0.7, 1.0)), cabinet_color
        )
    ]
    drivers = int(rng.integers(1, 4))
    front = -depth / 2
    slots = np.linspace(height * 0.8, height * 0.25, drivers)
    for k, y in enumerate(slots):
        radius = min(width * (0.2 if k == 0 and drivers > 1 else 0.38), height / (2.5 * drivers))
        parts.append(frustum((0, y, front + 0.01), (0, y, front - 0.025), radius, radius * 0.9, DARK, segments=18))
        parts.append(
            frustum((0, y, front - 0.025), (0, y, front - 0.04), radius * 0.3, radius * 0.15, METALS[0], segments=10)
        )
    return merge_meshes(parts)


def rifle(rng: np.random.Generator) -> TriangleMesh:
    """Barrel, receiver, stock, grip, optional magazine and scope, along the Z axis."""
    metal, wood = _color(rng, ((0.15, 0.15, 0.16), (0.3, 0.3, 0.3))), _color(rng, WOODS + ((0.2, 0.2, 0.2),))
    receiver_length = rng.uniform(0.25, 0.35)
    barrel_length = rng.uniform(0.35, 0.6)
    parts = [box((0, 0, 0), (0.05, 0.08, receiver_length), metal)]
    front = -receiver_length / 2
    parts.append(frustum((0, 0.01, front), (0, 0.01, front - barrel_length), 0.014, 0.011, metal, segments=8))
    parts.append(box((0, -0.005, front - barrel_length * 0.25), (0.05, 0.055, barrel_length * 0.45), wood))
    stock_length = rng.uniform(0.25, 0.38)
    drop = rng.uniform(0.02, 0.08)
    parts.append(
        tapered_box(
            (0, -drop / 2, receiver_length / 2 + stock_length / 2),
            (0.05, 0.06, stock_length),
            (0.9, 1.0),
            wood,
            rotation=rotation_matrix("x", 90),
            top_offset=(0, drop),
        )
    )
    parts.append(box((0, -0.085, receiver_length * 0.3), (0.04, 0.1, 0.04), wood, rotation=rotation_matrix("x", -20)))
    if rng.random() < 0.75:
        parts.append(
            box(
                (0, -0.1, -receiver_length * 0.15),
                (0.035, rng.uniform(0.1, 0.18), 0.05),
                metal,
                rotation=rotation_matrix("x", rng.uniform(-5, 20)),
            )
        )
    if rng.random() < 0.5:
        scope_length = rng.uniform(0.15, 0.25)
        parts.append(
            frustum((0, 0.075, scope_length / 2), (0, 0.075, -scope_length / 2), 0.022, 0.026, DARK, segments=10)
        )
    return merge_meshes(parts)


def sofa(rng: np.random.Generator) -> TriangleMesh:
    """Base, seat cushions, a thick back, two arms, short legs; sometimes an L-shaped chaise."""
    width, depth = rng.uniform(1.3, 2.2), rng.uniform(0.7, 0.95)
    fabric = _color(rng, FABRICS)
    leg_height = rng.uniform(0.03, 0.1)
    base_height, seat_height = rng.uniform(0.15, 0.25), rng.uniform(0.38, 0.46)
    arm_width, back_depth = rng.uniform(0.1, 0.2), rng.uniform(0.15, 0.25)
    back_top = rng.uniform(0.7, 0.95)
    parts = [box((0, leg_height + base_height / 2, 0), (width, base_height, depth), fabric * 0.85)]
    cushions = int(rng.integers(1, 4))
    inner = width - 2 * arm_width
    cushion_width = inner / cushions
    cushion_bottom = leg_height + base_height
    for k in range(cushions):
        x = -inner / 2 + cushion_width * (k + 0.5)
        parts.append(
            box(
                (x, (cushion_bottom + seat_height) / 2, -back_depth / 2 + 0.005),
                (cushion_width - 0.015, seat_height - cushion_bottom, depth - back_depth),
                fabric,
            )
        )
    parts.append(
        box(
            (0, (cushion_bottom + back_top) / 2, depth / 2 - back_depth / 2),
            (width, back_top - cushion_bottom, back_depth),
            fabric,
        )
    )
    arm_top = rng.uniform(seat_height + 0.1, seat_height + 0.25)
    for sx in (-1, 1):
        parts.append(
            box(
                (sx * (width / 2 - arm_width / 2), (leg_height + arm_top) / 2, 0),
                (arm_width, arm_top - leg_height, depth),
                fabric * 0.95,
            )
        )
    if rng.random() < 0.2:
        parts.append(
            box(
                (width / 2 - inner * 0.2 - arm_width, (leg_height + seat_height) / 2, -depth / 2 - 0.35),
                (inner * 0.4, seat_height - leg_height, 0.7),
                fabric,
            )
        )
    parts += _legs(rng, width, depth, leg_height, 0.06, 0.04, _color(rng, WOODS + (DARK,)), rng.random() < 0.5)
    return merge_meshes(parts)


def table(rng: np.random.Generator) -> TriangleMesh:
    """A rectangular or round top on four thin legs (with optional stretchers) or a pedestal."""
    round_top = rng.random() < 0.3
    width = rng.uniform(0.8, 1.4)
    depth = width * rng.uniform(0.8, 1.0) if round_top else rng.uniform(0.5, 0.9)
    height, thickness = rng.uniform(0.55, 0.8), rng.uniform(0.025, 0.06)
    top_color = _color(rng, WOODS + ((0.9, 0.9, 0.88), (0.2, 0.2, 0.2)))
    leg_color = top_color if rng.random() < 0.6 else _color(rng, METALS)
    if round_top:
        disc = circle(width / 2, depth / 2, 28)
        parts = [loft(disc, disc, thickness, top_color, translation=(0, height - thickness / 2, 0))]
    else:
        parts = [box((0, height - thickness / 2, 0), (width, thickness, depth), top_color)]
    if rng.random() < 0.3:
        parts.append(
            frustum(
                (0, 0.02, 0),
                (0, height - thickness, 0),
                rng.uniform(0.03, 0.07),
                rng.uniform(0.03, 0.06),
                leg_color,
                segments=12,
            )
        )
        foot = circle(rng.uniform(0.2, 0.3), rng.uniform(0.2, 0.3), 16)
        parts.append(loft(foot, foot * 0.7, 0.04, leg_color, translation=(0, 0.02, 0)))
    else:
        footprint = (width * 0.7, depth * 0.7) if round_top else (width, depth)
        leg = rng.uniform(0.025, 0.06)
        inset = rng.uniform(0.03, 0.12)
        parts += _legs(
            rng, *footprint, height - thickness, inset, leg, leg_color, rng.random() < 0.5, splay=rng.uniform(0.0, 0.04)
        )
        if rng.random() < 0.4:
            y = rng.uniform(0.1, 0.3) * height
            parts.append(
                box((0, y, footprint[1] / 2 - inset), (footprint[0] - 2 * inset, leg * 0.6, leg * 0.6), leg_color)
            )
            parts.append(
                box((0, y, -footprint[1] / 2 + inset), (footprint[0] - 2 * inset, leg * 0.6, leg * 0.6), leg_color)
            )
    return merge_meshes(parts)


def telephone(rng: np.random.Generator) -> TriangleMesh:
    """An upright handset: a smartphone slab with a screen, or a keypad phone with buttons."""
    height = rng.uniform(0.9, 1.2)
    width = height * rng.uniform(0.42, 0.55)
    depth = rng.uniform(0.05, 0.1)
    shell = _color(rng, ((0.3, 0.3, 0.32), (0.85, 0.85, 0.87), (0.7, 0.6, 0.5), (0.2, 0.3, 0.5)))
    parts = [tapered_box((0, height / 2, 0), (width, height, depth), (0.98, 0.98), shell)]
    front = -depth / 2 - 0.004
    if rng.random() < 0.65:
        parts.append(box((0, height * 0.5, front), (width * 0.9, height * 0.86, 0.008), GLASS * 0.5))
    else:
        parts.append(box((0, height * 0.72, front), (width * 0.8, height * 0.35, 0.008), GLASS))
        for row in range(4):
            for column in range(3):
                parts.append(
                    box(
                        ((column - 1) * width * 0.26, height * (0.42 - 0.09 * row), front - 0.006),
                        (width * 0.18, height * 0.055, 0.012),
                        METALS[2],
                    )
                )
    parts.append(
        frustum(
            (width * 0.25, height * 0.85, depth / 2),
            (width * 0.25, height * 0.85, depth / 2 + 0.02),
            width * 0.08,
            width * 0.08,
            DARK,
            segments=10,
        )
    )
    return merge_meshes(parts)


def watercraft(rng: np.random.Generator) -> TriangleMesh:
    """A hull lofted from a pointed deck outline to a narrow keel, with cabins or a mast and sail."""
    length, beam = 1.0, rng.uniform(0.18, 0.32)
    hull_depth = rng.uniform(0.1, 0.2)
    bow = rng.uniform(0.25, 0.4)
    deck = np.array(
        [
            [-beam / 2, length / 2],
            [-beam / 2, -length / 2 + bow],
            [-beam * 0.2, -length / 2 + bow * 0.3],
            [0, -length / 2],
            [beam * 0.2, -length / 2 + bow * 0.3],
            [beam / 2, -length / 2 + bow],
            [beam / 2, length / 2],
        ]
    )
    keel = deck * np.array([rng.uniform(0.2, 0.5), rng.uniform(0.75, 0.9)])
    hull_color = _color(rng, ((0.9, 0.9, 0.9), (0.6, 0.1, 0.1), (0.1, 0.15, 0.35), (0.2, 0.2, 0.22)))
    parts = [loft(keel, deck, hull_depth, hull_color, translation=(0, hull_depth / 2, 0))]
    deck_y = hull_depth
    if rng.random() < 0.35:
        mast_height = rng.uniform(0.5, 0.9)
        mast_z = rng.uniform(-0.15, 0.05)
        parts.append(
            frustum((0, deck_y, mast_z), (0, deck_y + mast_height, mast_z), 0.01, 0.007, METALS[1], segments=6)
        )
        sail = np.array(
            [[0.02, mast_z + 0.01], [mast_height * 0.95, mast_z + 0.01], [0.04, mast_z + rng.uniform(0.25, 0.4)]]
        )
        parts.append(
            loft(sail, sail, 0.006, (0.95, 0.95, 0.92), rotation=rotation_matrix("z", 90), translation=(0, deck_y, 0))
        )
    else:
        levels = int(rng.integers(1, 4))
        cabin_length, cabin_width, y = rng.uniform(0.25, 0.5), beam * rng.uniform(0.6, 0.85), deck_y
        cabin_z = rng.uniform(0.0, 0.2)
        cabin_color = _color(rng, ((0.95, 0.95, 0.95), (0.8, 0.8, 0.75)))
        for _ in range(levels):
            level_height = rng.uniform(0.04, 0.08)
            parts.append(
                box((0, y + level_height / 2, cabin_z), (cabin_width, level_height, cabin_length), cabin_color)
            )
            y += level_height
            cabin_length *= rng.uniform(0.5, 0.8)
            cabin_width *= rng.uniform(0.75, 0.95)
        if rng.random() < 0.5:
            parts.append(
                frustum(
                    (0, y - 0.01, cabin_z + 0.02),
                    (0, y + rng.uniform(0.05, 0.12), cabin_z + 0.04),
                    0.03,
                    0.025,
                    _color(rng, PAINTS),
                    segments=10,
                )
            )
    return merge_meshes(parts)


GENERATORS: dict[str, Generator] = {
    "airplane": airplane,
    "bench": bench,
    "cabinet": cabinet,
    "car": car,
    "chair": chair,
    "display": display,
    "lamp": lamp,
    "loudspeaker": loudspeaker,
    "rifle": rifle,
    "sofa": sofa,
    "table": table,
    "telephone": telephone,
    "watercraft": watercraft,
}
