"""WGS-84 ↔ GCJ-02 ↔ BD-09.

Reference values: the point (116.404, 39.915) — Tiananmen, the default centre of Baidu's map API —
and the results published with wandergis/coordtransform (``test/app.js``), the implementation most
Chinese front ends use. Our forward transforms must reproduce them exactly; our inverses are
iterated, so they are compared with the published one-step approximations only loosely and with
the forward transform strictly.
"""

from __future__ import annotations

import math

import pytest

from gridline_geo.crs import (
    CoordinateError,
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    to_wgs84,
    validate,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

TIANANMEN = (116.404, 39.915)

# Published by wandergis/coordtransform for (116.404, 39.915).
REF_WGS84_TO_GCJ02 = (116.41024449916938, 39.91640428150164)
REF_GCJ02_TO_BD09 = (116.41036949371029, 39.92133699351021)
REF_BD09_TO_GCJ02_ONE_STEP = (116.39762729119315, 39.90865673957631)
REF_GCJ02_TO_WGS84_ONE_STEP = (116.39775550083061, 39.91359571849836)

CHINA_POINTS = [
    TIANANMEN,
    (120.1551, 30.2741),  # 杭州
    (121.4737, 31.2304),  # 上海
    (113.2644, 23.1291),  # 广州
    (87.6168, 43.8256),  # 乌鲁木齐
    (126.5349, 45.8038),  # 哈尔滨
    (109.5120, 18.2528),  # 三亚
    (91.1409, 29.6456),  # 拉萨
]
OUTSIDE_POINTS = [(-0.1276, 51.5072), (-74.0060, 40.7128), (151.2093, -33.8688), (139.6917, 35.6895)]


def close(a: tuple[float, float], b: tuple[float, float], tol: float) -> bool:
    return abs(a[0] - b[0]) <= tol and abs(a[1] - b[1]) <= tol


def test_forward_transforms_reproduce_the_published_reference_values() -> None:
    assert close(wgs84_to_gcj02(*TIANANMEN), REF_WGS84_TO_GCJ02, 1e-12)
    assert close(gcj02_to_bd09(*TIANANMEN), REF_GCJ02_TO_BD09, 1e-12)


def test_inverse_transforms_agree_with_the_published_one_step_approximations() -> None:
    # The published inverses are single-step approximations, good to a few decimetres (~1e-6 deg).
    assert close(gcj02_to_wgs84(*TIANANMEN), REF_GCJ02_TO_WGS84_ONE_STEP, 1e-6)
    assert close(bd09_to_gcj02(*TIANANMEN), REF_BD09_TO_GCJ02_ONE_STEP, 1e-6)


def test_gcj02_offset_in_beijing_is_a_few_hundred_metres() -> None:
    gcj = wgs84_to_gcj02(*TIANANMEN)
    d_east = (gcj[0] - TIANANMEN[0]) * 111_320 * math.cos(math.radians(TIANANMEN[1]))
    d_north = (gcj[1] - TIANANMEN[1]) * 110_574
    assert 100 < math.hypot(d_east, d_north) < 1000


@pytest.mark.parametrize("point", CHINA_POINTS)
def test_gcj02_to_wgs84_inverts_the_forward_transform_to_1e_7(point: tuple[float, float]) -> None:
    wgs = gcj02_to_wgs84(*point)
    assert close(wgs84_to_gcj02(*wgs), point, 1e-7)
    assert close(gcj02_to_wgs84(*wgs84_to_gcj02(*point)), point, 1e-7)


@pytest.mark.parametrize("point", CHINA_POINTS)
def test_bd09_round_trips_to_1e_7(point: tuple[float, float]) -> None:
    assert close(gcj02_to_bd09(*bd09_to_gcj02(*point)), point, 1e-7)
    assert close(bd09_to_wgs84(*wgs84_to_bd09(*point)), point, 1e-7)
    assert close(to_wgs84(*from_wgs84(*point, "bd09"), "bd09"), point, 1e-7)
    assert close(to_wgs84(*from_wgs84(*point, "gcj02"), "gcj02"), point, 1e-7)


@pytest.mark.parametrize("point", OUTSIDE_POINTS)
def test_gcj02_is_the_identity_outside_mainland_china(point: tuple[float, float]) -> None:
    assert out_of_china(*point)
    assert wgs84_to_gcj02(*point) == point
    assert gcj02_to_wgs84(*point) == point
    assert to_wgs84(*point, "gcj02") == point


def test_bd09_is_gcj02_shifted_everywhere() -> None:
    london = OUTSIDE_POINTS[0]
    bd = gcj02_to_bd09(*london)
    assert bd != london
    assert close(bd09_to_gcj02(*bd), london, 1e-9)


def test_to_wgs84_dispatches_on_the_crs_name() -> None:
    assert to_wgs84(*TIANANMEN, "wgs84") == TIANANMEN
    assert to_wgs84(*TIANANMEN, "gcj02") == gcj02_to_wgs84(*TIANANMEN)
    assert to_wgs84(*TIANANMEN, "bd09") == bd09_to_wgs84(*TIANANMEN)
    # BD-09 sits further from WGS-84 than GCJ-02 does.
    bd_shift = math.dist(to_wgs84(*TIANANMEN, "bd09"), TIANANMEN)
    gcj_shift = math.dist(to_wgs84(*TIANANMEN, "gcj02"), TIANANMEN)
    assert bd_shift > gcj_shift


@pytest.mark.parametrize(
    ("lon", "lat", "code"),
    [
        (181.0, 30.0, "longitude_out_of_range"),
        (-180.5, 30.0, "longitude_out_of_range"),
        (30.27, 120.15, "latitude_out_of_range"),  # swapped lon/lat, a common client bug
        (float("nan"), 30.0, "coordinate_not_finite"),
        (120.0, float("inf"), "coordinate_not_finite"),
        ("东经120", 30.0, "coordinate_not_number"),
    ],
)
def test_invalid_coordinates_are_rejected_with_a_stable_code(lon: object, lat: object, code: str) -> None:
    with pytest.raises(CoordinateError) as err:
        validate(lon, lat)  # type: ignore[arg-type]
    assert err.value.code == code
    with pytest.raises(CoordinateError):
        to_wgs84(lon, lat, "gcj02")  # type: ignore[arg-type]


def test_unknown_crs_is_rejected() -> None:
    with pytest.raises(CoordinateError) as err:
        to_wgs84(120.0, 30.0, "cgcs2000")  # type: ignore[arg-type]
    assert err.value.code == "unknown_crs"


def test_validate_accepts_the_range_edges_and_numeric_strings() -> None:
    assert validate(180, -90) == (180.0, -90.0)
    assert validate("120.5", "30.25") == (120.5, 30.25)  # type: ignore[arg-type]
