"""Rendering: model + Jinja2 templates -> file name -> text, with no I/O but reading templates.

Each `NAME.j2` template found in the template folders renders to `NAME` in
conf.d. A user folder comes first, so a mounted template with a built-in's
name replaces it. Every output starts with marker.MARKER, which is how the writer
knows which files in conf.d are ours to replace or remove.

Templates, the user's and the built-in ones alike, run in Jinja2's immutable
sandbox: the watcher that renders them holds the Docker socket, so a template
may read the documented context and nothing else (no Python internals, no
file system through the Paths in `settings`). Breaking out is a render error
naming the template, and its previous output stays.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

import jinja2
import jinja2.sandbox

from .exclusions import Exclusion
from .labels import ServerOptions
from .marker import MARKER
from .model import Container, Model, Proxy, Server, Upstream
from .settings import Settings

SUFFIX = ".j2"
OUTPUT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")


@dataclasses.dataclass(frozen=True)
class Rendered:
    """What one render pass produced: texts by output name, and errors by output name."""

    outputs: Mapping[str, str]
    errors: Mapping[str, str]


def find_templates(folders: Iterable[Path]) -> dict[str, Path]:
    """Output name -> template path; earlier folders win on equal names."""
    found: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*" + SUFFIX)):
            output = path.name[: -len(SUFFIX)]
            if path.is_file() and OUTPUT_NAME_RE.fullmatch(output):
                found.setdefault(output, path)
    return found


# What a template may read of a path in `settings`: the pure parts. Every other attribute
# (read_text, open, unlink, glob, ...) would reach the file system of the process that
# holds the Docker socket.
_PATH_ATTRIBUTES = frozenset({"name", "stem", "suffix", "suffixes", "parent", "parents", "parts", "as_posix"})


# The model's value types: frozen dataclasses of validated data, whose public
# attributes are fields and properties computed from them (no methods that act).
_MODEL_TYPES = frozenset({Model, Upstream, Server, Container, Proxy, Exclusion, ServerOptions})


def _declared(kind: type, attribute: str) -> bool:
    """True for a dataclass field or a property (cached or not) declared by the type."""
    if attribute in {f.name for f in dataclasses.fields(kind)}:
        return True
    found = getattr(kind, attribute, None)  # on the class: the property object itself
    return isinstance(found, (property, functools.cached_property))


class _Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox (no underscore attributes, no str.format tricks, no
    mutation of lists and dicts), with paths reduced to their pure parts.

    Every one of these checks depends on the object's type and the attribute's
    name only (never on the value), so each answer is remembered per (type,
    name): a template reads thousands of server attributes per render, and
    checking each from scratch was a third of a large render.
    """

    def __init__(self, **options: Any):
        super().__init__(**options)
        self._safe: dict[tuple[type, str], bool] = {}
        self._plain: set[tuple[type, str]] = set()

    def getattr(self, obj: Any, attribute: str) -> Any:
        """The sandbox's getattr, with a short cut for the public fields and properties
        of the model's own value types (see _MODEL_TYPES): for those the sandbox's
        answer is always the plain attribute, and they are most of what a render reads."""
        if (type(obj), attribute) in self._plain:
            return getattr(obj, attribute)
        value = super().getattr(obj, attribute)
        kind = type(obj)
        if kind in _MODEL_TYPES and not attribute.startswith("_") and _declared(kind, attribute):
            self._plain.add((kind, attribute))
        return value

    def is_safe_attribute(self, obj: object, attr: str, value: object) -> bool:
        key = (type(obj), attr)
        safe = self._safe.get(key)
        if safe is None:
            safe = self._safe[key] = self._check(obj, attr, value)
        return safe

    def _check(self, obj: object, attr: str, value: object) -> bool:
        if isinstance(obj, PurePath) and attr not in _PATH_ATTRIBUTES:
            return False
        return bool(super().is_safe_attribute(obj, attr, value))


class _Loader(jinja2.FileSystemLoader):
    """A FileSystemLoader whose templates are up to date while their text is the same.

    Jinja2's own check compares modification times, which a file rewritten
    within the same clock tick keeps; reading a template back is cheap next to
    compiling it at every render.
    """

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, _ = super().get_source(environment, template)

        def uptodate() -> bool:
            try:
                return Path(filename).read_text(encoding=self.encoding) == source
            except OSError:
                return False

        return source, filename, uptodate


# One environment per template folder, kept across renders so that templates are compiled
# once per change of their text, not once per render. Only the watcher's thread renders.
_ENVIRONMENTS: dict[Path, jinja2.Environment] = {}


def _environment(folder: Path) -> jinja2.Environment:
    found = _ENVIRONMENTS.get(folder)
    if found is None:
        found = _ENVIRONMENTS[folder] = _Sandbox(
            loader=_Loader(str(folder)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return found


def _error_line(path: Path, error: Exception) -> str:
    """One log line naming the template file, the line if known, and the cause."""
    line = getattr(error, "lineno", None)
    if line is None:
        for frame in reversed(_traceback_frames(error)):
            if frame[0] == str(path):
                line = frame[1]
                break
    where = f"{path}:{line}" if line else str(path)
    cause = " ".join(str(error).split())  # one line, whatever the template made the message
    return f"template {where}: {type(error).__name__}: {cause}; its previous output is kept until the template is fixed"


def _traceback_frames(error: Exception) -> list[tuple[str, int]]:
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def context(model: Model, settings: Settings) -> dict[str, object]:
    """The variables every template sees (documented in docs/templates.md)."""
    return {
        "upstreams": model.upstreams,
        "containers": model.containers,
        "proxy": model.proxy,
        "settings": settings,
    }


def render_one(path: Path, variables: Mapping[str, object]) -> str:
    """Render one template file; raises whatever Jinja2 raises."""
    template = _environment(path.parent).get_template(path.name)
    body = template.render(**variables)
    header = f"{MARKER} from {path.name}; changes are overwritten.\n"
    return header + body if body.endswith("\n") else header + body + "\n"


def render_all(templates: Mapping[str, Path], model: Model, settings: Settings) -> Rendered:
    """Render every template; one failing template does not stop the others."""
    variables = context(model, settings)
    outputs: dict[str, str] = {}
    errors: dict[str, str] = {}
    for output, path in sorted(templates.items()):
        try:
            outputs[output] = render_one(path, variables)
        except Exception as error:  # a user's template may raise anything
            errors[output] = _error_line(path, error)
    return Rendered(outputs=outputs, errors=errors)
