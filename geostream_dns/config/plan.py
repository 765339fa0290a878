"""Plans: what applying zone documents to the database would change (pure, no I/O).

How this works: a plan compares the zones the database holds (canonical
documents by origin) with the zones wanted, zone by zone. A zone's *targets*
entry is its whole wanted document, or None to remove it; only zones that
change get one. The *changes* say the same thing line by line, for people
and for the change history: one per zone whose settings (TTL, SOA,
nameservers, regions, health checks) are added, changed or removed, and one
per record set (owner name and type).

Zones the database holds but the files do not are *left alone* unless the
plan was asked to delete missing zones. A plan remembers the generation it
was computed against, so a saved plan can be refused once the database has
moved on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from geostream_dns.config.document import Document, split_document, zone_document
from geostream_dns.config.loader import load_zone_data
from geostream_dns.errors import ConfigError, GeoStreamError

# Safety thresholds: a plan may change or delete at most this share of a zone's
# record sets, and delete at most this share of the zones, unless forced. As
# in octoDNS, a zone of fewer than MIN_RECORD_SETS record sets is not guarded
# (any edit of a small zone is a large share of it), and removing a single zone
# is an explicit act that is always allowed.
THRESHOLD = 0.30
MIN_RECORD_SETS = 10

PLAN_FORMAT = "geostream-dns plan"
PLAN_VERSION = 1

Op = Literal["add", "change", "remove"]
_MISSING: Any = object()
_SIGN = {"add": "+", "change": "~", "remove": "-"}


@dataclass(frozen=True, slots=True)
class Change:
    """One line of a plan: a zone's settings (``name`` None) or one record set."""

    op: Op
    zone: str
    name: str | None = None
    rtype: str | None = None
    old: Any = None
    new: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "zone": self.zone, "name": self.name, "type": self.rtype,
                "old": self.old, "new": self.new}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(data["op"], data["zone"], data.get("name"), data.get("type"),
                   data.get("old"), data.get("new"))

    def describe(self) -> str:
        """``~ www.example.com. A  ttl: 60 -> 30`` and the like, on one line."""
        sign = _SIGN[self.op]
        if self.name is None:
            subject = f"zone {self.zone}"
        else:
            subject = f"  {self.name} {self.rtype}"
        if self.op == "change":
            parts = [f"{path or 'value'}: {_inline(o)} -> {_inline(n)}"
                     for path, o, n in _differences(self.old, self.new)]
            return f"{sign} {subject}  {'; '.join(parts)}"
        data = self.new if self.op == "add" else self.old
        return f"{sign} {subject}  {_fields(data)}"


