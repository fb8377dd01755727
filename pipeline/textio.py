"""Reading text input, shared by every stage that reads minutes or lines (ingest, ``tag``):
bytes of a file with one-line errors, encoding detection, and the project's one line-break rule.

Stage-free (imports only :mod:`pipeline.errors`), so a stage that reads text the way ingest does
(``tag``) or writes text cells (:mod:`pipeline.cells`) depends on this module, not on the ingest
package: editing ingest then leaves their cache keys and DVC deps alone.

* :func:`read_input`: bytes of one regular file (devices, FIFOs, huge or unreadable files refused).
* :func:`decode_bytes`: UTF-8 (with/without BOM), UTF-16 (with BOM, or without when unambiguous),
  CP932/Shift_JIS, EUC-JP. Strict decoding in a fixed order; a file that decodes under none of them
  is an error, never a silent best guess. Shift_JIS is decoded as CP932 (its Microsoft superset,
  which also covers ①, ㈱, NEC/IBM extensions found in government files).
* :data:`LINE_BREAKS`, :func:`split_lines`, :func:`lines_of`, :func:`normalize_breaks`.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from pipeline.errors import PipelineError

#: THE line-break rule of the project (issue #13): the characters ``str.splitlines`` honours
#: (LF, CR, CRLF, VT, FF, FS, GS, RS, NEL, LINE/PARAGRAPH SEPARATOR). Every reader, sniffer,
#: ``tag`` and the CSV export split lines with :func:`split_lines` / :func:`lines_of`, so a
#: format sniffer never sees turns the reader then glues together. FF stays a page break.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_BREAK_CHAR = "[" + re.escape(LINE_BREAKS) + "]"
_LINE = re.compile(rf"([^{re.escape(LINE_BREAKS)}]*)(\r\n|{_BREAK_CHAR}|$)")
_BREAK = re.compile(rf"\r\n|{_BREAK_CHAR}")


def split_lines(text: str) -> list[tuple[str, str]]:
    """``text`` -> ``(line, terminator)`` pairs that join back to ``text`` exactly (the accounting
    counts terminators too); a form feed (PDF page break) is a terminator of its own."""
    lines = [(m.group(1), m.group(2)) for m in _LINE.finditer(text)]
    if lines and lines[-1] == ("", ""):
        lines.pop()
    return lines


def lines_of(text: str) -> list[str]:
    """The lines of ``text`` by :data:`LINE_BREAKS` (what ``str.splitlines`` gives, by the same rule
    as :func:`split_lines`)."""
    return [line for line, _ in split_lines(text)]


def normalize_breaks(text: str, repl: str = "\n") -> str:
    """Every line break (CRLF, lone CR, U+2028, ...) -> ``repl`` (``\n``; ``" "`` for one-line fields)."""
    return _BREAK.sub(repl, text)


#: the largest input file read (bytes); minutes files are a few MB
MAX_INPUT_BYTES = 256 * 1024 * 1024


def read_input(path: Path, rel: str) -> bytes:
    """Bytes of one input file; a one-line error for devices, FIFOs, huge or unreadable files."""
    import stat

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            kind = ("a character device" if stat.S_ISCHR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
                    else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                    else "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file")
            raise PipelineError(rel, f"not a regular file ({kind})")
        if st.st_size > MAX_INPUT_BYTES:
            raise PipelineError(rel, f"file too large ({st.st_size:,} bytes; limit {MAX_INPUT_BYTES:,})")
        with path.open("rb") as fh:
            data = fh.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise PipelineError(rel, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise PipelineError(rel, f"file too large (more than {MAX_INPUT_BYTES:,} bytes)")
    return data


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
