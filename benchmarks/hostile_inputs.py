"""Resource bombs from issue #13: small files that used to cost minutes and gigabytes.

Builds each input in a temp dir, runs the real CLI on it in a child process and reports the
child's wall time, peak RSS (``wait4`` rusage) and exit code / first error line. Not a test:
timings depend on the machine; the issue's bar is < 60 s and < 1 GiB for the PDF and HTML bombs.

    .venv/bin/python benchmarks/hostile_inputs.py [--only pdf_glyphs,...] [--out results.json]

Cases:
* ``pdf_glyphs``: ~80 KB PDF, 500 pages each drawing one shared form XObject of ~6,000 CJK glyphs;
* ``pdf_glyphs_under_cap``: the same with 40 pages (~248k glyphs, just under the limit): read in full;
* ``pdf_deflate``: ~300 KB PDF whose one content stream inflates to ~300 MB of text operators;
* ``html_tags``: 200 KB of unterminated tags (``<a <a <a ...``) around one turn;
* ``tag_long_line``: ``tag`` on one 1 MB line (needs a trained model: ``--model``, default
  models/classifier.joblib; skipped if absent).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TURN = "○山田座長　ただいまから会議を開会します。\n○田中委員　光ファイバの整備について質問します。\n"


def pdf_glyphs(path: Path, pages: int = 500) -> None:
    """Many pages drawing one shared XObject full of CJK text: tiny file, millions of glyphs."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiKakuGo-W5"))
    c = canvas.Canvas(str(path))
    c.beginForm("glyphs")
    c.setFont("HeiseiKakuGo-W5", 4)
    line = "情報通信の整備と地域の課題について議論する" * 4
    for i in range(72):
        c.drawString(20, 820 - i * 11, line)
    c.endForm()
    for _ in range(pages):
        c.setFont("HeiseiKakuGo-W5", 10)
        c.drawString(40, 40, "○山田座長　開会します。")
        c.doForm("glyphs")
        c.showPage()
    c.save()


def pdf_deflate(path: Path, inflated_mb: int = 300) -> None:
    """One page whose content stream is ``inflated_mb`` MB of repeated text operators."""
    ops = b"BT /F1 12 Tf 72 720 Td (a) Tj ET\n"
    raw = ops * (inflated_mb * 1024 * 1024 // len(ops))
    comp = zlib.compress(raw, 9)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(comp) + comp + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    path.write_bytes(bytes(out))


def html_tags(path: Path, size: int = 200_000) -> None:
    path.write_text("<html><body><p>" + TURN.replace("\n", "</p><p>") + "</p>" + "<a " * (size // 3)
                    + "</body></html>", encoding="utf-8")


def tag_long_line(path: Path, size: int = 1_000_000) -> None:
    unit = "データ連携基盤を広域で共同利用し、自治体のサイバーセキュリティ対策を強化します。"
    path.write_text(unit * (size // len(unit.encode("utf-8"))) + "\n", encoding="utf-8")


def pdf_glyphs_under_cap(path: Path) -> None:
    """The worst PDF still read: 40 glyph-heavy pages (~248k glyphs), just under the glyph limit."""
    pdf_glyphs(path, pages=40)


CASES = {
    "pdf_glyphs": (pdf_glyphs, "x.pdf", "ingest"),
    "pdf_glyphs_under_cap": (pdf_glyphs_under_cap, "x.pdf", "ingest"),
    "pdf_deflate": (pdf_deflate, "x.pdf", "ingest"),
    "html_tags": (html_tags, "x.html", "ingest"),
    "tag_long_line": (tag_long_line, "x.txt", "tag"),
}


def run_child(argv: list[str], timeout: float = 600) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # pragma: no cover
        status, usage = 0, None
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 0) if usage else None,
            "exit": os.waitstatus_to_exitcode(status),
            "message": next((e for e in err if "error:" in e), err[-1] if err else "")[:200]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--model", default=str(ROOT / "models" / "classifier.joblib"))
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    names = [n for n in (args.only.split(",") if args.only else CASES) if n]
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            make, fname, cmd = CASES[name]
            src = Path(d) / name / fname
            src.parent.mkdir()
            make(src)
            exe = [sys.executable, "-m", "pipeline.cli", "-q"]
            if cmd == "ingest":
                argv_ = [*exe, "ingest", str(src), "-o", str(Path(d) / name / "u.parquet"), "--no-cache"]
            else:
                if not Path(args.model).exists():
                    print(f"{name}: skipped (no model at {args.model})")
                    continue
                argv_ = [*exe, "tag", str(src), "--model", args.model]
            r = {"input_kb": round(src.stat().st_size / 1024, 1), **run_child(argv_)}
            results[name] = r
            print(f"{name:14s} input {r['input_kb']:>8} KB  {r['seconds']:>6} s  peak {r['peak_rss_mb']:>6} MB  "
                  f"exit {r['exit']}  {r['message']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
