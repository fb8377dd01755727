"""Bad input: one-line error naming the file and the problem, non-zero exit, no partial
outputs; a directory run reports every bad file."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import MultiFileError
from pipeline.ingest import ingest_paths

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "raw" / "mic-chiiki-ict-06_2024-04-24.txt"


def _image_only_pdf(path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.rect(100, 100, 300, 400, fill=1)  # a "scan": graphics only, no text layer
    c.showPage()
    c.save()


BAD = {
    "empty.txt": (b"", "empty file"),
    "blank.txt": (b" \n\n \r\n", "empty file"),
    "binary.dat": (bytes(range(256)) * 4, "binary file"),
    "undecodable.txt": ("議事録".encode() + b"\n\xff\xfe\x80\x81 abc \xff", "cannot decode"),
    "prose.txt": ("これは議事録ではなく、ただの文章です。\n発言者の記号もありません。\n".encode(),
                  "no recognisable speaker turns"),
    "wrong_shape.json": (b'{"records": [{"text": "x"}]}', "JSON of unrecognised shape"),
    "broken.json": (b'[{"Date": "2020/2/19", "Proceeding": [', "invalid JSON"),
    "tokyo_bad_row.json": ('[{"Date": "2020/2/19", "ProceedingTitle": "t", "Proceeding": [{"Speaker": "議長"}]}]'
                           .encode(), "needs 'Speaker' and 'Utterance'"),
    "kokkai_bad.json": (b'{"speechRecord": [{"speaker": "x"}]}', "missing speechOrder, speech"),
    "broken.pdf": (b"%PDF-1.4\n1 0 obj garbage\n", "PDF"),
    "scan.pdf": (None, "no text layer"),
}


@pytest.fixture()
def bad_dir(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    for name, (data, _) in BAD.items():
        if data is None:
            _image_only_pdf(d / name)
        else:
            (d / name).write_bytes(data)
    return d


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_file_one_line_error(bad_dir, name):
    with pytest.raises(MultiFileError) as ei:
        ingest_paths([bad_dir / name], cache=False)
    lines = ei.value.lines()
    assert len(lines) == 1
    line = lines[0]
    assert "\n" not in line
    assert line.startswith(f"{name}: ")
    assert BAD[name][1] in line, line


def test_directory_run_reports_every_bad_file(bad_dir):
    (bad_dir / SAMPLE.name).write_bytes(SAMPLE.read_bytes())  # one good file among them
    with pytest.raises(MultiFileError) as ei:
        ingest_paths([bad_dir], cache=False)
    named = sorted(line.split(": ", 1)[0] for line in ei.value.lines())
    assert named == sorted(BAD)


def test_cli_exit_status_and_no_partial_outputs(bad_dir, tmp_path, capsys):
    from pipeline.cli import main

    (bad_dir / SAMPLE.name).write_bytes(SAMPLE.read_bytes())
    out = tmp_path / "out"
    rc = main(["-q", "ingest", str(bad_dir), "-o", str(out / "u.parquet"), "--meetings", str(out / "m.parquet"),
               "--report", str(out / "r.json"), "--no-cache"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(BAD)
    assert all(line.startswith("policy-topics: error: ") for line in err)
    assert not out.exists() or not any(out.iterdir())


def test_missing_path_and_unknown_format(tmp_path):
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match="no such file"):
        ingest_paths([tmp_path / "nope.txt"], cache=False)
    with pytest.raises(PipelineError, match="unknown format"):
        ingest_paths([SAMPLE], fmt="docx", cache=False)
