"""Who the watcher runs as: the unprivileged user dynamic-nginx, reaching Docker through the socket's group.

The watcher parses labels that anyone who can start a container writes, while it
holds the Docker connection, so neither the `watch` program nor the start-up render
runs as root. Both drop here, before they touch Docker: `plan` decides from what it
finds (pure, so the rules are tested as a table), `drop` applies it to this process.

Rules:
- started as a user already (`docker run --user`): nothing to do;
- the socket (DOCKER_HOST unix://, or the default) is group read-write: its group is
  the one supplementary group; a socket only root can use is named in one line with
  the fix (a socket proxy, or chmod 660 as dockerd makes it);
- a conf.d the user cannot write (a folder mounted from the host, owned by someone
  else): CAP_DAC_OVERRIDE is kept, the only capability, since writing there is the
  watcher's job; it also passes the socket's permissions;
- no capability can ever come back: no_new_privs, and the bounding set holds only what is kept.
"""

from __future__ import annotations

import ctypes
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

USER = "dynamic-nginx"
CAP_DAC_OVERRIDE = 1

log = logging.getLogger("watcher")


@dataclass(frozen=True)
class Plan:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    keep_dac_override: bool = False
    problem: str = ""  # one line for the log, when the plan cannot reach Docker


@dataclass(frozen=True)
class Socket:
    path: str
    uid: int
    gid: int
    mode: int


def socket_path(docker_host: str | None) -> str | None:
    """The unix socket the watcher will use; None for tcp:// (nothing to reach by group)."""
    if not docker_host:
        return "/var/run/docker.sock"
    if docker_host.startswith("unix://"):
        return docker_host[len("unix://") :]
    return None


def plan(uid: int, gid: int, conf_writable: bool, socket: Socket | None) -> Plan:
    """What to become, given the user's ids, whether that user can write conf.d, and the socket."""
    keep = not conf_writable
    if socket is None:
        return Plan(uid, gid, keep_dac_override=keep)
    if socket.mode & 0o060 == 0o060:
        return Plan(uid, gid, (socket.gid,), keep)
    if socket.mode & 0o006 == 0o006 or socket.uid == uid or keep:
        return Plan(uid, gid, keep_dac_override=keep)
    return Plan(
        uid,
        gid,
        keep_dac_override=keep,
        problem=(
            f"{socket.path} (owner uid {socket.uid}, group gid {socket.gid}, mode {socket.mode:o}) cannot be used "
            f"through its group, so the watcher (user {USER}, uid {uid}) cannot reach Docker: make the socket "
            "group read-write (chmod 660, as dockerd makes it), or put a socket proxy in front and set DOCKER_HOST to it"
        ),
    )


def _user() -> tuple[int, int] | None:
    try:
        with open("/etc/passwd") as passwd:
            for line in passwd:
                fields = line.split(":")
                if len(fields) > 3 and fields[0] == USER:
                    return int(fields[2]), int(fields[3])
    except (OSError, ValueError):
        pass
    return None


def _writable_by(folder: Path, uid: int, gid: int) -> bool:
    """Whether uid/gid (with no supplementary group) may create files in folder, by its mode bits."""
    try:
        info = folder.stat()
    except OSError:
        return False
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == uid:
        return mode & 0o300 == 0o300
    if info.st_gid == gid:
        return mode & 0o030 == 0o030
    return mode & 0o003 == 0o003


def _socket(docker_host: str | None) -> Socket | None:
    path = socket_path(docker_host)
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:  # not there: the connection's own error names it later
        return None
    return Socket(path, info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))


# Linux ABI: prctl options, capset's header version 3.
_PR_SET_KEEPCAPS, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 8, 24, 38
_CAP_V3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _apply(p: Plan) -> None:
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int, what: str) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")

    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if not (p.keep_dac_override and cap == CAP_DAC_OVERRIDE):
            check(libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping capabilities")
    check(libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "keeping capabilities")
    os.setgroups(list(p.groups))
    os.setresgid(p.gid, p.gid, p.gid)
    os.setresuid(p.uid, p.uid, p.uid)
    kept = 1 << CAP_DAC_OVERRIDE if p.keep_dac_override else 0
    data = (_Data * 2)(_Data(kept, kept, 0), _Data(0, 0, 0))
    check(libc.capset(ctypes.byref(_Header(_CAP_V3, 0)), data), "setting capabilities")
    check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no_new_privs")


def drop(conf_dir: Path, docker_host: str | None, report: bool = True) -> None:
    """Become the watcher's user, as `plan` says; as root still (one line) if that cannot be done.

    Called once, first thing, by each process that reads Docker; only the watcher
    (report) names a socket it cannot use, so that the problem is one line.
    """
    if os.geteuid() != 0:
        return
    user = _user()
    if user is None:
        log.warning("no user %s in /etc/passwd, so the watcher runs as root", USER)
        return
    uid, gid = user
    chosen = plan(uid, gid, _writable_by(conf_dir, uid, gid), _socket(docker_host))
    if chosen.problem and report:
        log.error("%s", chosen.problem)
    try:
        _apply(chosen)
    except OSError as error:
        log.warning(
            "cannot switch to user %s (%s: CAP_SETUID, CAP_SETGID or CAP_SETPCAP dropped?), "
            "so the watcher runs as root",
            USER,
            error.strerror or error,
        )
