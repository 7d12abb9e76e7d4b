"""``clinflow packets config init|validate|show``: the study configuration folder.

A study configuration folder (setting ``packets_config_dir``, env
``CLINFLOW_PACKETS_CONFIG_DIR``) overrides the packet flow's shipped data files file by file
(:mod:`clinflow.packets.data_files`). These commands copy the shipped files into a new folder,
check a folder with the same loaders the pipeline uses (plus cross-checks between the files
and the settings), and show the effective configuration with where each file came from.

Validation and ``show`` switch the data-file configuration for the duration of the call only:
the previous configuration is restored and every loader cache cleared afterwards.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from clinflow.packets import data_files
from clinflow.packets.models import DocumentType
from clinflow.settings import Settings, get_settings

config_app = typer.Typer(
    help="The study configuration folder: init, validate, show.", no_args_is_help=True
)
WIDE = 200
console = Console(width=None if sys.stdout.isatty() else WIDE)
err = Console(stderr=True, width=None if sys.stderr.isatty() else WIDE)

# What the packet flow reads through data_files (the rest of clinflow/data is not overlaid).
PACKET_FILES = ("aliases.yaml",)
PACKET_FOLDERS = ("checklists", "rules")
ALIAS_KEYS = frozenset({"regions", "doc_types", "date_order"})
DATE_ORDERS = frozenset({"MDY", "DMY", "YMD"})
SIGNATURE_LISTS = ("labels", "typed", "e_signature", "e_signature_box", "e_signature_signer")


@dataclass(frozen=True)
class Problem:
    """One configuration problem: ``file: key: problem`` (key empty for the whole file)."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.key}: {self.message}"
            if self.key
            else (f"{self.file}: {self.message}")
        )


@dataclass
class Report:
    """What :func:`validate_config` found. ``valid`` when there is no problem (warnings ok)."""

    folder: str | None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    protocols: int = 0
    rules: int = 0
    overridden: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "folder": self.folder,
            "problems": [asdict(p) | {"text": str(p)} for p in self.problems],
            "warnings": [asdict(p) | {"text": str(p)} for p in self.warnings],
            "regions": self.regions,
            "protocols": self.protocols,
            "rules": self.rules,
            "overridden": self.overridden,
        }


class ConfigInitError(Exception):
    """``config init`` would overwrite a file (or cannot write the folder)."""


# --------------------------------------------------------------------------- the files
def shipped_files() -> list[str]:
    """Relative paths of the shipped data files the packet flow reads (``rules/x.yaml``...)."""
    root = resources.files("clinflow").joinpath("data")
    names = [n for n in PACKET_FILES if root.joinpath(n).is_file()]
    for folder in PACKET_FOLDERS:
        node = root.joinpath(folder)
        names += sorted(
            f"{folder}/{c.name}" for c in node.iterdir() if c.is_file() and c.name.endswith(".yaml")
        )
    return names


def _is_known(rel: str) -> bool:
    """Whether the pipeline reads ``rel`` from a configuration folder."""
    if rel in shipped_files():
        return True
    folder, _, name = rel.partition("/")
    return folder == "checklists" and "/" not in name and name.endswith(".yaml")


def init_config(folder: Path) -> list[str]:
    """Copy the shipped data files into ``folder`` (created if missing), same layout.

    Writes nothing when any target already exists: raises :class:`ConfigInitError` naming it.
    Returns the relative paths written.
    """
    folder = folder.expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigInitError(f"{folder} exists and is not a folder")
    names = shipped_files()
    for rel in names:
        target = folder / rel
        if target.exists() or target.is_symlink():
            raise ConfigInitError(f"{target} already exists; not overwriting it")
    root = resources.files("clinflow").joinpath("data")
    for rel in names:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(root.joinpath(*rel.split("/")).read_bytes())
    return names


