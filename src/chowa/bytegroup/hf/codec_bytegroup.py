"""Byte codecs of the byte-group model (byGPT-JP style): text to bytes read and predicted 4 at a time.

The default `f4-utf8` gives every character one group of 4 bytes: its UTF-8 bytes right-filled with 0xFF (a byte
UTF-8 never uses), so a character, a stop string and a special token all start on a group boundary. Specials are
groups `FE k FE FE` (0xFE is not UTF-8 either); the tokenizer owns their names. The alternatives: `utf8` (plain
UTF-8, 3 bytes per kana or kanji, groups cut anywhere), `f4-utf32` (UTF-32 big-endian, one group per character)
and `ga-utf8` (UTF-8 packed greedily into groups, 0xFF fill when the next character does not fit).

This file is standalone (only the standard library): it is copied into every saved model folder, where
transformers' remote code imports it without chowa.

Run as (from Python):
    codec = get_codec("f4-utf8")
    codec.encode("あA")          # b"\\xe3\\x81\\x82\\xff" b"A\\xff\\xff\\xff"
    codec.decode(data, errors="replace")
"""

from __future__ import annotations

GROUP = 4
FILL = 0xFF  # fills a group after a character's bytes; never part of UTF-8
SPECIAL = 0xFE  # lead and tail bytes of a special group `FE k FE FE`; never part of UTF-8
ERRORS = ("strict", "replace", "skip")


class CodecError(ValueError):
    """Text a codec cannot encode, or bytes it cannot decode under errors="strict"."""


def _utf8_tail_ranges(b0: int) -> tuple[range, ...] | None:
    """The ranges of the continuation bytes of a UTF-8 sequence led by `b0` (RFC 3629), or None if `b0` cannot
    lead one. Overlong forms, surrogates and values above U+10FFFF are excluded by the first continuation's range."""
    if b0 <= 0x7F:
        return ()
    if 0xC2 <= b0 <= 0xDF:
        return (range(0x80, 0xC0),)
    if 0xE0 <= b0 <= 0xEF:
        first = range(0xA0, 0xC0) if b0 == 0xE0 else range(0x80, 0xA0) if b0 == 0xED else range(0x80, 0xC0)
        return first, range(0x80, 0xC0)
    if 0xF0 <= b0 <= 0xF4:
        first = range(0x90, 0xC0) if b0 == 0xF0 else range(0x80, 0x90) if b0 == 0xF4 else range(0x80, 0xC0)
        return first, range(0x80, 0xC0), range(0x80, 0xC0)
    return None


def slot_ranges(b0: int) -> tuple[range, range, range] | None:
    """For an `f4-utf8` group led by `b0`: the bytes each of slots 1-3 may hold, or None if `b0` leads no valid
    character group. Specials (lead 0xFE) are the tokenizer's; here they are not valid characters."""
    tails = _utf8_tail_ranges(b0)
    if tails is None:
        return None
    fill = range(FILL, FILL + 1)
    return tuple(list(tails) + [fill] * (3 - len(tails)))


def _check_errors(errors: str) -> None:
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}, not {errors!r}")


def _char_bytes(text: str, index: int, char: str, errors: str, encoding: str = "utf-8") -> bytes:
    try:
        return char.encode(encoding)
    except UnicodeEncodeError:  # a lone surrogate
        if errors == "strict":
            raise CodecError(f"cannot encode character {index} of the text, U+{ord(char):04X} (a lone surrogate)")
        return "\ufffd".encode(encoding) if errors == "replace" else b""


class _OneGroupPerCharacter:
    """Codecs where a character is exactly one group: decoding goes group by group."""

    name, group, aligned = "", GROUP, True

    def _char(self, group: bytes) -> str:
        raise NotImplementedError

    def decode(self, data: bytes, errors: str = "replace") -> str:
        _check_errors(errors)
        chars = []
        for start in range(0, len(data), GROUP):
            group = data[start:start + GROUP]
            if self.is_valid_group(group):
                chars.append(self._char(group))
            elif errors == "strict":
                raise CodecError(f"bytes {start}-{start + len(group) - 1} ({group.hex(' ')}) are not a valid "
                                 f"{self.name} group")
            elif errors == "replace":
                chars.append("\ufffd")
        return "".join(chars)


