"""Run supervisord without importing pkg_resources.

supervisor imports setuptools' pkg_resources at start-up only to turn
`module:attr` factory specs into objects; that import costs about 85 ms of
CPU, a third of supervisord's start-up, which is on the path to nginx's
first answer. A stand-in with just that ability is enough.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class EntryPoint:
    """The part of pkg_resources.EntryPoint that supervisor uses: parse, then resolve."""

    def __init__(self, module: str, attrs: str):
        self.module = module
        self.attrs = attrs

    @classmethod
    def parse(cls, source: str) -> EntryPoint:
        _name, _, spec = source.partition("=")
        module, _, attrs = spec.strip().partition(":")
        return cls(module.strip(), attrs.strip())

    def resolve(self) -> Any:
        target: Any = importlib.import_module(self.module)
        for attr in filter(None, self.attrs.split(".")):
            target = getattr(target, attr)
        return target


def main() -> int:
    stand_in = types.ModuleType("pkg_resources")
    stand_in.EntryPoint = EntryPoint  # type: ignore[attr-defined]
    sys.modules.setdefault("pkg_resources", stand_in)
    from supervisor.supervisord import main as supervisord

    sys.argv[0] = "supervisord"
    supervisord()
    return 0


if __name__ == "__main__":
    sys.exit(main())
