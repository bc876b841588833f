"""A case report as PDF (reportlab): the same content as the printable page, for filing and sending.

Text is set in DejaVu Sans when the system has it (Cyrillic and other scripts), else in Helvetica.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from facesearch.web import meaning
from facesearch.web.case_view import CaseView
from facesearch.web.i18n import N_, Language

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)

DECISION_LABELS = {"match": N_("Match"), "no_match": N_("No match"), "unsure": N_("Unsure")}


@functools.cache
def _font() -> str:
    for path in FONT_CANDIDATES:
        if path.is_file():
            pdfmetrics.registerFont(TTFont("ReportSans", str(path)))
            return "ReportSans"
    return "Helvetica"


def render(view: CaseView, language: Language, *, printed_by: str) -> bytes:
    """The report of ``view`` as PDF bytes."""
    _ = language.gettext
    font = _font()
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontName=font, fontSize=8.5, leading=11)
    title = ParagraphStyle("title", parent=styles["Title"], fontName=font, fontSize=16)
    heading = ParagraphStyle("heading", parent=styles["Heading2"], fontName=font, fontSize=11)

    def para(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(text).replace("\n", "<br/>"), style)

    case = view.case
    story: list[object] = [
        para(f"{_('Case report')}: {case['case_id']}" + (f" · {case['title']}" if case["title"] else ""), title),
        para(
            _("Opened by %(user)s on %(at)s.", user=case["opened_by"], at=meaning.when(case["created_at"]))
            + " "
            + _("Printed by %(user)s.", user=printed_by)
        ),
        para(_("A candidate is a lead for a person to review, never an identification.")),
        Spacer(1, 4 * mm),
    ]
    for search in view.searches:
        story.append(para(_("Search by %(user)s on %(at)s", user=search.actor, at=meaning.when(search.at)), heading))
        story.append(
            para(
                _(
                    "Purpose: %(purpose)s. Compared with %(n)s faces. Audit record %(seq)s.",
                    purpose=search.purpose or "—",
                    n=meaning.number(search.faces_searched or 0),
                    seq=search.seq,
                )
            )
        )
        rows: list[list[object]] = [
            [para(_(h)) for h in ("Face", "Candidate", "Similarity", "False-match rate", "Meaning", "Decisions")]
        ]
        for c in search.candidates:
            picture: object = ""
            if c.crop:
                picture = Image(io.BytesIO(c.crop), width=18 * mm, height=18 * mm, kind="proportional")
            where = f"{c.rank} · {_('face')} {c.face_id}"
            if c.details is not None:
                where += f"\n{c.details.collection}" + (f"\n{c.details.subject}" if c.details.subject else "")
                if c.details.source_url:
                    where += f"\n{c.details.source_url}"
            decided = "\n".join(
                f"{_(DECISION_LABELS[d['decision']])} ({d['decided_by']}, {meaning.when(d['created_at'])}, "
                f"{_('audit record')} {d['audit_seq']})" + (f": {d['note']}" if d["note"] else "")
                for d in c.decisions
            ) or _("none yet")
            rows.append(
                [
                    picture,
                    para(where),
                    para(f"{c.similarity:.3f}"),
                    para(meaning.rate(c.fmr)),
                    para(c.meaning),
                    para(decided),
                ]
            )
        table = Table(rows, colWidths=[20 * mm, 38 * mm, 18 * mm, 22 * mm, 42 * mm, 40 * mm], repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
                ]
            )
        )
        story += [table, Spacer(1, 4 * mm)]
    story.append(para(_("History"), heading))
    history_rows: list[list[object]] = [[para(_(h)) for h in ("Record", "When", "Who", "What", "Record hash")]]
    history_rows += [
        [para(str(r["seq"])), para(meaning.when(r["at"])), para(r["actor"]), para(r["action"]), para(r["hash"][:16])]
        for r in view.history
    ]
    history = Table(history_rows, colWidths=[16 * mm, 46 * mm, 34 * mm, 40 * mm, 40 * mm], repeatRows=1)
    history.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.grey)]))
    story.append(history)
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=f"Case report {case['case_id']}",
        author="facesearch",
    )
    document.build(story)
    return buffer.getvalue()
