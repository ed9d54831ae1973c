"""Controlled vocabularies of mine action (IMAS, GICHD minimum data requirements, IMSMA).

Values are lower-case snake case so that they read the same in a CSV, a GeoPackage and JSON;
``label`` gives the wording a user expects to see.
"""

from enum import StrEnum


class Code(StrEnum):
    @property
    def label(self) -> str:
        return LABELS.get(self.value, self.value.replace("_", " ").capitalize())


class Classification(Code):
    INDICATION = "indication"
    SHA = "sha"
    CHA = "cha"
    STOCKPILE = "stockpile"
    EOD_SPOT = "eod_spot"


class HazardStatus(Code):
    OPEN = "open"
    WORKED_ON = "worked_on"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class Evidence(Code):
    # direct evidence
    DETONATION = "detonation"
    ACCIDENT_KNOWN_PLACE = "accident_known_place"
    RELIABLE_RECORD = "reliable_record"
    MINE_SIGN_OR_FENCE = "mine_sign_or_fence"
    VISUAL_OBSERVATION = "visual_observation"
    ITEM_FOUND = "item_found"
    # indirect evidence
    FRONT_LINE = "front_line"
    ACCIDENT_UNKNOWN_PLACE = "accident_unknown_place"
    UNRELIABLE_RECORD = "unreliable_record"
    LAND_UNUSED = "land_unused"
    VERBAL_REPORT = "verbal_report"


DIRECT_EVIDENCE = frozenset(
    {
        Evidence.DETONATION,
        Evidence.ACCIDENT_KNOWN_PLACE,
        Evidence.RELIABLE_RECORD,
        Evidence.MINE_SIGN_OR_FENCE,
        Evidence.VISUAL_OBSERVATION,
        Evidence.ITEM_FOUND,
    }
)


class Contamination(Code):
    AP_MINES = "ap_mines"
    AT_MINES = "at_mines"
    IED = "ied"
    UXO = "uxo"
    AXO = "axo"
    CLUSTER = "cluster"


class SourceReliability(Code):
    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"


class OrdnanceClassification(Code):
    M1 = "M1"
    M2 = "M2"
    M3 = "M3"
    M4 = "M4"


class Confirmed(Code):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


class Blockage(Code):
    HOUSING = "housing"
    FARMLAND = "farmland"
    GRAZING = "grazing"
    ROAD = "road"
    WATER = "water"
    INFRASTRUCTURE = "infrastructure"
    FOREST = "forest"
    OTHER = "other"


class ActivityType(Code):
    NTS = "nts"
    TS = "ts"
    CLEARANCE = "clearance"
    BAC = "bac"
    EOD_SPOT = "eod_spot"
    ROAD_CLEARANCE = "road_clearance"
    STOCKPILE_DESTRUCTION = "stockpile_destruction"
    POST_CLEARANCE_INSPECTION = "post_clearance_inspection"


# Activities whose progress means assets are working inside the area (Open -> Worked on).
WORK_ACTIVITIES = frozenset(
    {ActivityType.TS, ActivityType.CLEARANCE, ActivityType.BAC, ActivityType.ROAD_CLEARANCE}
)


class Outcome(Code):
    PROGRESS = "progress"
    COMPLETION = "completion"
    CANCELLATION = "cancellation"
    HANDOVER = "handover"


class LandType(Code):
    """How a processed polygon was released."""

    CANCELLED = "cancelled"
    REDUCED = "reduced"
    CLEARED = "cleared"


class ReleaseMethod(Code):
    MANUAL = "manual"
    DOG = "dog"
    MECHANICAL = "mechanical"
    MIXED = "mixed"
    NON_TECHNICAL = "non_technical"


class ItemCategory(Code):
    AP_MINE = "ap_mine"
    AT_MINE = "at_mine"
    IED = "ied"
    UXO = "uxo"
    AXO = "axo"
    SUBMUNITION = "submunition"
    SMALL_ARMS_AMMUNITION = "small_arms_ammunition"
    STOCKPILE = "stockpile"
    SEIZED_DEVICE = "seized_device"
    IED_FACTORY = "ied_factory"
    OTHER = "other"


class ItemCondition(Code):
    ARMED = "armed"
    UNARMED = "unarmed"
    DAMAGED = "damaged"
    UNKNOWN = "unknown"


class Disposal(Code):
    DESTROYED_IN_SITU = "destroyed_in_situ"
    MOVED_AND_DESTROYED = "moved_and_destroyed"
    DEMOLITION_SITE = "demolition_site"
    RENDERED_SAFE = "rendered_safe"
    HANDED_OVER = "handed_over"
    NOT_DISPOSED = "not_disposed"
    UNKNOWN = "unknown"


class AccidentType(Code):
    DEMINING = "demining"
    MINE = "mine"
    IED = "ied"
    UXO = "uxo"
    CLUSTER = "cluster"
    STORED_AMMUNITION = "stored_ammunition"
    OTHER = "other"


class VictimOutcome(Code):
    KILLED = "killed"
    INJURED = "injured"


class Sex(Code):
    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


class VictimStatus(Code):
    CIVILIAN = "civilian"
    MILITARY = "military"
    DEMINER = "deminer"
    UNKNOWN = "unknown"


class EoreMethod(Code):
    GROUP_SESSION = "group_session"
    HOUSE_TO_HOUSE = "house_to_house"
    SCHOOL = "school"
    MASS_MEDIA = "mass_media"
    DIGITAL = "digital"
    OTHER = "other"


class Audience(Code):
    FARMERS = "farmers"
    RETURNEES = "returnees"
    SCRAP_COLLECTORS = "scrap_collectors"
    CHILDREN = "children"
    TEACHERS = "teachers"
    GENERAL = "general"


class OrganisationType(Code):
    NATIONAL_AUTHORITY = "national_authority"
    ARMY = "army"
    NGO = "ngo"
    COMMERCIAL = "commercial"
    UN = "un"
    OTHER = "other"


class TeamType(Code):
    MANUAL = "manual"
    MDD = "mdd"
    MECHANICAL = "mechanical"
    EOD = "eod"
    NTS = "nts"
    MULTI_TASK = "multi_task"
    EORE = "eore"


class AccreditationSubject(Code):
    ORGANISATION = "organisation"
    TEAM = "team"
    DOG = "dog"
    MACHINE = "machine"


class QmType(Code):
    QA = "qa"
    QC = "qc"


class Severity(Code):
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


class TaskStatus(Code):
    PLANNED = "planned"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class DatePrecision(Code):
    DAY = "day"
    MONTH = "month"
    YEAR = "year"


LABELS = {
    "sha": "SHA",
    "cha": "CHA",
    "eod_spot": "EOD spot task",
    "nts": "NTS",
    "ts": "TS",
    "bac": "BAC",
    "ied": "IED",
    "uxo": "UXO",
    "axo": "AXO",
    "ap_mines": "AP mines",
    "at_mines": "AT mines",
    "ap_mine": "AP mine",
    "at_mine": "AT mine",
    "mdd": "Mine detection dogs",
    "eod": "EOD",
    "eore": "EORE",
    "qa": "QA",
    "qc": "QC",
    "un": "UN",
    "worked_on": "Worked on",
}
