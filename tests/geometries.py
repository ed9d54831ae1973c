"""One catalogue of awkward geometries, shared by the tests (WGS84 lon/lat near Aghdam)."""

from shapely.geometry import Polygon, box

X0, Y0 = 46.90, 39.90
D = 0.01  # about 850 m east-west, 1.1 km north-south

HAZARD = box(X0, Y0, X0 + D, Y0 + D)
WEST_HALF = box(X0, Y0, X0 + D / 2, Y0 + D)
EAST_HALF = box(X0 + D / 2, Y0, X0 + D, Y0 + D)
SOUTH_WEST = box(X0, Y0, X0 + D / 2, Y0 + D / 2)
# Crosses its own edges: the most common fault of legacy polygons.
BOWTIE = Polygon([(X0, Y0), (X0 + D, Y0 + D), (X0 + D, Y0), (X0, Y0 + D), (X0, Y0)])
# The same square given in UTM 38N metres, as if they were degrees: a wrong-CRS import.
UTM_SQUARE = box(662_000, 4_418_000, 662_800, 4_419_100)
# 3D coordinates.
WITH_Z = Polygon([(X0, Y0, 1), (X0 + D, Y0, 1), (X0 + D, Y0 + D, 1), (X0, Y0, 1)])
# Leaves the hazard by about 85 m to the east.
SPILLS_EAST = box(X0 + D / 2, Y0, X0 + D + 0.001, Y0 + D)
# Shares an edge with WEST_HALF but jitters 20 cm into it (GPS noise): within tolerance.
EAST_HALF_JITTER = box(X0 + D / 2 - 0.0000025, Y0, X0 + D, Y0 + D)
# Overlaps WEST_HALF by about 85 m.
CENTRE_STRIP = box(X0 + D / 2 - 0.001, Y0, X0 + D / 2 + 0.001, Y0 + D)
