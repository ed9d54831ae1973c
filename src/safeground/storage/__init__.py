"""Storage of the register: one SQLAlchemy schema, on a GeoPackage file or on PostGIS."""
