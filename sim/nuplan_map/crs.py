"""Coordinate reference systems of nuPlan maps, without PROJ: EPSG codes, their WKT, and WGS84 -> UTM.

nuPlan's ``map.gpkg`` names its projected frame in the ``meta`` table (``projectedCoordSystem``, e.g.
``epsg:32611`` for Las Vegas, UTM zone 11N). Every map coordinate the simulator uses is in that frame (metres).
We only need three CRS facts: which EPSG code a CRS string names, the OGC WKT of WGS84 / UTM zones (so that
GDAL and geopandas recognise the layers' CRS), and the forward UTM projection (in case a GeoPackage stores
its layers in geographic WGS84 coordinates while ``meta`` names UTM).
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

WGS84_EPSG = 4326

_WGS84_GEOGCS = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
    'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],'
    'UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],'
    'AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)

_EPSG_RE = re.compile(r"^\s*epsg\s*:\s*(\d+)\s*$", re.IGNORECASE)
_UTM_ZONE_RE = re.compile(r"\+zone=(\d{1,2})\b")


def epsg_of(crs: str) -> int | None:
    """The EPSG code a CRS string names, or None.

    Accepts ``"epsg:32611"`` (nuPlan's form, any case) and PROJ strings of WGS84 UTM zones
    (``"+proj=utm +zone=11 [+south] +datum=WGS84 ..."``).
    """
    m = _EPSG_RE.match(crs)
    if m:
        return int(m.group(1))
    if "+proj=utm" in crs and ("WGS84" in crs or "wgs84" in crs.lower()):
        z = _UTM_ZONE_RE.search(crs)
        if z and 1 <= int(z.group(1)) <= 60:
            return (32700 if "+south" in crs else 32600) + int(z.group(1))
    return None


def utm_zone(epsg: int | None) -> tuple[int, bool] | None:
    """``(zone, south)`` for a WGS84 / UTM EPSG code (32601..32660 north, 32701..32760 south), else None."""
    if epsg is None:
        return None
    if 32601 <= epsg <= 32660:
        return epsg - 32600, False
    if 32701 <= epsg <= 32760:
        return epsg - 32700, True
    return None


def srs_name(epsg: int) -> str:
    zone = utm_zone(epsg)
    if zone is not None:
        return f"WGS 84 / UTM zone {zone[0]}{'S' if zone[1] else 'N'}"
    return "WGS 84" if epsg == WGS84_EPSG else f"EPSG:{epsg}"


def wkt_of(epsg: int) -> str | None:
    """OGC WKT (version 1) of WGS84 (4326) or a WGS84 / UTM zone; None for other codes."""
    if epsg == WGS84_EPSG:
        return _WGS84_GEOGCS
    zone = utm_zone(epsg)
    if zone is None:
        return None
    number, south = zone
    geogcs = _WGS84_GEOGCS.replace('AXIS["Latitude",NORTH],AXIS["Longitude",EAST],', "")
    return (
        f'PROJCS["{srs_name(epsg)}",{geogcs},PROJECTION["Transverse_Mercator"],'
        f'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",{6 * number - 183}],'
        f'PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],'
        f'PARAMETER["false_northing",{10000000 if south else 0}],UNIT["metre",1,AUTHORITY["EPSG","9001"]],'
        f'AXIS["Easting",EAST],AXIS["Northing",NORTH],AUTHORITY["EPSG","{epsg}"]]'
    )


def wgs84_to_utm(lon_lat: npt.ArrayLike, epsg: int) -> npt.NDArray[np.float64]:
    """Project WGS84 longitude/latitude (degrees) ``(N, 2)`` to UTM easting/northing (m) ``(N, 2)``.

    Krüger's series to the 3rd order in n (sub-millimetre within a zone). ``epsg`` must be a UTM code.
    """
    zone = utm_zone(epsg)
    if zone is None:
        raise ValueError(f"EPSG:{epsg} is not a WGS84 / UTM zone")
    number, south = zone
    p = np.asarray(lon_lat, dtype=np.float64).reshape(-1, 2)
    a, f = 6378137.0, 1.0 / 298.257223563
    k0, e0 = 0.9996, 500000.0
    n0 = 10000000.0 if south else 0.0
    n = f / (2.0 - f)
    big_a = a / (1.0 + n) * (1.0 + n**2 / 4.0 + n**4 / 64.0)
    alpha = (n / 2.0 - 2.0 * n**2 / 3.0 + 5.0 * n**3 / 16.0,
             13.0 * n**2 / 48.0 - 3.0 * n**3 / 5.0,
             61.0 * n**3 / 240.0)
    lam = np.radians(p[:, 0] - (6.0 * number - 183.0))
    phi = np.radians(p[:, 1])
    c = 2.0 * np.sqrt(n) / (1.0 + n)
    t = np.sinh(np.arctanh(np.sin(phi)) - c * np.arctanh(c * np.sin(phi)))
    xi = np.arctan2(t, np.cos(lam))
    eta = np.arctanh(np.sin(lam) / np.sqrt(1.0 + t**2))
    x, y = eta.copy(), xi.copy()
    for j, aj in enumerate(alpha, start=1):
        x += aj * np.cos(2 * j * xi) * np.sinh(2 * j * eta)
        y += aj * np.sin(2 * j * xi) * np.cosh(2 * j * eta)
    return np.stack([e0 + k0 * big_a * x, n0 + k0 * big_a * y], -1)
