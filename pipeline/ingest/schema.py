"""Field types of the JSON minutes formats, checked before reading (pydantic).

A Tokyo title that is a number, a Kokkai ``speechOrder`` of ``"abc"`` or ``null``, a speech that
is a number: one line naming the file, the record and the field, instead of a traceback deep in
a reader. Unknown fields are allowed (the APIs add fields); only the fields the readers use are
typed. Strings must be strings (``StrictStr``); integers may come as digit strings, as the
Kokkai API's XML-derived JSON sends them.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError

from pipeline.errors import PipelineError

Text = StrictStr | None
#: an integer, or a string of digits ("12"); not null, not "abc"
Number = StrictInt | Annotated[StrictStr, Field(pattern=r"^\s*[0-9０-９]+\s*$")]
OptNumber = Number | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class TokyoRow(_Model):
    Speaker: Text
    Utterance: Text


class TokyoMeeting(_Model):
    Date: Text = None
    ProceedingTitle: Text = None
    URL: Text = None
    Proceeding: list[TokyoRow]


class KokkaiSpeech(_Model):
    speechOrder: Number
    speech: Text = None
    speaker: Text = None
    speakerRole: Text = None
    speakerGroup: Text = None
    speakerPosition: Text = None
    startPage: OptNumber | None = None


class KokkaiMeeting(_Model):
    issueID: StrictStr | StrictInt | None = None
    nameOfHouse: Text = None
    nameOfMeeting: Text = None
    issue: Text = None
    date: Text = None
    session: OptNumber = None
    meetingURL: Text = None


_TOKYO = TypeAdapter(list[TokyoMeeting])
_ALL_FIELDS = {f for m in (TokyoRow, TokyoMeeting, KokkaiSpeech, KokkaiMeeting) for f in m.model_fields}


_NUMBERS = {"speechOrder", "startPage", "session"}


def _problem(exc: ValidationError, what: str) -> str:
    """First error -> 'meeting 0 row 3: 'Speaker' must be a string or null, not 12'."""
    err = exc.errors(include_url=False)[0]
    fields = [p for p in err["loc"] if isinstance(p, str) and p[:1].isupper() or p in _ALL_FIELDS]
    field = fields[-1] if fields else None
    idx = [p for p in err["loc"] if isinstance(p, int)]
    where = " ".join([f"{what} {idx[0]}" if idx and what == "meeting" else "",
                      *(f"row {i}" for i in (idx[1:] if what == "meeting" else idx))]).strip()
    value = err.get("input")
    shown = "null" if value is None else repr(value)[:40]
    if err["type"] == "missing":
        problem = f"needs 'Speaker' and 'Utterance' (missing {field!r})" if field in ("Speaker", "Utterance") \
            else f"missing {field!r}"
    elif field in _NUMBERS:
        problem = f"{field!r} must be a whole number, not {shown}"
    elif field == "Proceeding":
        problem = f"'Proceeding' must be a list of {{'Speaker', 'Utterance'}} objects, not {shown}"
    elif field:
        problem = f"{field!r} must be a string or null, not {shown}"
    else:
        problem = f"must be an object, not {shown}"
    return f"{where}: {problem}" if where else problem


def check_tokyo(data: Any, path) -> None:
    """Raise PipelineError(path, ...) unless ``data`` has the Tokyo Assembly field types."""
    try:
        _TOKYO.validate_python(data)
    except ValidationError as exc:
        raise PipelineError(path, _problem(exc, "meeting")) from None


def check_kokkai(groups, path) -> None:
    """``groups``: [(meeting fields, speech records)] as the Kokkai reader groups them."""
    for k, (meta, recs) in enumerate(groups):
        try:
            KokkaiMeeting.model_validate(meta)
        except ValidationError as exc:
            raise PipelineError(path, f"meeting {meta.get('issueID') or k}: " + _problem(exc, "record")) from None
        for j, r in enumerate(recs):
            if not isinstance(r, dict):
                raise PipelineError(path, f"speechRecord {j} of meeting {k}: not an object")
            try:
                KokkaiSpeech.model_validate(r)
            except ValidationError as exc:
                raise PipelineError(path, f"speechRecord {j} of {meta.get('issueID') or k}: "
                                    + _problem(exc, "record")) from None
