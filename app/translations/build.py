"""Merge the Swedish catalog parts (one .po per area of the app, plus FAB's own strings) into
`sv/LC_MESSAGES/messages.po` and compile it to `.mo`.

Run `python -m app.translations.build`; `make` and the test session do it before starting.
"""

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

HERE = Path(__file__).resolve().parent


def build(locale: str = "sv") -> Path:
    merged = Catalog(locale=locale, domain="messages", charset="utf-8")
    for part in sorted((HERE / locale / "parts").glob("*.po")):
        with part.open("rb") as handle:
            for message in read_po(handle, locale=locale):
                if message.id and message.string:
                    merged[message.id] = message
    out_dir = HERE / locale / "LC_MESSAGES"
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "messages.po").open("wb") as handle:
        write_po(handle, merged)
    with (out_dir / "messages.mo").open("wb") as handle:
        write_mo(handle, merged)
    return out_dir / "messages.mo"


if __name__ == "__main__":
    print(build())
