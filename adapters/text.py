"""Plain text of the HTML bodies help desks send: pieces shared by the adapters' converters.

Each desk's converter (its schemas.py) decides which tags end lines; what they share is the
last resort for markup the parser refuses and the rendering of quoted lines.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

__all__ = ["quoted_text", "strip_tags"]

_TAG = re.compile(r"<[^>]*>")


def strip_tags(markup: str) -> str:
    """``markup`` with every tag made a space and entities decoded, stripped: the reading of
    a body an HTML parser refused."""
    return html.unescape(_TAG.sub(" ", markup)).strip()


def quoted_text(lines: Iterable[tuple[int, str]]) -> str:
    """Lines of text, each with its ``<blockquote>`` depth, as one string: a quoted line is
    prefixed ``"> "`` once per level, a run of empty lines becomes one empty line, and empty
    lines at either end are dropped.

    :param lines: ``(depth, text)`` pairs; ``text`` already stripped (``""``: an empty line).
    """
    out: list[str] = []
    for depth, line in lines:
        if not line:
            if out and out[-1] != "":
                out.append("")
            continue
        out.append("> " * depth + line)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out)
