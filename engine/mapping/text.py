"""Text helpers: Cliniko paragraph HTML -> plain lines, and name folding for matching."""

from __future__ import annotations

import html
import re
import unicodedata

# A tag: `<div>`, `</div>`, `<br/>`, `<div class="x">`. A lone "<" is text.
_TOKEN_RE = re.compile(r"<\s*(/?)\s*([a-zA-Z][a-zA-Z0-9]*)\b[^<>]*>|[^<]+|<")
_WS_RE = re.compile(r"[ \t\r\n\f]+")
_LINE_BREAK = frozenset({"br"})
_BLOCKS = frozenset(
    {"div", "p", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote", "pre"}
)


def html_to_text(fragment: str) -> str:
    """Cliniko's sanitised paragraph HTML (only `<div>` and `<br>`) as plain text.

    `<br>` ends a line; a block (`<div>`) starts and ends on its own line without doubling
    blank lines (`<div>a</div><div><br></div><div>b</div>` is "a", "", "b"); other tags are
    dropped; entities are unescaped; whitespace collapses as in a browser. Each line is trimmed
    and leading/trailing blank lines go.
    """
    out: list[str] = []
    at_line_start = True
    for m in _TOKEN_RE.finditer(fragment):
        tag = m.group(2)
        if tag is None:
            # As a browser shows it: runs of whitespace are one space; &nbsp; is kept.
            piece = _WS_RE.sub(" ", m.group(0))
            piece = html.unescape(piece).replace("\xa0", " ")
            if piece.strip() or (piece and not at_line_start):
                out.append(piece)
                at_line_start = False
            continue
        name = tag.lower()
        if name in _LINE_BREAK or (name in _BLOCKS and not at_line_start):
            out.append("\n")
            at_line_start = True
    lines = [line.strip() for line in "".join(out).split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


_SPACE_RE = re.compile(r"\s+")


# Latin letters with a stroke or ligature have no NFKD decomposition; fold them by hand.
_UNDECOMPOSABLE = str.maketrans(
    {
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "ŧ": "t",
        "ħ": "h",
        "ı": "i",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "ŀ": "l",
        "ƚ": "l",
        "ɨ": "i",
        "ʉ": "u",
    }
)


def fold_name(name: str) -> str:
    """Fold a name for matching: accents stripped (NFKD), case folded, spacing collapsed.

    "  Dr  José ÁLVAREZ " -> "dr jose alvarez".
    """
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = stripped.casefold().translate(_UNDECOMPOSABLE)
    return _SPACE_RE.sub(" ", folded).strip()
