"""The generator's document model: blocks that the PDF, scan and DOCX renderers all draw.

A layout builds a :class:`Doc` (title, letterhead, blocks); the renderers never decide
content, so a document's ground truth (type, signature blocks) is known before rendering.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Signature styles (ground truth). Signed styles:
SIGNED_STYLES = ("slash_s", "esig_statement", "esig_box", "wet_ink", "docx_image", "pdf_image")
# Unsigned styles:
UNSIGNED_STYLES = ("empty_box", "blank_line", "sig_date_blank")


@dataclass
class Sig:
    """A signature block: the label printed under/beside it, who should sign, and how it
    is (or is not) signed. ``date`` is the written signing date ('' when unsigned)."""

    label: str
    signer: str
    style: str
    signed: bool
    date: str = ""
    date_label: str = "Date"
    title: str = ""  # printed under the signer line (role), optional
    seed: int = 0  # the scribble's seed for image styles


@dataclass
class Heading:
    text: str
    level: int = 1  # 0 = title, 1 = section, 2 = sub-section


@dataclass
class Para:
    text: str
    bold: bool = False
    small: bool = False
    align: str = "left"  # left | center | right


@dataclass
class Fields:
    """Label/value pairs: ``inline`` ("Label: value" lines) or ``grid`` (a two-column table)."""

    pairs: list[tuple[str, str]]
    mode: str = "inline"


@dataclass
class Table:
    """A table; a cell is text or a :class:`Sig` (signature cell, e.g. delegation logs)."""

    header: list[str]
    rows: list[list[str | Sig]]
    widths: list[float] | None = None  # relative widths
    boxed: bool = True


@dataclass
class Space:
    height: float = 8.0


@dataclass
class PageBreak:
    pass


Block = Heading | Para | Fields | Table | Sig | Space | PageBreak


@dataclass
class Doc:
    """One document before rendering."""

    doc_type: str
    layout: str
    blocks: list[Block]
    letterhead: list[str] = field(default_factory=list)
    letterhead_align: str = "left"
    header_right: list[str] = field(default_factory=list)  # e.g. the 1572's OMB box
    footer: str = ""
    font: str = "Helvetica"
    size: float = 10.0
    landscape: bool = False

    def signatures(self) -> list[Sig]:
        """Every signature block, in reading order (including table cells)."""
        found: list[Sig] = []
        for block in self.blocks:
            if isinstance(block, Sig):
                found.append(block)
            elif isinstance(block, Table):
                found += [c for row in block.rows for c in row if isinstance(c, Sig)]
        return found