@contextmanager
def using_config(folder: Path | None) -> Iterator[None]:
    """Read the data files from ``folder`` (None: shipped defaults) inside the block.

    On exit the previous configuration (explicit or from the environment) is restored and
    every registered loader cache cleared (:func:`clinflow.packets.data_files.configure`).
    """
    was_configured = data_files._configured
    previous = data_files._config_dir
    data_files.configure(folder)
    try:
        yield
    finally:
        data_files.configure(previous)
        data_files._configured = was_configured


def configured_folder(settings: Settings | None = None) -> Path | None:
    """The configuration folder in effect: the setting, else what data_files was given.

    An empty ``CLINFLOW_PACKETS_CONFIG_DIR`` means none (as data_files reads it), not ".".
    """
    if os.environ.get(data_files.ENV) == "":
        return None
    settings = settings or get_settings()
    return settings.packets_config_dir or data_files.config_dir()


# --------------------------------------------------------------------------- validation
def _dotted(loc: tuple[int | str, ...] | list[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}" if out else str(part)
    return out


# Union members pydantic names in an error location ("int", "literal['GAP']", "LabelSpec").
_UNION_TAG = re.compile(
    r"^(?:int|float|str|bool|none|[a-z][a-z-]*\[.*\]|[A-Z][a-z]+(?:[A-Z][a-z]+)+)$"
)


def _error_message(e: Any) -> str:
    loc = tuple(e["loc"])
    if e["type"] == "extra_forbidden":
        return "unknown key"
    if loc and loc[-1] == "[key]":
        expected = (e.get("ctx") or {}).get("expected")
        return f"unknown key {e['input']!r}" + (f" (expected {expected})" if expected else "")
    if e["type"] == "enum":
        return f"unknown value {e['input']!r}: {e['msg']}"
    if e["type"] == "missing":
        return "required key missing"
    return str(e["msg"])


def _from_validation(file: str, exc: ValidationError, prefix: str = "") -> list[Problem]:
    """One problem per location (errors of a union's members merged), keys dotted."""
    by_key: dict[str, list[str]] = {}
    inputs: dict[str, Any] = {}
    for e in exc.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))
        key = _dotted(loc)
        if prefix:
            key = f"{prefix}.{key}" if key and not key.startswith("[") else f"{prefix}{key}"
        message = _error_message(e)
        if message not in by_key.setdefault(key, []):
            by_key[key].append(message)
        inputs[key] = e.get("input")
    problems = []
    for key, messages in by_key.items():
        if len(messages) == 1:
            problems.append(Problem(file, key, messages[0]))
        else:
            value = inputs[key]
            shown = f" {value!r}" if isinstance(value, str | int | float | list) else ""
            problems.append(
                Problem(file, key, f"value{shown} fits none of: " + "; ".join(messages))
            )
    return problems


def _strip_subject(file: str, message: str) -> str:
    """A loader's message without its own leading file name (the report names the file)."""
    for lead in (file, file.rsplit("/", 1)[-1]):
        if message.startswith(lead + ":"):
            return message[len(lead) + 1 :].strip()
        if message.startswith(lead + " "):
            return message[len(lead) + 1 :].strip()
    return re.sub(r"^/\S+:\s*", "", message)


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")


def _regex_problems(file: str, raw: Any) -> list[Problem]:
    """Every string of the file that does not compile as a regular expression."""
    found = []
    for path, text in _strings(raw):
        try:
            re.compile(text)
        except re.error as exc:
            found.append(Problem(file, path, f"not a valid regular expression ({exc})"))
    return found


def _raw(file: str) -> Any:
    return data_files.read_yaml(*file.split("/"))


def _rule_rows(file: str) -> list[Problem]:
    """Row-by-row validation of the rule table, so a problem names its row."""
    from clinflow.packets.rules import Rule

    raw = _raw(file)
    problems: list[Problem] = []
    for i, row in enumerate(raw.get("rules") or [] if isinstance(raw, dict) else []):
        try:
            Rule.model_validate(row)
        except ValidationError as exc:
            code = row.get("code") if isinstance(row, dict) else None
            for p in _from_validation(file, exc, prefix=f"rules[{i}]"):
                note = f" (rule {code})" if code else ""
                problems.append(Problem(p.file, p.key, p.message + note))
    return problems


