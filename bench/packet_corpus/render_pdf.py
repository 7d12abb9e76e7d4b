"""Text PDFs with reportlab (platypus): fonts, letterheads, tables and signature blocks."""

from __future__ import annotations

import io
import random
import uuid
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4, LETTER, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)
from reportlab.platypus import (
    PageBreak as RLPageBreak,
)
from reportlab.platypus import (
    Table as RLTable,
)

from bench.packet_corpus.doc import Doc, Fields, Heading, PageBreak, Para, Sig, Space, Table
from bench.packet_corpus.scribble import scribble_png

_TTF_DIR = Path("/usr/share/fonts/truetype/dejavu")
_TTF = {
    "DejaVuSans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    "DejaVuSerif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
    "DejaVuSansCondensed": ("DejaVuSansCondensed.ttf", "DejaVuSansCondensed-Bold.ttf"),
    "DejaVuSansMono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"),
}
_BUILTIN = {
    "Helvetica": ("Helvetica", "Helvetica-Bold"),
    "Times": ("Times-Roman", "Times-Bold"),
    "Courier": ("Courier", "Courier-Bold"),
}
_registered: dict[str, tuple[str, str]] = {}


def available_fonts() -> list[str]:
    """Font families usable here: the 3 PDF base fonts plus the TTFs found on the machine."""
    fams = list(_BUILTIN)
    fams += [f for f, (reg, _) in _TTF.items() if (_TTF_DIR / reg).is_file()]
    return fams


def _font(family: str) -> tuple[str, str]:
    if family in _BUILTIN:
        return _BUILTIN[family]
    if family not in _registered:
        reg, bold = _TTF[family]
        pdfmetrics.registerFont(TTFont(family, str(_TTF_DIR / reg)))
        pdfmetrics.registerFont(TTFont(family + "-Bold", str(_TTF_DIR / bold)))
        _registered[family] = (family, family + "-Bold")
    return _registered[family]


class _Styles:
    def __init__(self, family: str, size: float) -> None:
        reg, bold = _font(family)
        self.reg, self.bold, self.size = reg, bold, size
        lead = size * 1.3
        self.body = ParagraphStyle("b", fontName=reg, fontSize=size, leading=lead)
        self.small = ParagraphStyle("s", fontName=reg, fontSize=size - 1.5, leading=lead - 2)
        self.bold_p = ParagraphStyle("bb", fontName=bold, fontSize=size, leading=lead)
        self.title = ParagraphStyle(
            "t",
            fontName=bold,
            fontSize=size + 5,
            leading=size + 9,
            alignment=TA_CENTER,
            spaceAfter=6,
        )
        self.h1 = ParagraphStyle(
            "h1", fontName=bold, fontSize=size + 1.5, leading=lead + 3, spaceBefore=6, spaceAfter=3
        )
        self.h2 = ParagraphStyle("h2", fontName=bold, fontSize=size, leading=lead, spaceBefore=3)
        self.cell = ParagraphStyle("c", fontName=reg, fontSize=size - 1, leading=size + 1)
        self.cell_b = ParagraphStyle("cb", fontName=bold, fontSize=size - 1, leading=size + 1)

    def para(self, text: str, style: ParagraphStyle, align: str = "left") -> Paragraph:
        if align != "left":
            style = ParagraphStyle(
                "x",
                parent=style,
                alignment={"center": TA_CENTER, "right": TA_RIGHT}.get(align, TA_LEFT),
            )
        return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _image(seed: int, width: float, height: float) -> Image:
    png = scribble_png(seed, width=int(width * 3), height=int(height * 3))
    return Image(io.BytesIO(png), width=width, height=height)


def _sig_content(sig: Sig, st: _Styles, width: float, rng: random.Random) -> list[Any]:
    """The flowables above the signature line (what makes it signed or not)."""
    if not sig.signed:
        return [Spacer(width, 22)]
    if sig.style == "slash_s":
        return [st.para(f"/s/ {sig.signer}", st.body)]
    if sig.style == "esig_statement":
        when = f"{sig.date} {rng.randint(8, 18):02d}:{rng.randint(0, 59):02d}"
        return [
            st.para(
                rng.choice(
                    [
                        f"Electronically signed by {sig.signer} on {when}",
                        f"Electronically signed by: {sig.signer} on {when}",
                    ]
                ),
                st.small,
            )
        ]
    if sig.style == "esig_box":
        svc = rng.choice(["SecureSign", "TrialSign eSignature", "SignFlow", "InkLess Sign"])
        ident = str(uuid.UUID(int=rng.getrandbits(128))).upper()
        lines = [
            f"{svc}",
            f"Signer: {sig.signer}",
            f"Signed: {sig.date} {rng.randint(8, 18):02d}:{rng.randint(0, 59):02d} UTC",
            f"{rng.choice(['Envelope ID', 'Document ID', 'Transaction ID'])}: {ident}",
        ]
        box = RLTable([[st.para("\n".join(lines), st.small)]], colWidths=[width * 0.95])
        box.setStyle(
            TableStyle(
                [
                    ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor("#2a4d8f")),
                    ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f1f4fb")),
                ]
            )
        )
        return [box]
    # image styles (pdf_image; wet_ink drawn the same way, then scanned)
    return [_image(sig.seed, min(width * 0.8, 150), 44)]


