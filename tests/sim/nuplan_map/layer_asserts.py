"""Equality of two :class:`MapLayers`, table by table (fids, columns with dtype, geometries exactly)."""

from __future__ import annotations

import numpy as np
import shapely

from sim.nuplan_map.layers import MapLayers


def assert_layers_equal(a: MapLayers, b: MapLayers, names: list[str] | None = None) -> None:
    assert (a.location, a.version, a.crs) == (b.location, b.version, b.crs)
    for name in names if names is not None else sorted(a.layers):
        ta, tb = a.layers[name], b.layers[name]
        order = np.argsort(ta.fid, kind="stable")  # readers return rows in fid order
        np.testing.assert_array_equal(ta.fid[order], tb.fid, err_msg=name)
        ga = np.asarray(ta.geometry, dtype=object)[order]
        assert shapely.equals_exact(ga, tb.geometry, tolerance=0.0).all(), name
        assert set(ta.columns) == set(tb.columns), name
        for col, va in ta.columns.items():
            va, vb = np.asarray(va)[order], tb.columns[col]
            kind = va.dtype.kind
            assert vb.dtype.kind == kind or (kind in "OU" and vb.dtype.kind in "OU"), (name, col, va.dtype, vb.dtype)
            if kind == "f":
                np.testing.assert_array_equal(va, vb, err_msg=f"{name}.{col}")
            else:
                assert va.tolist() == vb.tolist(), (name, col)
