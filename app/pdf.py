"""Printable documents rendered from Jinja templates with xhtml2pdf: the receipt (kvittens) the
recipient signs, and the registered-mail letter (manual receipt plus information).

The documents are always Swedish: they are paper forms of the routine. The font is Bitstream
Vera, shipped with reportlab, so å, ä and ö render on any machine without system fonts.
"""

import base64
import io
from pathlib import Path

import reportlab
from flask import current_app, render_template
from PIL import Image, ImageDraw
from reportlab.graphics.barcode.code128 import Code128
from xhtml2pdf import pisa
from xhtml2pdf.config.resources import ResourceAccessPolicy

from app import access, clock, labels

FONT_DIR = Path(reportlab.__file__).resolve().parent / "fonts"
FONTS = {"regular": FONT_DIR / "Vera.ttf", "bold": FONT_DIR / "VeraBd.ttf"}

# Code128 as a bitmap: each module 3 px wide, 10 modules of quiet zone on each side.
MODULE_PX = 3
QUIET_MODULES = 10
BAR_HEIGHT_PX = 90


class PdfError(RuntimeError):
    """xhtml2pdf could not render a document."""


def render_receipt(issuance) -> bytes:
    """The receipt for an in-person issuance: one A4 page to print, sign and send."""
    return _render("pdf/receipt.html", issuance)


def render_mail_letter(issuance) -> bytes:
    """The registered-mail letter: the manual receipt and the information to the recipient."""
    return _render("pdf/mail_letter.html", issuance)


def receipt_filename(issuance) -> str:
    return f"kvittens-{issuance.card.serial}.pdf"


def code128_png(value: str) -> bytes:
    """A scannable Code128 barcode of `value` as PNG (bars from reportlab's encoder)."""
    barcode = Code128(value)
    barcode.validate()
    barcode.encode()
    barcode.decompose()
    # decomposed: one letter per element, upper case a bar, lower case a space, A=1 module.
    widths = [(ord(ch.upper()) - ord("A") + 1, ch.isupper()) for ch in barcode.decomposed]
    modules = sum(width for width, _bar in widths) + 2 * QUIET_MODULES
    image = Image.new("1", (modules * MODULE_PX, BAR_HEIGHT_PX), 1)
    draw = ImageDraw.Draw(image)
    x = QUIET_MODULES * MODULE_PX
    for width, is_bar in widths:
        if is_bar:
            draw.rectangle([x, 0, x + width * MODULE_PX - 1, BAR_HEIGHT_PX - 1], fill=0)
        x += width * MODULE_PX
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _context(issuance) -> dict:
    issued_at = issuance.issued_at or issuance.created_at or clock.now()
    return {
        "issuance": issuance,
        "card": issuance.card,
        # As the reader may see them (masked for protected identity without clearance).
        "recipient": access.shown(issuance.recipient),
        "attesters": [access.shown(link.person) for link in issuance.attesters],
        "reason_name": labels.REASON_SV.get(issuance.reason, issuance.reason),
        "issued_on": clock.to_local(issued_at).date(),
        "barcode_uri": _data_uri(code128_png(issuance.card.serial)),
        "fonts": {name: path.as_uri() for name, path in FONTS.items()},
        "config": current_app.config,
    }


# The templates read only the bundled fonts, wherever the packages are installed; nothing remote.
_POLICY = ResourceAccessPolicy(allow_remote=False, base_dir=FONT_DIR, extra_roots=(FONT_DIR,))


def _render(template: str, issuance) -> bytes:
    html = render_template(template, **_context(issuance))
    out = io.BytesIO()
    result = pisa.CreatePDF(html, dest=out, encoding="utf-8", resource_policy=_POLICY)
    if result.err:
        raise PdfError(f"{template}: {result.err} rendering error(s)")
    return out.getvalue()
