"""`python3 -m dynamic_nginx.start NGINX-ARGV...`: the first render, as bin/start runs it.

bin/start passes the container's command through unparsed. This process
parses it (command.py) and answers on stdout at once, before any heavy import:
`exec` for a command that starts no server (`nginx -T`, `nginx -v`, a
command nginx refuses), which bin/start then runs as it is, as the official
image does; `serve` otherwise. For `serve` it waits for one line on stdin
(`go`: bin/start has made the run dir), records the command nginx is to run there
(with DYNAMIC_NGINX_WORKER_SHUTDOWN_TIMEOUT added), then renders as
`first-render` does. One process, so the answer costs no extra interpreter
start on the way to nginx's first answer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from . import command


def record(argv: Sequence[str]) -> int:
    """Write the command nginx runs where run-nginx and the reloader read it; 2 if a setting is bad."""
    from . import settings as S

    try:
        path = S.from_env().nginx_args_file
    except S.SettingsError:
        return 0  # the render says which setting, and exits 2
    try:
        final = command.nginx_command(argv)
    except command.BadTimeout as error:
        print(f"dynamic-nginx: {error}", file=sys.stderr)
        return 2
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(command.encode(final))
    os.replace(temporary, path)
    return 0


def tell_start(argv: Sequence[str]) -> bool:
    """Say on stdout whether argv starts a server (`serve`) or runs as it is
    (`exec`); True for serve. bin/start reads that one line: stdout is stderr after it."""
    serves = command.parse(argv).serves
    sys.stdout.write("serve\n" if serves else "exec\n")
    sys.stdout.flush()
    os.dup2(2, 1)
    return serves


def main(argv: Sequence[str]) -> int:
    if not tell_start(argv):
        return 0
    if sys.stdin.readline() != "go\n":  # bin/start gave up (no run dir): nothing to render into
        return 0
    status = record(argv)
    if status:
        return status
    from .__main__ import main as run

    return run(["first-render"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
