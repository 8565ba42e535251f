"""Text that arrived in a message, made safe for a log line or a /diagnostics value.

A sender controls strings such as `Image.encoding` or `CompressedImage.format`: a newline there would
forge a log line, and a megabyte would be copied into every later diagnostics message.
"""

from __future__ import annotations

WIRE_TEXT_LIMIT = 64  # characters of one field quoted in a message
REASON_LIMIT = 256  # characters of a whole rejection reason or log line built from message fields


def printable(text: object, limit: int = WIRE_TEXT_LIMIT) -> str:
    """`text` with every non-printable character escaped (newline as \\n, ESC as \\x1b, U+202E as \\u202e) and
    cut after `limit` characters, its original length stated. The result is printable, so applying this
    again (to a reason that quotes an escaped field) escapes nothing twice."""
    text = str(text)
    pieces, size = [], 0
    for char in text:
        piece = char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        if size + len(piece) > limit:
            return "".join(pieces) + f"... ({len(text)} characters)"
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)
