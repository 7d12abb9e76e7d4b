"""Observation quantities to UCUM, with canonical units for common analytes.

Unit arithmetic is ``ucumvert`` (a UCUM grammar on top of pint); the decisions are data:

- ``data/units/unit_aliases.csv``: non-UCUM spellings seen in feeds (``lbs``, ``mmHg``,
  ``degF``...) and their UCUM code;
- ``data/units/analyte_units.csv``: per LOINC code, the canonical UCUM unit and, for analytes
  reported both as mass and as substance concentration (glucose, cholesterol, creatinine...),
  the molar mass in g/mol used to convert between mg/dL and mmol/L.

A conversion is computed once per (source unit, target unit, molar mass) through pint and cached
as an affine map ``y = a*x + b`` (temperatures are affine), so the per-record cost is a dict
lookup. Results are rounded to ``SIGNIFICANT_DIGITS`` significant digits.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from clinflow.clinical.code_systems import UCUM, canonical_system

SIGNIFICANT_DIGITS = 6


class UnitError(ValueError):
    """The unit is not UCUM (nor a known alias), or cannot be converted to the target."""


@dataclass(frozen=True)
class Analyte:
    loinc: str
    name: str
    canonical: str
    molar_mass: float | None


@dataclass(frozen=True)
class Affine:
    scale: float
    offset: float

    def apply(self, value: float) -> float:
        return round_significant(self.scale * value + self.offset)


@dataclass(frozen=True)
class QuantityResult:
    """A normalised quantity and the coercion codes that produced it (empty: unchanged)."""

    quantity: dict[str, Any]
    coercions: tuple[str, ...]


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("clinflow").joinpath(f"data/units/{name}").read_text()
    return list(csv.DictReader(text.splitlines()))


@cache
def unit_aliases() -> dict[str, str]:
    """Alias -> UCUM code (exact spelling and lower-cased)."""
    table: dict[str, str] = {}
    for row in _read_csv("unit_aliases.csv"):
        table[row["alias"]] = row["ucum"]
        table.setdefault(row["alias"].lower(), row["ucum"])
    return table


@cache
def analytes() -> dict[str, Analyte]:
    """LOINC code -> canonical unit (and molar mass when mass/substance conversion applies)."""
    return {
        row["loinc"]: Analyte(
            loinc=row["loinc"],
            name=row["analyte"],
            canonical=row["canonical_ucum"],
            molar_mass=float(row["molar_mass_g_per_mol"]) if row["molar_mass_g_per_mol"] else None,
        )
        for row in _read_csv("analyte_units.csv")
    }


@cache
def _registry() -> Any:
    from ucumvert import PintUcumRegistry

    return PintUcumRegistry()


@cache
def is_ucum(code: str) -> bool:
    """True when ``code`` parses as a UCUM expression."""
    try:
        _registry().from_ucum(code)
    except Exception:
        return False
    return True


def ucum_code_for(unit: str) -> str | None:
    """The UCUM code for a unit string: itself if valid UCUM, an alias target, else None."""
    alias = unit_aliases().get(unit) or unit_aliases().get(unit.strip().lower())
    if alias is not None:
        return alias
    return unit if is_ucum(unit) else None


@cache
def conversion(source: str, target: str, molar_mass: float | None = None) -> Affine:
    """Affine map from ``source`` to ``target`` UCUM units; raises ``UnitError``.

    Mass and substance concentrations convert through ``molar_mass`` (g/mol) when given.
    """
    reg = _registry()
    try:
        src_unit = reg.from_ucum(source)
        dst_unit = reg.from_ucum(target)
    except Exception as exc:
        raise UnitError(f"not UCUM: {source!r} or {target!r}") from exc

    def convert(x: float) -> float:
        q = reg.Quantity(x, src_unit)
        dst = reg.Quantity(1, dst_unit)
        if q.dimensionality != dst.dimensionality and molar_mass is not None:
            mm = reg.Quantity(molar_mass, "g/mol")
            q = q / mm if (q / mm).dimensionality == dst.dimensionality else q * mm
        return float(q.to(dst_unit).magnitude)

    try:
        at0, at1 = convert(0.0), convert(1.0)
    except Exception as exc:
        raise UnitError(f"cannot convert {source!r} to {target!r}") from exc
    return Affine(scale=at1 - at0, offset=at0)


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def normalise_quantity(quantity: dict[str, Any], loinc: str | None) -> QuantityResult:
    """Normalise one Quantity dict (a copy is returned; the input is not modified).

    Steps: the unit's code system to the UCUM URI, the unit to its UCUM code (alias table), then
    the value to the analyte's canonical unit when ``loinc`` is in the analyte table. A unit
    that cannot be recognised is left as is and counted as ``unit_unrecognised``.
    """
    out = dict(quantity)
    coercions: list[str] = []
    system = out.get("system")
    if isinstance(system, str) and system != UCUM and canonical_system(system) == UCUM:
        out["system"] = UCUM
        coercions.append("code_system_canonicalised:UCUM")
    raw_unit = out.get("code") if out.get("system") == UCUM else None
    if not isinstance(raw_unit, str):
        raw_unit = out.get("code") if isinstance(out.get("code"), str) else out.get("unit")
    if not isinstance(raw_unit, str) or not raw_unit:
        return QuantityResult(out, tuple(coercions))
    code = ucum_code_for(raw_unit)
    if code is None:
        coercions.append("unit_unrecognised")
        return QuantityResult(out, tuple(coercions))
    if code != raw_unit or out.get("code") != code or out.get("system") != UCUM:
        if code != raw_unit:
            coercions.append("unit_alias_to_ucum")
        out["code"] = code
        out["system"] = UCUM
        out.setdefault("unit", code)
    analyte = analytes().get(loinc) if loinc else None
    value = out.get("value")
    if analyte is None or code == analyte.canonical:
        return QuantityResult(out, tuple(coercions))
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return QuantityResult(out, tuple(coercions))
    try:
        affine = conversion(code, analyte.canonical, analyte.molar_mass)
    except UnitError:
        coercions.append("unit_not_convertible")
        return QuantityResult(out, tuple(coercions))
    converted = affine.apply(float(value))
    if not math.isfinite(converted):  # a value too large for the target unit: keep it as is
        coercions.append("unit_not_convertible")
        return QuantityResult(out, tuple(coercions))
    out["value"] = converted
    out["code"] = analyte.canonical
    out["unit"] = analyte.canonical
    coercions.append(f"unit_converted:{code}->{analyte.canonical}")
    return QuantityResult(out, tuple(coercions))