@dataclass(slots=True)
class Plan:
    base_generation: int
    targets: dict[str, Document | None]  # origin -> wanted document, None removes the zone
    changes: list[Change]
    left_alone: list[str] = field(default_factory=list)
    delete_missing: bool = False

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        out = {f"{kind}_{op}": 0 for kind in ("zones", "records") for op in _SIGN}
        touched: dict[str, str] = {}
        for change in self.changes:
            if change.name is None and change.op != "change":
                touched[change.zone] = change.op
            else:
                touched.setdefault(change.zone, "change")
            if change.name is not None:
                out[f"records_{change.op}"] += 1
        for op in touched.values():
            out[f"zones_{op}"] += 1
        return out

    def summary(self) -> str:
        """``1 zone to add, 2 to change, 0 to remove; 5 record sets to add, ...``"""
        if self.empty:
            return "No changes: the database already matches."
        c = self.counts()
        zones = _count(c["zones_add"], "zone")
        records = _count(c["records_add"], "record set")
        return (f"{zones} to add, {c['zones_change']} to change, {c['zones_remove']} to remove; "
                f"{records} to add, {c['records_change']} to change, "
                f"{c['records_remove']} to remove.")

    def history_summary(self) -> str:
        """A short line for the change history: counts and the zones touched."""
        c = self.counts()
        parts = [f"{op} {c[f'zones_{op}']}" for op in ("add", "change", "remove")
                 if c[f"zones_{op}"]]
        zones = sorted({change.zone for change in self.changes})
        listed = ", ".join(zones[:3]) + (f" and {len(zones) - 3} more" if len(zones) > 3 else "")
        records = "/".join(str(c[f"records_{op}"]) for op in ("add", "change", "remove"))
        return f"zones {', '.join(parts)} ({listed}); record sets +/~/- {records}"

    def lines(self) -> list[str]:
        out = [change.describe() for change in self.changes]
        for origin in self.left_alone:
            out.append(f"  zone {origin} is in the database but not in the files: left alone "
                       f"(apply --delete-missing removes it)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "version": PLAN_VERSION,
                "base_generation": self.base_generation, "delete_missing": self.delete_missing,
                "targets": self.targets, "changes": [c.to_json() for c in self.changes],
                "left_alone": self.left_alone}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> Plan:
        """A saved plan; raises ValueError when it is not one."""
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
            raise ValueError("not a saved GeoStream plan (write one with `plan --out FILE`)")
        if data.get("version") != PLAN_VERSION:
            raise ValueError(f"plan format version {data.get('version')!r} is not supported")
        try:
            return cls(int(data["base_generation"]), dict(data["targets"]),
                       [Change.from_json(c) for c in data["changes"]],
                       list(data.get("left_alone", [])), bool(data.get("delete_missing")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the saved plan is damaged: {exc}") from exc


def make_plan(current: dict[str, Document], wanted: dict[str, Document], base_generation: int,
              delete_missing: bool = False) -> Plan:
    """Plan bringing the database (``current``) to the ``wanted`` zones."""
    targets: dict[str, Document | None] = {}
    for origin, doc in wanted.items():
        if current.get(origin) != doc:
            targets[origin] = doc
    missing = sorted(set(current) - set(wanted))
    if delete_missing:
        targets.update(dict.fromkeys(missing))
    plan = plan_targets(current, targets, base_generation)
    plan.left_alone = [] if delete_missing else missing
    plan.delete_missing = delete_missing
    return plan


def plan_targets(current: dict[str, Document], targets: dict[str, Document | None],
                 base_generation: int) -> Plan:
    """Plan writing ``targets`` (origin -> document, None removes) over ``current``."""
    changes: list[Change] = []
    kept: dict[str, Document | None] = {}
    for origin in sorted(targets, key=_zone_order):
        before, after = current.get(origin), targets[origin]
        zone_changes = zone_changes_between(origin, before, after)
        if zone_changes:
            kept[origin] = after
            changes.extend(zone_changes)
    return Plan(base_generation, kept, changes)


def zone_changes_between(origin: str, before: Document | None,
                         after: Document | None) -> list[Change]:
    if before is None and after is None:
        return []
    _, old_settings, old_records = split_document(before) if before else (origin, None, {})
    _, new_settings, new_records = split_document(after) if after else (origin, None, {})
    changes: list[Change] = []
    if old_settings is None:
        changes.append(Change("add", origin, old=None, new=new_settings))
    elif new_settings is None:
        changes.append(Change("remove", origin, old=old_settings, new=None))
    elif old_settings != new_settings:
        changes.append(Change("change", origin, old=old_settings, new=new_settings))
    for key in sorted(set(old_records) | set(new_records), key=_record_order):
        old, new = old_records.get(key), new_records.get(key)
        if old == new:
            continue
        op: Op = "add" if old is None else "remove" if new is None else "change"
        changes.append(Change(op, origin, key[0], key[1], old, new))
    return changes


def _zone_order(origin: str) -> tuple[str, ...]:
    return tuple(reversed(origin.split(".")))


def _record_order(key: tuple[str, str]) -> tuple[tuple[str, ...], str]:
    return _zone_order(key[0]), key[1]


def _differences(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, old, new) of every leaf that differs; lists are leaves."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [(path, old, new)]
    out: list[tuple[str, Any, Any]] = []
    keys = list(old) + [k for k in new if k not in old]
    for key in keys:
        o, n = old.get(key, _MISSING), new.get(key, _MISSING)
        if o != n:
            out.extend(_differences(o, n, f"{path}.{key}" if path else str(key)))
    return out


def _fields(data: Any) -> str:
    """A mapping as ``key: value, ...`` without the record's type (it is on the line)."""
    if not isinstance(data, dict):
        return _inline(data)
    return ", ".join(f"{k}: {_inline(v)}" for k, v in data.items() if k != "type")


def _inline(value: Any) -> str:
    """Flow-YAML-like text of a value, on one line."""
    if value is _MISSING or value is None:
        return "(none)"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, str):
        plain = value and value.strip() == value and not any(c in value for c in ",:{}[]\"'#")
        return value if plain else json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def canonical(origin: str, document: Document, serial: int = 1) -> Document:
    """A stored document in today's canonical form (as stored when it does not validate)."""
    try:
        return zone_document(load_zone_data(document, f"postgres:{origin}", serial))
    except ConfigError:
        return document


def current_documents(stored: dict[str, Any],
                      wanted: dict[str, Document] | None = None) -> dict[str, Document]:
    """``zone_db.stored_zones`` output -> canonical documents by origin.

    Zones are stored in canonical form, so a stored document equal to the wanted one
    is taken as it is; the others are re-validated, so that a document stored by an
    older version never shows as a change it is not.
    """
    out: dict[str, Document] = {}
    for origin, zone in stored.items():
        if wanted is not None and wanted.get(origin) == zone.document:
            out[origin] = zone.document
        else:
            out[origin] = canonical(origin, zone.document, zone.serial)
    return out


class UnsafePlan(GeoStreamError):
    """The plan changes or deletes more than the safety thresholds allow."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def check_thresholds(plan: Plan, current: dict[str, Document], zones_held: int) -> None:
    """Raise `UnsafePlan` when `plan` changes or deletes more than THRESHOLD of a
    zone's record sets (zones of MIN_RECORD_SETS or more), or deletes more than
    THRESHOLD of the `zones_held` zones (when it deletes more than one)."""
    reasons: list[str] = []
    touched: dict[str, int] = {}
    for change in plan.changes:
        if change.name is not None and change.op in ("change", "remove"):
            touched[change.zone] = touched.get(change.zone, 0) + 1
    for origin, count in sorted(touched.items()):
        before = current.get(origin)
        if before is None or plan.targets.get(origin, before) is None:
            continue  # a removed zone: the zones rule below
        total = len(split_document(before)[2])
        if total >= MIN_RECORD_SETS and count > THRESHOLD * total:
            reasons.append(f"{origin}: would change or delete {count} of its {total} record "
                           f"sets ({100 * count // total}%, more than "
                           f"{int(THRESHOLD * 100)}%)")
    removed = sorted(o for o, doc in plan.targets.items() if doc is None)
    if len(removed) > 1 and zones_held and len(removed) > THRESHOLD * zones_held:
        reasons.append(f"would delete {len(removed)} of the {zones_held} zones "
                       f"({100 * len(removed) // zones_held}%, more than "
                       f"{int(THRESHOLD * 100)}%): {', '.join(removed[:5])}"
                       + (" ..." if len(removed) > 5 else ""))
    if reasons:
        raise UnsafePlan(reasons)
