"""Encoding detection: UTF-8 (with/without BOM), UTF-16 with BOM, CP932/Shift_JIS, EUC-JP.

Strict decoding in a fixed order; a file that decodes under none of them is an
error, never a silent best guess. Shift_JIS is decoded as CP932 (its Microsoft
superset, which also covers ①, ㈱, NEC/IBM extensions found in government files).
"""
from __future__ import annotations

import unicodedata
from pathlib import Path

from pipeline.errors import PipelineError

#: hiragana, katakana, CJK ideographs, CJK punctuation, full-width ASCII forms; half-width
#: katakana (FF61-FF9F) is left out: it is what EUC-JP bytes look like when misread as CP932
_JAPANESE = (set(range(0x3000, 0x30FF + 1)) | set(range(0x4E00, 0x9FFF + 1)) | set(range(0xFF01, 0xFF5E + 1))
             | set(range(0x2460, 0x24FF + 1)) | set(range(0x2500, 0x257F + 1)))


def _japanese_share(text: str) -> float:
    sample = text[:20000]
    if not sample:
        return 0.0
    ja = sum(1 for ch in sample if ord(ch) in _JAPANESE or ch in "、。「」　")
    non_ascii = sum(1 for ch in sample if ord(ch) > 0x7F)
    return ja / non_ascii if non_ascii else 1.0


def decode_bytes(data: bytes, path: str | Path | None = None) -> tuple[str, str]:
    """``data`` -> (text, encoding name). Raises PipelineError if empty, binary or undecodable."""
    if not data.strip():
        raise PipelineError(path, "empty file (no text)")
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise PipelineError(path, f"has a UTF-8 BOM but invalid UTF-8 at byte {exc.start + 3}") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise PipelineError(path, "has a UTF-16 BOM but is not valid UTF-16") from None
    if b"\x00" in data[:4096]:
        utf16 = _utf16_without_bom(data)
        if utf16 is not None:
            return utf16
        raise PipelineError(path, "binary file (NUL bytes), not text")
    try:
        return _no_nul(data.decode("utf-8"), path), "utf-8"
    except UnicodeDecodeError:
        pass
    candidates = []
    for enc in ("cp932", "euc_jp", "iso2022_jp"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        candidates.append((_japanese_share(text), enc, text))
    candidates.sort(key=lambda c: -c[0])
    if candidates and candidates[0][0] >= 0.8:
        # reject if two encodings decode equally well: ambiguous, do not guess
        if len(candidates) > 1 and candidates[1][0] >= candidates[0][0] - 0.02 and candidates[1][1] != "iso2022_jp":
            raise PipelineError(path, f"ambiguous encoding ({candidates[0][1]} or {candidates[1][1]}); convert to UTF-8")
        return _no_nul(candidates[0][2], path), candidates[0][1]
    raise PipelineError(path, "cannot decode: not UTF-8, CP932/Shift_JIS or EUC-JP text")


def _no_nul(text: str, path) -> str:
    """NUL bytes anywhere (not only in the first 4 KB) are binary junk, never speech."""
    i = text.find("\x00")
    if i >= 0:
        raise PipelineError(path, f"NUL byte at character {i:,}: binary data inside the text")
    return text


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """UTF-16 text saved without a byte-order mark (line breaks and ASCII give NUL bytes).

    Decoded only when one byte order gives clean Japanese text and the other does not;
    otherwise None (then: binary)."""
    if len(data) % 2:
        return None
    results = []
    for enc in ("utf-16-le", "utf-16-be"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        clean = "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF or 0xE000 <= ord(c) <= 0xF8FF
                                               for c in text[:20000])
        sample = text[:20000]
        junk = sum(unicodedata.category(c) in ("Cc", "Cn", "Co", "Cs") and c not in "\n\r\t\f" for c in sample)
        if clean and junk <= 0.01 * len(sample) and _japanese_share(text) >= 0.8:
            results.append((text, enc))
    return results[0] if len(results) == 1 else None
