"""Run supervisord without importing pkg_resources, restarting exited programs at once.

supervisor imports setuptools' pkg_resources at start-up only to turn
`module:attr` factory specs into objects; that import is a large part of
supervisord's start-up, which is on the path to nginx's first answer. A stand-in with just that ability is enough.
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


class _Reaped:
    """Set when supervisord has reaped a child; its next poll then returns at once."""

    pending = False


def restart_at_once() -> None:
    """Make supervisord restart a program that exited now, not at its next tick.

    supervisord reaps an exited child after its poll (which waits up to a
    second) and restarts it only in the next loop, after the next poll: a
    nginx killed with -9 would stay down a second longer than it needs to.
    A poll right after a reap returns at once instead; idle, nothing changes.
    """
    from supervisor import options, poller

    waitpid = options.ServerOptions.waitpid
    poll = poller.Poller.poll

    def reaping(self: Any) -> Any:
        pid, status = waitpid(self)
        if pid:
            _Reaped.pending = True
        return pid, status

    def polling(self: Any, timeout: float) -> Any:
        if _Reaped.pending:
            _Reaped.pending = False
            timeout = 0
        return poll(self, timeout)

    options.ServerOptions.waitpid = reaping
    poller.Poller.poll = polling


def main() -> int:
    stand_in = types.ModuleType("pkg_resources")
    stand_in.EntryPoint = EntryPoint  # type: ignore[attr-defined]
    sys.modules.setdefault("pkg_resources", stand_in)
    from supervisor.supervisord import main as supervisord

    restart_at_once()

    sys.argv[0] = "supervisord"
    supervisord()
    return 0


if __name__ == "__main__":
    sys.exit(main())