def _signature_shape(file: str) -> list[Problem]:
    """The shape signatures.py and signature_ink.py expect (the file has no model)."""
    raw = _raw(file)
    if not isinstance(raw, dict):
        return [Problem(file, "", "must be a mapping")]
    problems = []
    for key in SIGNATURE_LISTS:
        value = raw.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(Problem(file, key, "required: a list of regular expressions"))
    ink = raw.get("ink")
    if not isinstance(ink, dict):
        problems.append(Problem(file, "ink", "required: a mapping of thresholds"))
    else:
        for k, v in ink.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                problems.append(Problem(file, f"ink.{k}", f"must be a number, not {v!r}"))
    return problems


def _loaders() -> list[tuple[str, Callable[[], object]]]:
    """(file, loader) for every data file, the loaders being the pipeline's own."""
    from clinflow.packets import checklists, protocol_matrix, rules, signature_ink, signatures
    from clinflow.packets.classify import _rules as classification_rules
    from clinflow.packets.extract import extraction_rules
    from clinflow.packets.manifest import _aliases

    found: list[tuple[str, Callable[[], object]]] = [
        (f"checklists/{region}.yaml", partial(checklists.load_checklist, region))
        for region in checklists.available_regions()
    ]
    found += [
        ("aliases.yaml", _aliases),
        ("rules/classification.yaml", classification_rules),
        ("rules/extraction.yaml", extraction_rules),
        ("rules/protocol_versions.yaml", protocol_matrix.load_protocol_matrix),
        ("rules/signatures.yaml", signatures._patterns),
        ("rules/signatures.yaml", signature_ink._config),
        ("rules/signatures.yaml", signatures.label_pattern),
        ("rules/validation_rules.yaml", rules.rule_table),
    ]
    return found


def _load(file: str, loader: Callable[[], object]) -> list[Problem]:
    try:
        loader()
    except ValidationError as exc:
        if file == "rules/validation_rules.yaml":
            return _rule_rows(file) or _from_validation(file, exc)
        return _from_validation(file, exc)
    except data_files.DataFileError as exc:
        return [Problem(file, "", _strip_subject(file, str(exc)))]
    except re.error as exc:
        return _regex_problems(file, _raw(file)) or [
            Problem(file, "", f"a regular expression does not compile ({exc})")
        ]
    except KeyError as exc:
        return [Problem(file, str(exc.args[0]) if exc.args else "", "required key missing")]
    except (TypeError, ValueError, AttributeError) as exc:
        return [Problem(file, "", f"not shaped as expected ({type(exc).__name__}: {exc})")]
    return []


