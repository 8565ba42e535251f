"""Width and height of an encoded image read from its header, without decoding it.

A compressed frame is checked against `max_image_pixels` before OpenCV decodes it: a 1.6 MB JPEG (or a
4 kB WebP) can say 10000x10000 and cost 300 MB to decode. The layouts are the formats' own specs (JPEG
SOFn markers, PNG IHDR, WebP VP8/VP8L/VP8X chunks, BMP info headers, TIFF's first IFD); any other
format is refused. Pillow is not used: opening a WebP there builds libwebp's animation decoder, which
allocates the whole canvas.
"""

from __future__ import annotations

import struct

HEADER_FORMATS = ("jpeg", "png", "webp", "bmp", "tiff")
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); 0xC4/0xC8/0xCC are not frames
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length


class HeaderError(ValueError):
    """The data is not one of HEADER_FORMATS, or its header is truncated or inconsistent."""


def encoded_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header of a JPEG, PNG, WebP, BMP or TIFF image."""
    for magic, reader in _READERS:
        if data.startswith(magic):
            try:
                return reader(data)
            except (struct.error, IndexError):
                raise HeaderError(f"truncated {reader.__name__.removeprefix('_')} header") from None
    raise HeaderError(f"not a {', '.join(HEADER_FORMATS)} image (starts with {data[:8].hex(' ')})")


def _jpeg(data: bytes) -> tuple[str, int, int]:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise HeaderError(f"JPEG marker expected at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _STANDALONE_MARKERS:
            position += 2
            continue
        if marker in _SOF_MARKERS:
            height, width = struct.unpack_from(">HH", data, position + 5)
            if height == 0:  # the height would come later in a DNL marker: libjpeg refuses that too
                raise HeaderError("JPEG frame header without a height (DNL)")
            return "jpeg", width, height
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            break
        (length,) = struct.unpack_from(">H", data, position + 2)
        position += 2 + length
    raise HeaderError("JPEG without a frame header (SOFn) before its scan data")


def _png(data: bytes) -> tuple[str, int, int]:
    if data[12:16] != b"IHDR":
        raise HeaderError("PNG whose first chunk is not IHDR")
    width, height = struct.unpack_from(">II", data, 16)
    return "png", width, height


def _webp(data: bytes) -> tuple[str, int, int]:
    """The largest of the VP8X canvas and the first bitstream's own size (libwebp checks they agree)."""
    if data[8:12] != b"WEBP":
        raise HeaderError("a RIFF container that is not WebP")
    sizes, position = [], 12
    while position + 8 <= len(data):
        chunk, length = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        body = position + 8
        if chunk == b"VP8X":
            canvas = data[body + 4 : body + 10]
            sizes.append((int.from_bytes(canvas[:3], "little") + 1, int.from_bytes(canvas[3:6], "little") + 1))
        elif chunk == b"VP8 ":
            if data[body + 3 : body + 6] != b"\x9d\x01\x2a":
                raise HeaderError("WebP VP8 chunk without its start code")
            width, height = struct.unpack_from("<HH", data, body + 6)
            sizes.append((width & 0x3FFF, height & 0x3FFF))
            break
        elif chunk == b"VP8L":
            if data[body] != 0x2F:
                raise HeaderError("WebP VP8L chunk without its signature")
            bits = struct.unpack_from("<I", data, body + 1)[0]
            sizes.append(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
            break
        position = body + length + (length & 1)  # chunks are padded to even sizes
    if not sizes:
        raise HeaderError("WebP without a VP8, VP8L or VP8X chunk")
    return "webp", max(w for w, _ in sizes), max(h for _, h in sizes)


def _bmp(data: bytes) -> tuple[str, int, int]:
    (info_size,) = struct.unpack_from("<I", data, 14)
    if info_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sides
        width, height = struct.unpack_from("<HH", data, 18)
    else:
        width, height = struct.unpack_from("<ii", data, 18)
    return "bmp", abs(width), abs(height)  # a negative height means rows stored top-down


def _tiff(data: bytes) -> tuple[str, int, int]:
    """ImageWidth (256) and ImageLength (257) of the first IFD, the page OpenCV decodes."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, ifd)
    sides = {}
    for index in range(count):
        tag, kind = struct.unpack_from(order + "HH", data, ifd + 2 + 12 * index)
        if tag in (256, 257):
            value_format = {3: "H", 4: "I"}.get(kind)
            if value_format is None:
                raise HeaderError(f"TIFF tag {tag} of type {kind}, not SHORT or LONG")
            (sides[tag],) = struct.unpack_from(order + value_format, data, ifd + 2 + 12 * index + 8)
    if set(sides) != {256, 257}:
        raise HeaderError("TIFF whose first IFD lacks ImageWidth or ImageLength")
    return "tiff", sides[256], sides[257]


_READERS = (
    (b"\xff\xd8", _jpeg),
    (b"\x89PNG\r\n\x1a\n", _png),
    (b"RIFF", _webp),
    (b"BM", _bmp),
    (b"II*\x00", _tiff),
    (b"MM\x00*", _tiff),
)
