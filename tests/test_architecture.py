"""The layering holds and the migrations describe the schema the code expects."""

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.types import TypeDecorator

from safeground.storage.schema import metadata
from safeground.storage.store import open_store

ROOT = Path(__file__).resolve().parent.parent


def test_layers_depend_inward():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_domain_imports_no_framework():
    for path in (ROOT / "src/safeground/domain").glob("*.py"):
        text = path.read_text()
        for framework in ("sqlalchemy", "fastapi", "typer"):
            assert f"import {framework}" not in text and f"from {framework}" not in text, path


def _register_object(_object, name, kind, _reflected, _compare_to):
    # GeoPackage's own tables (gpkg_*, rtree_*) are not the register's, and a GeoPackage
    # indexes geometry with its R-tree rather than the GiST indexes PostGIS gets.
    if kind == "table":
        return name in metadata.tables
    return not (kind == "index" and name.endswith("_geometry"))


def test_migrations_match_the_models(tmp_path):
    store = open_store(str(tmp_path / "m.gpkg"))
    store.migrate()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": _register_object,
                # SQLite reflects custom declared types (POINT, DATETIME) as affinities only.
                "compare_type": lambda _c, _i, _m, _it, declared: (
                    False if isinstance(declared, TypeDecorator) else None
                ),
            },
        )
        diff = compare_metadata(context, metadata)
    assert diff == []