class F4UTF8(_OneGroupPerCharacter):
    """Each character = its UTF-8 bytes right-filled with 0xFF to 4: `A` -> 41 FF FF FF, `あ` -> E3 81 82 FF."""

    name = "f4-utf8"

    def encode(self, text: str, errors: str = "strict") -> bytes:
        _check_errors(errors)
        if text.isascii():  # the common fast path: one byte per character
            return b"".join(bytes((ord(c), FILL, FILL, FILL)) for c in text)
        out = bytearray()
        for index, char in enumerate(text):
            data = _char_bytes(text, index, char, errors)
            if data:
                out += data + bytes((FILL,)) * (GROUP - len(data))
        return bytes(out)

    def is_valid_group(self, group: bytes) -> bool:
        ranges = slot_ranges(group[0]) if len(group) == GROUP else None
        return ranges is not None and all(b in r for b, r in zip(group[1:], ranges, strict=True))

    def _char(self, group: bytes) -> str:
        return group.rstrip(bytes((FILL,))).decode("utf-8")


class F4UTF32(_OneGroupPerCharacter):
    """Each character = its code point as 4 big-endian bytes (UTF-32BE): `あ` -> 00 00 30 42."""

    name = "f4-utf32"

    def encode(self, text: str, errors: str = "strict") -> bytes:
        _check_errors(errors)
        return b"".join(_char_bytes(text, i, c, errors, "utf-32-be") for i, c in enumerate(text))

    def is_valid_group(self, group: bytes) -> bool:
        if len(group) != GROUP:
            return False
        value = int.from_bytes(group, "big")
        return value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF

    def _char(self, group: bytes) -> str:
        return chr(int.from_bytes(group, "big"))


class UTF8:
    """Plain UTF-8, groups cut anywhere (3 bytes per kana or kanji). A text is 0xFF-filled to a whole group only
    where the tokenizer needs a boundary (before a special, at the end)."""

    name, group, aligned = "utf8", GROUP, False

    def encode(self, text: str, errors: str = "strict") -> bytes:
        _check_errors(errors)
        return b"".join(_char_bytes(text, i, c, errors) for i, c in enumerate(text))

    def is_valid_group(self, group: bytes) -> bool:
        return len(group) == GROUP and FILL not in group[:1] and SPECIAL not in group[:1]

    def decode(self, data: bytes, errors: str = "replace") -> str:
        _check_errors(errors)
        data = data.replace(bytes((FILL,)), b"")
        try:
            return data.decode("utf-8", "strict")
        except UnicodeDecodeError as error:
            if errors == "strict":
                raise CodecError(f"bytes {error.start}-{error.end - 1} are not valid UTF-8 ({error.reason})") from None
            return data.decode("utf-8", "replace" if errors == "replace" else "ignore")


class GreedyUTF8(UTF8):
    """UTF-8 packed greedily: a character that does not fit in what is left of the group starts the next one, the
    rest filled with 0xFF. `aあ` -> 61 E3 81 82; `abあ` -> 61 62 FF FF  E3 81 82."""

    name, aligned = "ga-utf8", False

    def encode(self, text: str, errors: str = "strict") -> bytes:
        _check_errors(errors)
        out = bytearray()
        for index, char in enumerate(text):
            data = _char_bytes(text, index, char, errors)
            if len(out) % GROUP + len(data) > GROUP:
                out += bytes((FILL,)) * (-len(out) % GROUP)
            out += data
        return bytes(out)


CODECS = {codec.name: codec for codec in (F4UTF8(), F4UTF32(), UTF8(), GreedyUTF8())}


def get_codec(name: str):
    """The codec named `name` (one of CODECS)."""
    if name not in CODECS:
        raise CodecError(f"unknown byte codec {name!r}; known codecs: {', '.join(CODECS)}")
    return CODECS[name]
