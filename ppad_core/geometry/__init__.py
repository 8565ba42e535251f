"""Road geometry for planners: a calibrated camera on the vehicle and flat-ground projection (camera.py).

Frames follow REP-103: base_link x forward, y left, z up; the camera's optical frame z forward, x right,
y down (docs in ../shared/design/road_geometry.md §1).
"""
