"""The emulator's resource package format, for TrueWatch's import (``POST …/resource/upload``).

TrueWatch documents neither the zip its export produces nor the one its import takes, so the
emulator defines its own, just enough to emulate the import's conflicts:

* a zip archive whose entries are ``<kind>/<name>.json``: ``kind`` is ``monitor``, ``dashboard``,
  ``explorer`` or any other resource kind; any other entry (no folder, deeper folders, not
  ``.json``) is refused; folder entries are ignored;
* each entry is a JSON object; its ``"name"`` is the resource's name (the file name's stem,
  percent-decoded, when it has none).

:func:`resource_zip` builds one: ``resource_zip({"monitor": ["CPU usage high"], "dashboard": ["Ops"]})``.

The upload's options decide what a resource whose kind and name the workspace already has
(:data:`SEED_RESOURCES` until a test sets others) does: ``repeatNameOp`` for monitors
(check | skip | recover | continue), ``repeatIdentifierOp`` for dashboards and explorers
(check | skip | recover), ``check`` by default. ``check`` makes it a conflict (``repeat_name`` for
monitors, ``repeat_identifier`` for the others) and the upload creates no task; ``skip`` leaves it
out of the import; ``recover`` (overwrite) and ``continue`` (import a second one) import it. Other
kinds are imported without a check; other ``repeat*NameOp`` fields must be check | skip | recover
and change nothing else. An import task's resources join the workspace as soon as it is created, so
uploading the same package again with ``check`` answers a conflict, as a retried upload whose first
answer was lost would.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from .validation import SpecError

#: The emulated workspace's resources after a reset, by kind.
SEED_RESOURCES: dict[str, tuple[str, ...]] = {
    "monitor": ("CPU usage high",),
    "dashboard": ("Host overview",),
    "explorer": ("Error logs",),
}
NAME_OPTION, IDENTIFIER_OPTION = "repeatNameOp", "repeatIdentifierOp"
_CHOICES: tuple[str, ...] = ("check", "skip", "recover")
_NAME_CHOICES = (*_CHOICES, "continue")
_OTHER_OPTION = re.compile(r"repeat[A-Za-z]+NameOp")
#: The kinds each conflict option governs (other kinds are never checked).
_OPTION_OF_KIND = {"monitor": NAME_OPTION, "dashboard": IDENTIFIER_OPTION, "explorer": IDENTIFIER_OPTION}


class PackageError(ValueError):
    """An upload the import refuses: the emulator answers it with HTTP 400 ``ft.ParamError``."""


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str


@dataclass
class Triage:
    """An upload's resources sorted against the workspace: conflicts, and what the import would take."""

    repeat_name: list[str] = field(default_factory=list)
    repeat_identifier: list[str] = field(default_factory=list)
    imported: list[Resource] = field(default_factory=list)

    @property
    def conflict(self) -> bool:
        return bool(self.repeat_name or self.repeat_identifier)


def resource_zip(resources: Mapping[str, Iterable[str]]) -> bytes:
    """A resource package (the format above) holding these names, by kind.

    Raises ValueError on a kind that is empty or holds ``/``, or a name that is not a non-empty string.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for kind, names in check_resources(resources).items():
            for name in names:
                entry = f"{kind}/{quote(name, safe=' ')}.json"
                archive.writestr(entry, json.dumps({"name": name, "kind": kind}, ensure_ascii=False))
    return buffer.getvalue()


def check_resources(resources: object) -> dict[str, list[str]]:
    """Names by kind, validated (:class:`~.validation.SpecError`), as lists."""
    if not isinstance(resources, Mapping):
        raise SpecError("resources must map kinds to lists of names")
    checked: dict[str, list[str]] = {}
    for kind, names in resources.items():
        if not isinstance(kind, str) or not kind or "/" in kind:
            raise SpecError(f"a resource kind must be a non-empty string without '/', got {kind!r}")
        if isinstance(names, str | bytes) or not isinstance(names, Iterable):
            raise SpecError(f"resources[{kind!r}] must be a list of names, got {names!r}")
        checked[kind] = list(names)
        if not all(isinstance(n, str) and n for n in checked[kind]):
            raise SpecError(f"resources[{kind!r}] must hold non-empty strings, got {checked[kind]!r}")
    return checked


def read_package(data: bytes) -> list[Resource]:
    """The resources of an uploaded package; :class:`PackageError` saying what is wrong with it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise PackageError("files: the part is not a zip archive") from None
    resources = []
    with archive:
        for info in archive.infolist():
            if not info.is_dir():
                resources.append(_resource(archive, info))
    if not resources:
        raise PackageError("files: the package holds no resources (entries <kind>/<name>.json)")
    return resources


def _resource(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Resource:
    kind, _, file = info.filename.partition("/")
    if not kind or "/" in file or not file.endswith(".json") or file == ".json":
        raise PackageError(f"files: entry {info.filename!r} is not <kind>/<name>.json")
    try:
        content = json.loads(archive.read(info))
    except (zipfile.BadZipFile, zlib.error, ValueError, RuntimeError, NotImplementedError, EOFError):
        raise PackageError(f"files: entry {info.filename!r} is damaged or not JSON") from None
    if not isinstance(content, dict):
        raise PackageError(f"files: entry {info.filename!r} is not a JSON object")
    name = content.get("name", unquote(file[: -len(".json")]))
    if not isinstance(name, str) or not name:
        raise PackageError(f"files: entry {info.filename!r}: name must be a non-empty string")
    return Resource(kind, name)


def upload_options(fields: Iterable[tuple[str, object]]) -> dict[str, str]:
    """The conflict options among an upload's form fields (others are ignored), defaults included."""
    options = {NAME_OPTION: "check", IDENTIFIER_OPTION: "check"}
    for key, value in fields:
        if not key.startswith("repeat"):
            continue
        if key == NAME_OPTION:
            choices = _NAME_CHOICES
        elif key == IDENTIFIER_OPTION or _OTHER_OPTION.fullmatch(key):
            choices = _CHOICES
        else:
            raise PackageError(
                f"unknown option {key}: the options are {NAME_OPTION}, {IDENTIFIER_OPTION} and repeat<Kind>NameOp"
            )
        if value not in choices:
            got = repr(value) if isinstance(value, str) else "a file"
            raise PackageError(f"{key} must be one of {', '.join(choices)}; got {got}")
        options[key] = str(value)
    return options


def triage(
    resources: Iterable[Resource], existing: Mapping[str, Collection[str]], options: Mapping[str, str]
) -> Triage:
    """Sort an upload's resources into conflicts and imports (see the module docstring)."""
    result = Triage()
    for resource in resources:
        option = _OPTION_OF_KIND.get(resource.kind)
        if option is None or resource.name not in existing.get(resource.kind, ()):
            result.imported.append(resource)
            continue
        choice = options[option]
        if choice == "check":
            names = result.repeat_name if option == NAME_OPTION else result.repeat_identifier
            if resource.name not in names:
                names.append(resource.name)
        elif choice != "skip":
            result.imported.append(resource)
    return result