def _walk(folder: Path) -> tuple[list[Problem], list[Problem], set[str]]:
    """Problems of the folder's files themselves: links out, size, YAML syntax, unknown files.

    Returns (problems, warnings, files whose YAML cannot be read at all).
    """
    problems: list[Problem] = []
    warnings: list[Problem] = []
    broken: set[str] = set()
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = here / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                target = Path(os.path.realpath(path))
                if not target.is_relative_to(root):
                    problems.append(
                        Problem(rel, "", "symbolic link leading outside the configuration folder")
                    )
                    broken.add(rel)
                    continue
                if rel.startswith("checklists/") and rel not in shipped_files():
                    warnings.append(
                        Problem(rel, "", "symbolic link: not listed as a region (copy the file)")
                    )
            if name not in filenames:
                continue
            if not _is_known(rel):
                if not name.lower().startswith("readme"):
                    warnings.append(Problem(rel, "", "not a data file the pipeline reads; ignored"))
                continue
            size = path.stat().st_size
            if size > data_files.MAX_BYTES:
                problems.append(
                    Problem(rel, "", f"{size} bytes: larger than {data_files.MAX_BYTES}")
                )
                broken.add(rel)
                continue
            try:
                yaml.safe_load(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                problems.append(Problem(rel, "", "not UTF-8 text"))
                broken.add(rel)
            except yaml.YAMLError as exc:
                problems.append(Problem(rel, _yaml_where(exc), _yaml_problem(exc)))
                broken.add(rel)
    return problems, warnings, broken


def _yaml_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    text = " ".join(str(p) for p in (context, problem) if p)
    return f"YAML syntax error: {text or exc}"


def _cross_checks(served: tuple[str, ...]) -> list[Problem]:
    """Consistency between the files and the settings (inside :func:`using_config`)."""
    from clinflow.packets.checklists import available_regions, load_checklist
    from clinflow.packets.protocol_matrix import load_protocol_matrix

    problems: list[Problem] = []
    regions = set(available_regions())
    for region in served:
        if region not in regions:
            problems.append(
                Problem(
                    f"checklists/{region}.yaml",
                    "",
                    f"missing: region {region!r} is served (packets_regions) but has no checklist",
                )
            )
    for region in sorted(regions):
        try:
            checklist = load_checklist(region)
        except Exception:
            continue  # reported by the loader
        if DocumentType.UNKNOWN in checklist.documents:
            problems.append(
                Problem(
                    f"checklists/{region}.yaml",
                    "documents.UNKNOWN",
                    "UNKNOWN is not a document type a checklist can ask for",
                )
            )
    matrix_file = "rules/protocol_versions.yaml"
    try:
        matrix = load_protocol_matrix()
    except Exception:
        matrix = None
    if matrix is not None:
        for number, entry in matrix.protocols.items():
            if number != number.upper():
                problems.append(
                    Problem(
                        matrix_file,
                        f"protocols.{number}",
                        f"protocol numbers are looked up in upper case: write {number.upper()!r}",
                    )
                )
            for region in entry.us_ind_regions:
                if region not in regions:
                    problems.append(
                        Problem(
                            matrix_file,
                            f"protocols.{number}.us_ind_regions",
                            f"region {region!r} has no checklist",
                        )
                    )
            for version, spec in entry.versions.items():
                for region in spec.regions:
                    if region not in regions:
                        problems.append(
                            Problem(
                                matrix_file,
                                f"protocols.{number}.versions.{version}.regions",
                                f"region {region!r} has no checklist",
                            )
                        )
    problems += _alias_checks(regions)
    return problems


def _alias_checks(regions: set[str]) -> list[Problem]:
    file = "aliases.yaml"
    try:
        raw = _raw(file) or {}
    except Exception:
        return []  # reported by the loader
    if not isinstance(raw, dict):
        return [Problem(file, "", "must be a mapping (regions, doc_types, date_order)")]
    problems = [Problem(file, str(k), "unknown key") for k in raw if k not in ALIAS_KEYS]
    types = {t.value for t in DocumentType}
    for section, known, what in (("regions", regions, "region"), ("doc_types", types, "type")):
        mapping = raw.get(section) or {}
        if not isinstance(mapping, dict):
            problems.append(Problem(file, section, "must be a mapping alias: target"))
            continue
        for alias, target in mapping.items():
            if str(target) not in known:
                have = "has no checklist" if what == "region" else "is not a document type"
                problems.append(Problem(file, f"{section}.{alias}", f"{target!r} {have}"))
    orders = raw.get("date_order") or {}
    if not isinstance(orders, dict):
        problems.append(Problem(file, "date_order", "must be a mapping ORDER: [countries]"))
        return problems
    for order, countries in orders.items():
        if order not in DATE_ORDERS:
            problems.append(
                Problem(file, f"date_order.{order}", f"unknown order; use {sorted(DATE_ORDERS)}")
            )
        if not isinstance(countries, list):
            problems.append(Problem(file, f"date_order.{order}", "must be a list of countries"))
            continue
        for i, country in enumerate(countries):
            if not (isinstance(country, str) and re.fullmatch(r"[A-Za-z]{2}", country)):
                problems.append(
                    Problem(file, f"date_order.{order}[{i}]", f"{country!r} is not a country code")
                )
    return problems


def validate_config(folder: Path | None, *, settings: Settings | None = None) -> Report:
    """Load every data file from ``folder`` (None: shipped defaults) with the pipeline's
    loaders, cross-check them, and return what is wrong. Never raises for bad data."""
    settings = settings or get_settings()
    report = Report(folder=str(folder) if folder else None)
    broken: set[str] = set()
    if folder is not None:
        if not folder.is_dir():
            report.problems.append(Problem(str(folder), "", "no such configuration folder"))
            return report
        problems, warnings, broken = _walk(folder)
        report.problems += problems
        report.warnings += warnings
    with using_config(folder):
        # The shape checks of files without a model first: their messages name the key,
        # where the loader's own exception (TypeError, ValueError) would not.
        shaped = [p for p in _shape_checks() if p.file not in broken]
        report.problems += shaped
        keys = {(p.file, p.key) for p in shaped}
        for file, loader in _loaders():
            if file in broken:
                continue
            for p in _load(file, loader):
                vague = not p.key and any(s.file == file for s in shaped)
                if (p.file, p.key) not in keys and not vague:
                    keys.add((p.file, p.key))
                    report.problems.append(p)
        report.problems += _cross_checks(settings.packets_region_list)
        report.regions, report.protocols, report.rules = _counts()
        report.overridden = [rel for rel in _all_files() if _source(rel)[0] == "config"]
    report.problems.sort(key=lambda p: (p.file, p.key))
    return report


def _shape_checks() -> list[Problem]:
    try:
        return _signature_shape("rules/signatures.yaml")
    except Exception:
        return []


def _counts() -> tuple[list[str], int, int]:
    from clinflow.packets.checklists import available_regions
    from clinflow.packets.protocol_matrix import load_protocol_matrix
    from clinflow.packets.rules import rule_table

    protocols = rules = 0
    try:
        protocols = len(load_protocol_matrix().protocols)
    except Exception:
        pass
    try:
        rules = len(rule_table())
    except Exception:
        pass
    return available_regions(), protocols, rules


# --------------------------------------------------------------------------- show
def _all_files() -> list[str]:
    from clinflow.packets.checklists import available_regions

    names = set(shipped_files()) | {f"checklists/{r}.yaml" for r in available_regions()}
    return sorted(names)


def _source(rel: str) -> tuple[str, str]:
    """("config" | "shipped" | "error", path or message) for data file ``rel``."""
    try:
        where = data_files.source_of(*rel.split("/"))
    except data_files.DataFileError as exc:
        return "error", _strip_subject(rel, str(exc))
    if where.startswith("(default)"):
        return "shipped", f"clinflow/data/{rel}"
    return "config", where


def _summary(rel: str) -> dict[str, Any]:
    """A short, JSON-ready summary of one data file as the pipeline reads it."""
    from clinflow.packets import checklists, protocol_matrix, rules
    from clinflow.packets.classify import _rules as classification_rules
    from clinflow.packets.extract import extraction_rules
    from clinflow.packets.manifest import _aliases

    if rel.startswith("checklists/"):
        checklist = checklists.load_checklist(rel.split("/")[1].removesuffix(".yaml"))
        return {
            "region": checklist.region,
            "name": checklist.name,
            "countries": checklist.countries,
            "documents": {
                str(t.value): item.model_dump(mode="json")
                for t, item in checklist.documents.items()
            },
        }
    if rel == "rules/protocol_versions.yaml":
        matrix = protocol_matrix.load_protocol_matrix()
        return {
            "protocols": {
                number: entry.model_dump(mode="json") for number, entry in matrix.protocols.items()
            }
        }
    if rel == "rules/validation_rules.yaml":
        table = rules.rule_table()
        return {
            "rules": len(table),
            "params": {code: dict(r.params) for code, r in table.items() if r.params},
        }
    if rel == "rules/classification.yaml":
        cls_rules, _ = classification_rules()
        thresholds = cls_rules.model_dump(mode="json", exclude={"types"})
        counts = {str(t.value): len(rows) for t, rows in cls_rules.types.items()}
        return {"thresholds": thresholds, "rules_per_type": counts}
    if rel == "rules/extraction.yaml":
        compiled = extraction_rules()
        return {"fields": sorted(compiled.fields), "ranges": len(compiled.ranges)}
    if rel == "rules/signatures.yaml":
        raw = _raw(rel)
        return {
            "labels": len(raw.get("labels") or []),
            "patterns": {k: len(raw.get(k) or []) for k in SIGNATURE_LISTS[1:]},
            "ink": raw.get("ink") or {},
        }
    if rel == "aliases.yaml":
        regions, types, orders = _aliases()
        return {
            "region_aliases": len(regions),
            "doc_type_aliases": len(types),
            "date_order_countries": len(orders),
        }
    return {}


def _rule_overrides(folder: Path | None) -> list[dict[str, Any]]:
    """Rule rows whose params or category differ from the shipped table (or are new)."""
    from clinflow.packets.rules import rule_table

    with using_config(None):
        shipped = dict(rule_table())
    with using_config(folder):
        effective = dict(rule_table())
    changes: list[dict[str, Any]] = []
    for code, rule in effective.items():
        base = shipped.get(code)
        if base is None:
            changes.append({"code": code, "change": "added", "category": str(rule.category)})
            continue
        if base.category != rule.category:
            changes.append(
                {
                    "code": code,
                    "change": "category",
                    "shipped": str(base.category),
                    "effective": str(rule.category),
                }
            )
        for name in sorted(set(base.params) | set(rule.params)):
            if base.params.get(name) != rule.params.get(name):
                changes.append(
                    {
                        "code": code,
                        "change": "param",
                        "param": name,
                        "shipped": base.params.get(name),
                        "effective": rule.params.get(name),
                    }
                )
    changes += [{"code": c, "change": "removed"} for c in shipped if c not in effective]
    return changes


def effective_config(folder: Path | None, *, settings: Settings | None = None) -> dict[str, Any]:
    """The effective configuration with ``folder`` (None: shipped defaults), JSON-ready.

    A file that cannot be read is reported in its entry (``error``), never raised.
    """
    settings = settings or get_settings()
    files: list[dict[str, Any]] = []
    with using_config(folder):
        for rel in _all_files():
            source, where = _source(rel)
            entry: dict[str, Any] = {"file": rel, "source": source}
            if source == "error":
                entry["error"] = where
            else:
                entry["path"] = where
                try:
                    entry["summary"] = _summary(rel)
                except Exception as exc:
                    entry["error"] = _describe(rel, exc)
            files.append(entry)
    try:
        overrides: list[dict[str, Any]] | dict[str, str] = _rule_overrides(folder)
    except Exception as exc:
        overrides = {"error": _describe("rules/validation_rules.yaml", exc)}
    trust = settings.pdfsig_trust_bundle
    return {
        "config_dir": str(folder) if folder else None,
        "served_regions": list(settings.packets_region_list),
        "pdfsig_trust_bundle": str(trust) if trust else None,
        "files": files,
        "rule_overrides": overrides,
    }


def _describe(rel: str, exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(p) for p in _from_validation(rel, exc))
    return _strip_subject(rel, f"{exc}") or type(exc).__name__


# --------------------------------------------------------------------------- rendering
def _table(*headers: str, title: str | None = None) -> Table:
    table = Table(title=title)
    for h in headers:
        table.add_column(h, overflow="fold")
    return table


def _item_text(name: str, item: dict[str, Any]) -> str:
    flags = ["required" if item.get("required") else "optional"]
    if item.get("signature_required"):
        flags.append("signed")
    if item.get("digital_signature") == "required":
        flags.append("digital signature")
    if item.get("min_count", 1) > 1:
        flags.append(f"x{item['min_count']}")
    if item.get("accepted_versions"):
        flags.append("versions " + ", ".join(item["accepted_versions"]))
    if item.get("required_when"):
        flags.append("when " + ", ".join(item["required_when"]))
    return f"{name} ({'; '.join(flags)})"


def print_effective(config: dict[str, Any]) -> None:
    """The effective configuration as tables (see :func:`effective_config`)."""
    console.print(f"configuration folder: {config['config_dir'] or '(none: shipped defaults)'}")
    console.print("served regions: " + ", ".join(config["served_regions"]))
    files = _table("file", "source", "path / problem", title="data files")
    for f in config["files"]:
        files.add_row(f["file"], f["source"], f.get("error") or f.get("path", ""))
    console.print(files)
    regions = _table("region", "name", "countries", "documents", title="checklists")
    protocols = _table("protocol", "version", "effective", "superseded", "regions", "US IND")
    protocols.title = "protocol versions"
    for f in config["files"]:
        summary = f.get("summary") or {}
        if "documents" in summary:
            regions.add_row(
                summary["region"],
                summary["name"],
                ", ".join(summary["countries"]),
                "\n".join(_item_text(k, v) for k, v in summary["documents"].items()),
            )
        for number, entry in (summary.get("protocols") or {}).items():
            for version, spec in entry["versions"].items():
                protocols.add_row(
                    number,
                    version,
                    spec["effective"],
                    spec.get("superseded") or "",
                    ", ".join(spec["regions"]),
                    entry.get("us_ind") or "",
                )
    console.print(regions)
    console.print(protocols)
    overrides = config["rule_overrides"]
    if isinstance(overrides, dict):
        console.print(f"[red]rule table:[/] {overrides['error']}")
    elif overrides:
        table = _table("rule", "change", "param", "shipped", "effective", title="rule overrides")
        for o in overrides:
            table.add_row(
                o["code"],
                o["change"],
                str(o.get("param", "")),
                str(o.get("shipped", "")),
                str(o.get("effective", o.get("category", ""))),
            )
        console.print(table)
    else:
        console.print("rule table: as shipped (no parameter overrides)")


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# --------------------------------------------------------------------------- commands
@config_app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="The new configuration folder.")],
) -> None:
    """Copy the shipped checklists, protocol matrix, vocabularies and rule table into DIR."""
    try:
        written = init_config(directory)
    except (ConfigInitError, OSError) as exc:
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    for rel in written:
        console.print(f"  {directory / rel}")
    console.print(
        f"{len(written)} files written. Edit them, then: clinflow packets config validate "
        f"{directory}; use it with CLINFLOW_PACKETS_CONFIG_DIR={directory}"
    )


