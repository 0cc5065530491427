"""The nginx command line the container was given: the one place that parses it.

bin/start hands the container's argv to the first render unparsed; the
first render says whether it starts a server (`nginx -T` and friends run as
they are, as in the official image) and records the command nginx runs; the
reloader and the start-up check read that record and take the options that
select nginx's configuration from here. The rules are nginx's own
(ngx_get_options in nginx.c), so that what `nginx -t` tests is what the
running nginx loaded:

- flags may be glued (`-tq`); an option with a value takes the rest of its
  argument, or the next argument (`-c file`, `-cfile`, `-ct` is `-c t`);
- an unknown letter, an argument that is no option, or an option without its
  value is an error: nginx says so and exits;
- `-c`, `-p`, `-e` and `-g` given twice: the last one counts (nginx keeps no
  list; the earlier `-g` is ignored);
- a relative `-c` is relative to the prefix (`-p`, else the compiled
  --prefix), not to the working directory.

Imported on the start-up path before anything else, and bin/start waits for
its answer: no import beyond os until the answer is given (dataclasses
and re alone would double the wait).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence  # loaded by Python's own start-up already

# Debian's nginx: `nginx -V` says --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf.
DEFAULT_PREFIX = "/usr/share/nginx/"
DEFAULT_CONF = "/etc/nginx/nginx.conf"
DEFAULT_COMMAND = ("nginx", "-g", "daemon off;")
FLAGS = frozenset("?hvVtTq")  # take no value
VALUED = frozenset("pecgs")  # take the rest of the argument, or the next one
SHUTDOWN_TIMEOUT_VARIABLE = "DYNAMIC_NGINX_WORKER_SHUTDOWN_TIMEOUT"
_NGINX_TIME = r"[0-9]{1,6}(ms|s|m|h|d)?"
_SETS_SHUTDOWN_TIMEOUT = r"(?m)^[^#\n]*\bworker_shutdown_timeout\b"


class Command:
    """One nginx command line, parsed as nginx parses it."""

    def __init__(
        self,
        argv: Sequence[str],
        flags: set[str] | frozenset[str] = frozenset(),
        values: dict[str, str] | None = None,
        params_at: int | None = None,
        error: str = "",
    ):
        self.argv = tuple(argv)
        self.flags = frozenset(flags)
        self.values = dict(values or {})  # the last value of each of p, e, c, g, s
        self.params_at = params_at  # the argument that ends with the last -g's value
        self.error = error  # nginx's complaint, if it would refuse this command line

    def __repr__(self) -> str:
        return f"Command({list(self.argv)!r}, error={self.error!r})"

    @property
    def binary(self) -> str:
        return self.argv[0] if self.argv else "nginx"

    @property
    def serves(self) -> bool:
        """True if nginx would start a server: no error, and nothing that tests,
        prints or signals and then exits."""
        return not self.error and not self.flags & set("?hvVtT") and "s" not in self.values

    @property
    def prefix(self) -> str:
        prefix = self.values.get("p", DEFAULT_PREFIX)
        return prefix if prefix.endswith("/") else prefix + "/"

    @property
    def conf(self) -> str:
        """The main configuration file nginx loads (absolute)."""
        conf = self.values.get("c", DEFAULT_CONF)
        return os.path.abspath(os.path.join(self.prefix, conf))

    @property
    def config_options(self) -> list[str]:
        """The options that select what nginx loads, for `nginx -t` to test the same."""
        return [arg for letter in "pceg" if letter in self.values for arg in (f"-{letter}", self.values[letter])]


def parse(argv: Sequence[str]) -> Command:
    """argv as nginx would read it (argv[0] is the binary)."""
    flags: set[str] = set()
    values: dict[str, str] = {}
    params_at: int | None = None
    index = 1
    while index < len(argv):
        arg = argv[index]
        if not arg.startswith("-"):
            return Command(argv, flags, values, params_at, f'invalid option: "{arg}"')
        position = 1
        while position < len(arg):
            letter = arg[position]
            position += 1
            if letter in FLAGS:
                flags.add(letter)
            elif letter in VALUED:
                if position < len(arg):
                    value = arg[position:]
                elif index + 1 < len(argv):
                    index += 1
                    value = argv[index]
                else:
                    error = f'option "-{letter}" requires a value'
                    return Command(argv, flags, values, params_at, error)
                values[letter] = value
                if letter == "g":
                    params_at = index
                break
            else:
                return Command(argv, flags, values, params_at, f'invalid option: "{letter}"')
        index += 1
    return Command(argv, flags, values, params_at)


def read(path: os.PathLike[str] | str) -> Command:
    """The command the first render recorded (NUL-separated); the image's CMD if none."""
    try:
        with open(path, "rb") as handle:
            parts = [p for p in handle.read().split(b"\0") if p]
    except OSError:
        parts = []
    return parse([os.fsdecode(p) for p in parts] or DEFAULT_COMMAND)


def encode(argv: Sequence[str]) -> bytes:
    """NUL-separated, so that arguments such as -g 'daemon off;' survive as they are."""
    return b"".join(os.fsencode(arg) + b"\0" for arg in argv)


class BadTimeout(ValueError):
    """DYNAMIC_NGINX_WORKER_SHUTDOWN_TIMEOUT is no nginx time; the message says so."""


def with_shutdown_timeout(command: Command, timeout: str | None, conf_text: str = "") -> list[str]:
    """The command with `worker_shutdown_timeout` added to its -g, unless `timeout`
    is unset or `none`, or the command or its main configuration sets it already.

    nginx reads only the last -g, so the directive goes into that one.
    """
    import re

    argv = list(command.argv)
    if timeout is None or timeout in ("", "none"):
        return argv
    if not re.fullmatch(_NGINX_TIME, timeout):
        raise BadTimeout(f"{SHUTDOWN_TIMEOUT_VARIABLE}={timeout} is not an nginx time such as 30s or 2m (or none)")
    directive = f"worker_shutdown_timeout {timeout};"
    if re.search(_SETS_SHUTDOWN_TIMEOUT, command.values.get("g", "")) or re.search(_SETS_SHUTDOWN_TIMEOUT, conf_text):
        return argv
    if command.params_at is None:
        return [*argv, "-g", directive]
    argv[command.params_at] += f" {directive}"  # glued (-g...) or not, the value ends it
    return argv


def read_conf(command: Command) -> str:
    """The main configuration's text, as far as it can be read."""
    try:
        with open(command.conf, encoding="utf-8", errors="replace") as handle:
            return handle.read(1 << 20)
    except OSError:
        return ""


def nginx_command(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The command nginx runs for the container's argv (see with_shutdown_timeout)."""
    command = parse(argv)
    timeout = (os.environ if environ is None else environ).get(SHUTDOWN_TIMEOUT_VARIABLE)
    return with_shutdown_timeout(command, timeout, read_conf(command) if timeout not in (None, "", "none") else "")
