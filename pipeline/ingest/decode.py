"""Encoding detection: UTF-8 (with/without BOM), UTF-16 with BOM, CP932/Shift_JIS, EUC-JP.

Strict decoding in a fixed order; a file that decodes under none of them is an
error, never a silent best guess. Shift_JIS is decoded as CP932 (its Microsoft
superset, which also covers ①, ㈱, NEC/IBM extensions found in government files).
"""
from __future__ import annotations

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
        raise PipelineError(path, "binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8"), "utf-8"
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
        return candidates[0][2], candidates[0][1]
    raise PipelineError(path, "cannot decode: not UTF-8, CP932/Shift_JIS or EUC-JP text")