def signature_flowable(sig: Sig, st: _Styles, width: float, rng: random.Random) -> Any:
    """One signature block: content over a rule, the label (and date) under it."""
    if sig.style == "sig_date_blank" and not sig.signed:
        return st.para(
            f"{sig.label}: ______________________________    {sig.date_label}: ______________",
            st.body,
        )
    sig_w, date_w = width * 0.66, width * 0.3
    date_text = sig.date if sig.signed else ""
    top = [_sig_content(sig, st, sig_w, rng), st.para(date_text, st.body)]
    label = sig.label + (f"\n{sig.title}" if sig.title else "")
    rows = [top, [st.para(label, st.small), st.para(sig.date_label, st.small)]]
    if sig.style == "blank_line" and not sig.signed:
        rows = [
            [st.para("_" * 38, st.body), st.para("", st.body)],
            [st.para(label, st.small), st.para("", st.small)],
        ]
        style = []
    elif sig.style == "empty_box" and not sig.signed:
        rows[0] = [Spacer(sig_w, 30), Spacer(date_w, 30)]
        style = [
            ("BOX", (0, 0), (0, 0), 0.8, colors.black),
            ("BOX", (1, 0), (1, 0), 0.8, colors.black),
        ]
    else:
        style = [
            ("LINEABOVE", (0, 1), (0, 1), 0.7, colors.black),
            ("LINEABOVE", (1, 1), (1, 1), 0.7, colors.black),
        ]
    table = RLTable(rows, colWidths=[sig_w, date_w], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [*style, ("VALIGN", (0, 0), (-1, 0), "BOTTOM"), ("LEFTPADDING", (0, 0), (-1, -1), 2)]
        )
    )
    return KeepTogether([Spacer(width, 6), table])


def _cell(value: str | Sig, st: _Styles, width: float, rng: random.Random) -> Any:
    if isinstance(value, Sig):
        if not value.signed:
            return st.para("", st.cell)
        if value.style in ("pdf_image", "wet_ink", "docx_image"):
            return _image(value.seed, min(width - 6, 70), 20)
        if value.style == "esig_statement":
            return st.para(f"e-signed {value.signer} {value.date}", st.cell)
        return st.para(f"/s/ {value.signer}", st.cell)
    return st.para(value, st.cell)


def story(doc: Doc, st: _Styles, width: float, rng: random.Random) -> list[Any]:
    """The platypus flowables of a document."""
    out: list[Any] = []
    if doc.letterhead:
        out.append(st.para(doc.letterhead[0], st.h1, doc.letterhead_align))
        if len(doc.letterhead) > 1:
            out.append(st.para("\n".join(doc.letterhead[1:]), st.small, doc.letterhead_align))
        out.append(Spacer(width, 10))
    for block in doc.blocks:
        if isinstance(block, Heading):
            style = {0: st.title, 1: st.h1}.get(block.level, st.h2)
            out.append(st.para(block.text, style))
        elif isinstance(block, Para):
            style = st.small if block.small else (st.bold_p if block.bold else st.body)
            out.append(st.para(block.text, style, block.align))
        elif isinstance(block, Fields):
            if block.mode == "grid":
                rows = [[st.para(k, st.cell_b), st.para(v, st.cell)] for k, v in block.pairs]
                t = RLTable(rows, colWidths=[width * 0.35, width * 0.63], hAlign="LEFT")
                t.setStyle(
                    TableStyle(
                        [
                            ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                            ("VALIGN", (0, 0), (-1, -1), "TOP"),
                        ]
                    )
                )
                out.append(t)
            else:
                for k, v in block.pairs:
                    out.append(st.para(f"{k}: {v}" if k else v, st.body))
        elif isinstance(block, Table):
            rel = block.widths or [1.0] * len(block.header)
            total = sum(rel)
            cols = [width * r / total for r in rel]
            rows = [[st.para(h, st.cell_b) for h in block.header]]
            rows += [[_cell(c, st, cols[i], rng) for i, c in enumerate(r)] for r in block.rows]
            t = RLTable(rows, colWidths=cols, repeatRows=1, hAlign="LEFT")
            cmds: list[Any] = [("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
            if block.boxed:
                cmds.append(("GRID", (0, 0), (-1, -1), 0.5, colors.black))
            else:
                cmds.append(("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black))
            t.setStyle(TableStyle(cmds))
            out.append(t)
        elif isinstance(block, Sig):
            out.append(signature_flowable(block, st, width, rng))
        elif isinstance(block, Space):
            out.append(Spacer(width, block.height))
        elif isinstance(block, PageBreak):
            out.append(RLPageBreak())
    return out


def render_pdf(doc: Doc, path: Path, *, seed: int, page: str = "letter") -> None:
    """Write ``doc`` as a text PDF at ``path``."""
    rng = random.Random(seed)
    size = LETTER if page == "letter" else A4
    if doc.landscape:
        size = landscape(size)
    st = _Styles(doc.font, doc.size)
    margin = rng.uniform(16, 24) * mm
    template = SimpleDocTemplate(
        str(path),
        pagesize=size,
        leftMargin=margin,
        rightMargin=margin,
        topMargin=margin + (14 * mm if doc.header_right else 0),
        bottomMargin=margin,
        title="",
        author="",
        creator="",
        producer="",
        subject="",
    )

    def on_page(canvas: Any, tpl: Any) -> None:
        canvas.saveState()
        if doc.header_right:
            canvas.setFont(st.reg, st.size - 2)
            y = size[1] - margin + 2
            for line in doc.header_right:
                canvas.drawRightString(size[0] - margin, y, line)
                y -= st.size
        if doc.footer:
            canvas.setFont(st.reg, st.size - 2.5)
            canvas.drawString(margin, margin * 0.5, doc.footer)
        canvas.setFont(st.reg, st.size - 2.5)
        canvas.drawRightString(size[0] - margin, margin * 0.5, f"Page {canvas.getPageNumber()}")
        canvas.restoreState()

    template.build(
        story(doc, st, size[0] - 2 * margin, rng), onFirstPage=on_page, onLaterPages=on_page
    )


__all__ = ["Flowable", "available_fonts", "render_pdf"]
