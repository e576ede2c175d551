"""Merge the Swedish catalog parts (one .po per area of the app, plus FAB's own strings) into
`sv/LC_MESSAGES/messages.po` and compile it to `.mo`.

Run `python -m app.translations.build`; `make` and the test session do it before starting.
"""

import os
import tempfile
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
    # Write beside and rename, so a process reading the catalog never sees half a file.
    for name, writer in (("messages.po", write_po), ("messages.mo", write_mo)):
        with tempfile.NamedTemporaryFile("wb", dir=out_dir, delete=False) as handle:
            writer(handle, merged)
        os.replace(handle.name, out_dir / name)
    return out_dir / "messages.mo"


if __name__ == "__main__":
    print(build())
