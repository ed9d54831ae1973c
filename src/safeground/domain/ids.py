"""Human-readable, stable record identifiers such as ``AZ-HA-2021-00042``."""

import re

ID_PATTERN = re.compile(
    r"^(?P<country>[A-Z]{2,3})-(?P<code>[A-Z]{2,4})-(?P<year>\d{4})-(?P<seq>\d{5,})$"
)


def format_record_id(country: str, code: str, year: int, sequence: int) -> str:
    return f"{country}-{code}-{year}-{sequence:05d}"


def parse_record_id(record_id: str) -> tuple[str, str, int, int]:
    match = ID_PATTERN.match(record_id)
    if not match:
        raise ValueError(f"{record_id!r} is not a record identifier like AZ-HA-2021-00042")
    return match["country"], match["code"], int(match["year"]), int(match["seq"])
