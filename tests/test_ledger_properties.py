"""Property: for any sequence of approved processed polygons, remaining ≥ 0 and
remaining + released = estimated, to the square metre."""

from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from safeground.domain.codes import LandType
from safeground.domain.geometry import geodesic_area
from safeground.domain.ledger import ProcessedPiece, account
from tests import geometries as g

coordinate = st.floats(min_value=-0.3, max_value=1.3, allow_nan=False)


@st.composite
def pieces(draw):
    """Rectangles in and around the hazard, in any order and of any land type."""
    found = []
    for i in range(draw(st.integers(min_value=0, max_value=8))):
        x = sorted(draw(st.lists(coordinate, min_size=2, max_size=2, unique=True)))
        y = sorted(draw(st.lists(coordinate, min_size=2, max_size=2, unique=True)))
        geom = box(g.X0 + x[0] * g.D, g.Y0 + y[0] * g.D, g.X0 + x[1] * g.D, g.Y0 + y[1] * g.D)
        found.append(ProcessedPiece(f"a{i}", 0, draw(st.sampled_from(list(LandType))), geom))
    return found


@settings(max_examples=150, deadline=None)
@given(pieces())
def test_remaining_plus_released_is_estimated(processed):
    balance, credits = account(g.HAZARD, None, processed)
    assert balance.remaining_m2 >= 0
    assert abs(balance.remaining_m2 + balance.total_released_m2 - balance.estimated_m2) < 1.0
    assert all(c.area_m2 >= 0 for c in credits)
    # The credits add up to the area of the union of what was released, inside the hazard.
    if processed:
        from shapely import union_all

        union = union_all([p.geometry for p in processed]).intersection(g.HAZARD)
        assert abs(balance.total_released_m2 - geodesic_area(union)) < 1.0
