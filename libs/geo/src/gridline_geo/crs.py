"""Coordinate systems used by Chinese map providers, and conversion to WGS-84.

Three systems reach us:

- **WGS-84** (GPS, EPSG:4326): what every Gridline record and polygon is stored in.
- **GCJ-02** ("火星坐标", 国测局): WGS-84 with the state-mandated obfuscation; used by 高德/AMap,
  Tencent maps and the WeChat ``wx.getLocation({type: "gcj02"})`` API, so most 随手拍 reports.
- **BD-09** (百度): GCJ-02 with Baidu's extra rotation and shift.

The formulas are the widely published reverse-engineered ones (Krasovsky 1940 ellipsoid constants,
as in ``eviltransform`` and ``coordtransform``). WGS-84 → GCJ-02 is a closed form; its inverse has
none, so :func:`gcj02_to_wgs84` iterates the forward transform until the round trip is within
``1e-9`` degrees (well under the required ``1e-7``, i.e. about a centimetre). BD-09 → GCJ-02 starts
from the usual closed-form approximation and is refined the same way.

Outside mainland China GCJ-02 is the identity (providers serve plain WGS-84 there). "Outside" is the
conventional rectangle test (lon 72.004–137.8347, lat 0.8293–55.8271) used by the published
implementations; it is coarse on purpose, because matching the providers matters more than matching
the border. BD-09 ↔ GCJ-02 applies everywhere.

Pure functions on floats; only :mod:`math`.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

Crs = Literal["wgs84", "gcj02", "bd09"]
CRS_NAMES: tuple[str, ...] = get_args(Crs)

# Krasovsky 1940, as used by GCJ-02.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0

_INVERSE_TOLERANCE_DEG = 1e-9
_INVERSE_MAX_ITERATIONS = 50


class CoordinateError(ValueError):
    """A coordinate that cannot be a longitude/latitude, or an unknown CRS name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validate(lon: float, lat: float) -> tuple[float, float]:
    """Return ``(lon, lat)`` as floats, or raise :class:`CoordinateError`.

    A common hotline/mini-program mistake is swapping the two, which puts a Chinese latitude (~30)
    in the longitude slot and a longitude (~120) in the latitude slot; that fails the latitude range
    check and is reported as such rather than silently accepted.
    """
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError) as exc:
        raise CoordinateError("coordinate_not_number", f"坐标不是数字: ({lon!r}, {lat!r})") from exc
    if not (math.isfinite(x) and math.isfinite(y)):
        raise CoordinateError("coordinate_not_finite", f"坐标不是有限数: ({lon!r}, {lat!r})")
    if not -180.0 <= x <= 180.0:
        raise CoordinateError("longitude_out_of_range", f"经度超出范围 [-180, 180]: {x}")
    if not -90.0 <= y <= 90.0:
        raise CoordinateError("latitude_out_of_range", f"纬度超出范围 [-90, 90]: {y}（经纬度是否颠倒？）")
    return x, y


def out_of_china(lon: float, lat: float) -> bool:
    """True where GCJ-02 is the identity (the conventional rectangle, see module docstring)."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def _gcj_offset(lon: float, lat: float) -> tuple[float, float]:
    d_lat = _transform_lat(lon - 105.0, lat - 35.0)
    d_lon = _transform_lon(lon - 105.0, lat - 35.0)
    rad_lat = lat / 180.0 * math.pi
    magic = math.sin(rad_lat)
    magic = 1 - _EE * magic * magic
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return d_lon, d_lat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    lon, lat = validate(lon, lat)
    if out_of_china(lon, lat):
        return lon, lat
    d_lon, d_lat = _gcj_offset(lon, lat)
    return lon + d_lon, lat + d_lat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Invert :func:`wgs84_to_gcj02` by fixed-point iteration (round trip within 1e-9 degrees).

    The offset varies slowly (a few hundred metres over hundreds of kilometres), so each step shrinks
    the error by about three orders of magnitude and three or four steps suffice.
    """
    lon, lat = validate(lon, lat)
    if out_of_china(lon, lat):
        return lon, lat
    w_lon, w_lat = lon, lat
    for _ in range(_INVERSE_MAX_ITERATIONS):
        g_lon, g_lat = _forward_unchecked(w_lon, w_lat)
        e_lon, e_lat = g_lon - lon, g_lat - lat
        if abs(e_lon) < _INVERSE_TOLERANCE_DEG and abs(e_lat) < _INVERSE_TOLERANCE_DEG:
            break
        w_lon, w_lat = w_lon - e_lon, w_lat - e_lat
    return w_lon, w_lat


def _forward_unchecked(lon: float, lat: float) -> tuple[float, float]:
    # The iterate can step across the out-of-China rectangle near its edge; the forward transform
    # must then stay the identity so the iteration still converges to the right fixed point.
    if out_of_china(lon, lat):
        return lon, lat
    d_lon, d_lat = _gcj_offset(lon, lat)
    return lon + d_lon, lat + d_lat


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    lon, lat = validate(lon, lat)
    return _gcj_to_bd_unchecked(lon, lat)


def _gcj_to_bd_unchecked(lon: float, lat: float) -> tuple[float, float]:
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Invert :func:`gcj02_to_bd09`: the published closed form, refined to within 1e-9 degrees."""
    lon, lat = validate(lon, lat)
    x, y = lon - 0.0065, lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    g_lon, g_lat = z * math.cos(theta), z * math.sin(theta)
    for _ in range(_INVERSE_MAX_ITERATIONS):
        b_lon, b_lat = _gcj_to_bd_unchecked(g_lon, g_lat)
        e_lon, e_lat = b_lon - lon, b_lat - lat
        if abs(e_lon) < _INVERSE_TOLERANCE_DEG and abs(e_lat) < _INVERSE_TOLERANCE_DEG:
            break
        g_lon, g_lat = g_lon - e_lon, g_lat - e_lat
    return g_lon, g_lat


def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def _check_crs(crs: str) -> None:
    if crs not in CRS_NAMES:
        raise CoordinateError("unknown_crs", f"未知坐标系 {crs!r}，应为 {', '.join(CRS_NAMES)} 之一")


def to_wgs84(lon: float, lat: float, crs: Crs) -> tuple[float, float]:
    """Convert a point given in ``crs`` to WGS-84 ``(lon, lat)``; validates ranges and the CRS name."""
    _check_crs(crs)
    if crs == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if crs == "bd09":
        return bd09_to_wgs84(lon, lat)
    return validate(lon, lat)


def from_wgs84(lon: float, lat: float, crs: Crs) -> tuple[float, float]:
    """Convert a WGS-84 point to ``crs`` (for showing our points on 高德/百度 maps)."""
    _check_crs(crs)
    if crs == "gcj02":
        return wgs84_to_gcj02(lon, lat)
    if crs == "bd09":
        return wgs84_to_bd09(lon, lat)
    return validate(lon, lat)
