"""A configuration directory: segments, flows and templates as files, read and checked by the API's own models.

The layout (docs/as-code.md)::

    DIR/crm.yaml                  optional: ``managed_by: LABEL`` (lets apply delete what it labelled)
    DIR/segments/ID.yaml          a segment: name, description, definition (POST /segments's body)
    DIR/flows/ID.yaml             a flow: its definition (POST /flows's body) and, optionally, status
    DIR/templates/ID.yaml         a template (POST /templates's body); an email's html may instead be
    DIR/templates/ID.html         beside it, and its text in ID.txt

Each document may be .yaml, .yml or .json. The file's name is the id; a built-in's id ``builtin:NAME`` is
written ``builtin.NAME`` (a colon is no good in a file name; custom ids have no dots). Every document is
validated by the functions the marketer API validates with (crm.segments.definition.parse_segment,
crm.flows.manage.parse_definition, crm.messaging.manage.parse_template), so a file is refused here exactly
when the API would refuse it, and the refusal names the file, the line and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crm.ascode.source import Source, SourceInvalid, block_start, line_of, path_parts, read
from crm.flows.defaults import DefinitionInvalid
from crm.flows.manage import CUSTOM_FLOW_ID, parse_definition
from crm.messaging.manage import CUSTOM_TEMPLATE_ID, parse_template
from crm.models.flows import MANAGED_BY, FlowDefinition, FlowStatus
from crm.models.messaging import EmailTemplate, SmsTemplate
from crm.segments.definition import CUSTOM_SEGMENT_ID, SegmentDocument, SegmentInvalid, parse_segment

SETTINGS_FILE = "crm.yaml"
DOCUMENT_SUFFIXES = (".yaml", ".yml", ".json")
BUILTIN_PREFIX, BUILTIN_FILE_PREFIX = "builtin:", "builtin."
_BUILTIN_NAME = r"[a-z0-9_]{1,60}"


class Kind(StrEnum):
    """What a file defines; the value is its folder's name's singular, the route is its plural."""

    SEGMENT = "segment"
    TEMPLATE = "template"
    FLOW = "flow"

    @property
    def folder(self) -> str:
        return f"{self.value}s"


@dataclass(frozen=True)
class FileProblem:
    """One refusal: the file, the line (1-based, when known), the field's path and what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class DirectoryInvalid(ValueError):
    """Files that cannot be applied; every problem found, one per file at most."""

    def __init__(self, problems: list[FileProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class Desired:
    """One definition as its file states it: ``document`` is the API's request body (without the id), the
    model the API validates it into is ``model``; a flow's ``status`` is None when the file leaves it to the
    workspace."""

    kind: Kind
    id: str
    file: str
    document: dict[str, Any]
    model: SegmentDocument | FlowDefinition | EmailTemplate | SmsTemplate
    status: FlowStatus | None = None


@dataclass(frozen=True)
class Directory:
    managed_by: str | None
    definitions: tuple[Desired, ...] = field(default=())

    def of(self, kind: Kind) -> list[Desired]:
        return [d for d in self.definitions if d.kind is kind]


def id_for(kind: Kind, stem: str) -> str | None:
    """The id a file name stands for, or None when no id of that kind can be written so."""
    if stem.startswith(BUILTIN_FILE_PREFIX):
        name = stem.removeprefix(BUILTIN_FILE_PREFIX)
        return BUILTIN_PREFIX + name if kind is not Kind.SEGMENT and re.fullmatch(_BUILTIN_NAME, name) else None
    pattern = {Kind.SEGMENT: CUSTOM_SEGMENT_ID, Kind.FLOW: CUSTOM_FLOW_ID, Kind.TEMPLATE: CUSTOM_TEMPLATE_ID}[kind]
    return stem if re.fullmatch(pattern, stem) else None


def file_stem(definition_id: str) -> str:
    return definition_id.replace(BUILTIN_PREFIX, BUILTIN_FILE_PREFIX, 1)


# --- reading ---------------------------------------------------------------------------------------------

def load_directory(root: Path) -> Directory:
    """Every definition of the directory, checked; DirectoryInvalid listing what is wrong, file by file."""
    if not root.is_dir():
        raise DirectoryInvalid([FileProblem(str(root), None, "", "no such directory")])
    problems: list[FileProblem] = []
    managed_by = _managed_by(root, problems)
    found: list[Desired] = []
    for kind in Kind:
        for stem, paths in _documents(root, kind, problems):
            try:
                found.append(_load(root, kind, stem, paths))
            except _Refused as refused:
                problems.append(refused.problem)
    if problems:
        raise DirectoryInvalid(problems)
    return Directory(managed_by, tuple(found))


class _Refused(Exception):
    def __init__(self, problem: FileProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _read(root: Path, path: Path) -> Source:
    try:
        return read(path.read_text(encoding="utf-8"))
    except SourceInvalid as error:
        raise _Refused(FileProblem(_relative(root, path), error.line, "", str(error))) from None
    except (OSError, UnicodeDecodeError) as error:
        raise _Refused(FileProblem(_relative(root, path), None, "", f"cannot be read: {error}")) from None


def _managed_by(root: Path, problems: list[FileProblem]) -> str | None:
    path = root / SETTINGS_FILE
    if not path.exists():
        return None
    try:
        source = _read(root, path)
    except _Refused as refused:
        problems.append(refused.problem)
        return None
    data = source.data
    if not isinstance(data, dict) or set(data) - {"managed_by"}:
        extra = sorted(set(data) - {"managed_by"}) if isinstance(data, dict) else []
        problems.append(FileProblem(SETTINGS_FILE, line_of(source.root, [extra[0]]) if extra else 1,
                                    str(extra[0]) if extra else "", "the only setting is managed_by"
                                    if extra else "must be a mapping (managed_by: LABEL)"))
        return None
    label = data.get("managed_by")
    if label is not None and (not isinstance(label, str) or not re.fullmatch(MANAGED_BY, label)):
        problems.append(FileProblem(SETTINGS_FILE, line_of(source.root, ["managed_by"]), "managed_by",
                                    "1 to 63 lowercase letters, digits, '.', '-' or '_', starting with a letter or "
                                    "digit"))
        return None
    return label


def _documents(root: Path, kind: Kind, problems: list[FileProblem]) -> Iterator[tuple[str, list[Path]]]:
    folder = root / kind.folder
    if not folder.is_dir():
        return
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in DOCUMENT_SUFFIXES:
            by_stem.setdefault(path.stem, []).append(path)
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            problems.append(FileProblem(_relative(root, paths[1]), None, "",
                                        f"{paths[0].name} defines the same {kind.value}: keep one"))
            continue
        yield stem, paths
    if kind is Kind.TEMPLATE:
        for path in sorted(folder.iterdir()):
            if path.suffix in (".html", ".txt") and path.stem not in by_stem:
                problems.append(FileProblem(_relative(root, path), None, "",
                                            f"no {path.stem}.yaml beside it: a template's name and subject are "
                                            "written there"))


def _load(root: Path, kind: Kind, stem: str, paths: list[Path]) -> Desired:
    path = paths[0]
    name = _relative(root, path)
    definition_id = id_for(kind, stem)
    if definition_id is None:
        raise _Refused(FileProblem(name, None, "", f"the file name is the {kind.value}'s id: lowercase letters, "
                                   "digits, - and _ (up to 63, starting with a letter or digit)"
                                   + ("; builtin.NAME for a built-in" if kind is not Kind.SEGMENT else "")))
    source = _read(root, path)
    if not isinstance(source.data, dict):
        raise _Refused(FileProblem(name, source.root.start_mark.line + 1, "", f"a {kind.value} is a mapping"))
    document: dict[str, Any] = dict(source.data)
    for key, why in (("id", f"the file's name is the {kind.value}'s id ({definition_id})"),
                     ("managed_by", f"{SETTINGS_FILE} sets it for the whole directory")):
        if key in document:
            if key == "id" and document[key] == definition_id:
                del document[key]
                continue
            raise _Refused(FileProblem(name, line_of(source.root, [key]), key, why))
    status: FlowStatus | None = None
    if kind is Kind.FLOW and "status" in document:
        raw_status = document.pop("status")
        if raw_status not in tuple(FlowStatus):
            raise _Refused(FileProblem(name, line_of(source.root, ["status"]), "status", "draft or live"))
        status = FlowStatus(raw_status)
    texts = _sibling_texts(root, path, source, document) if kind is Kind.TEMPLATE else {}
    try:
        model = _validate(kind, document)
    except (DefinitionInvalid, SegmentInvalid, ValidationError) as error:
        raise _Refused(_located(name, source, str(error), texts)) from None
    return Desired(kind, definition_id, name, document, model, status)


def _sibling_texts(root: Path, path: Path, source: Source, document: dict[str, Any]) -> dict[str, str]:
    """An email template's html (ID.html) and text (ID.txt) read into the document; the files they came from."""
    came_from: dict[str, str] = {}
    for key, suffix in (("html", ".html"), ("text", ".txt")):
        sibling = path.with_suffix(suffix)
        if not sibling.exists():
            continue
        if key in document:
            raise _Refused(FileProblem(_relative(root, path), line_of(source.root, [key]), key,
                                       f"written both here and in {sibling.name}: keep one"))
        try:
            document[key] = sibling.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise _Refused(FileProblem(_relative(root, sibling), None, "", f"cannot be read: {error}")) from None
        came_from[key] = _relative(root, sibling)
    return came_from


def _validate(kind: Kind, document: dict[str, Any]) -> SegmentDocument | FlowDefinition | EmailTemplate | SmsTemplate:
    if kind is Kind.SEGMENT:
        return parse_segment(document)
    if kind is Kind.FLOW:
        return parse_definition(dict(document))
    return parse_template(dict(document))


_LINE_WITHIN = re.compile(r"^line (\d+): ")


def _located(name: str, source: Source, message: str, texts: Mapping[str, str]) -> FileProblem:
    """A model's refusal ("steps[1].duration: ...") as a problem at the line the field was written on. A
    template's "html: line 3: ..." is at that line of ID.html, or of the block in the YAML file."""
    first = message.split("; ")[0] if message.startswith(("html:", "text:", "subject:", "body:")) else message
    path, _, what = first.partition(": ")
    if not what or " " in path:
        return FileProblem(name, source.root.start_mark.line + 1, "", message)
    within = _LINE_WITHIN.match(what)
    if path in texts:
        return FileProblem(texts[path], int(within.group(1)) if within else None, "",
                           _LINE_WITHIN.sub("", what) if within else what)
    if within:
        start = block_start(source.root, path)
        if start is not None:
            return FileProblem(name, start + int(within.group(1)), path, _LINE_WITHIN.sub("", what))
    return FileProblem(name, line_of(source.root, path_parts(path)), path, what)