@config_app.command("validate")
def validate(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Folder to check; default: the configured one, else the defaults."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Load every data file with the pipeline's loaders and cross-check them (exit 1 if bad)."""
    folder = directory if directory is not None else configured_folder()
    report = validate_config(folder)
    if as_json:
        _emit_json(report.to_json())
    else:
        for w in report.warnings:
            console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
        for p in report.problems:
            console.print(f"[red]error:[/] {p}", highlight=False, soft_wrap=True)
        where = str(folder) if folder else "shipped defaults"
        if report.valid:
            console.print(
                f"[green]valid[/]: {where}: {len(report.regions)} regions "
                f"({', '.join(report.regions)}), {report.protocols} protocols, "
                f"{report.rules} rules; {len(report.overridden)} file(s) from the folder",
                highlight=False,
            )
        else:
            console.print(f"[red]invalid[/]: {where}: {len(report.problems)} problem(s)")
    if not report.valid:
        raise typer.Exit(1)


@config_app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Show this folder instead of the configured one.")
    ] = None,
) -> None:
    """The effective configuration: each data file's source and what it says."""
    folder = directory if directory is not None else configured_folder()
    config = effective_config(folder)
    if as_json:
        _emit_json(config)
    else:
        print_effective(config)


def register(packets: typer.Typer) -> None:
    """Add ``config`` to the ``clinflow packets`` group."""
    packets.add_typer(config_app, name="config")


__all__ = [
    "ConfigInitError",
    "Problem",
    "Report",
    "config_app",
    "effective_config",
    "init_config",
    "register",
    "shipped_files",
    "using_config",
    "validate_config",
]
