"""Docs that list a catalogue (error codes, event types) keep it between two markers; this
puts a catalogue's fresh text there, so the docs and the code never disagree."""

from __future__ import annotations

from pathlib import Path


def write_between(path: str, start: str, end: str, text: str) -> bool:
    """Put `text` between the `start` and `end` markers of the file at `path`; whether the
    file changed."""
    file = Path(path)
    old = file.read_text(encoding="utf-8")
    before, _, rest = old.partition(start)
    _, _, after = rest.partition(end)
    new = f"{before}{start}\n{text}{end}{after}"
    if new == old:
        return False
    file.write_text(new, encoding="utf-8")
    return True
