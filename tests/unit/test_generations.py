"""Old worker generations: grouped by start time, the oldest beyond the limit ended, on a real nginx too."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dynamic_nginx import generations as G
from dynamic_nginx.generations import Generation, Keeper, Worker, old_generations, read_worker, to_end
from dynamic_nginx.nginx import Nginx, children
from support import needs_nginx, nginx_command, nginx_running


def worker(pid: int, started: int, draining: bool = True, rss: int = 4096) -> Worker:
    return Worker(pid=pid, started=started, rss_kib=rss, draining=draining)


def gen(started: int, *pids: int) -> Generation:
    return Generation(started, tuple(worker(pid, started) for pid in pids))


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        pytest.param([], [], id="no workers"),
        pytest.param([worker(10, 500, draining=False)], [], id="the current generation is not old"),
        pytest.param([worker(11, 500), worker(10, 500)], [(500, (10, 11))], id="two workers forked together"),
        pytest.param([worker(10, 500), worker(11, 501)], [(500, (10, 11))], id="a generation straddling a clock tick"),
        pytest.param(
            [worker(20, 900), worker(10, 500), worker(30, 1300, draining=False)],
            [(500, (10,)), (900, (20,))],
            id="two old generations oldest first, the current one left out",
        ),
        pytest.param([worker(10, 500), worker(11, 503)], [(500, (10,)), (503, (11,))], id="two reloads 30 ms apart"),
    ],
)
def test_old_generations_group_draining_workers_by_start_time(
    workers: list[Worker], expected: list[tuple[int, tuple[int, ...]]]
) -> None:
    assert [(g.started, g.pids) for g in old_generations(workers)] == expected


THREE = [gen(100, 1, 2), gen(200, 3), gen(300, 4)]


@pytest.mark.parametrize(
    ("generations", "limit", "seen", "ended"),
    [
        pytest.param(THREE, 3, {100, 200, 300}, [], id="at the limit: none"),
        pytest.param(THREE, 10, {100, 200, 300}, [], id="under the limit: none"),
        pytest.param(THREE, 2, {100, 200, 300}, [100], id="one over: the oldest"),
        pytest.param(THREE, 1, {100, 200, 300}, [100, 200], id="two over: the two oldest"),
        pytest.param(THREE, 0, {100, 200, 300}, [100, 200, 300], id="limit 0: every old one"),
        pytest.param(THREE, 1, {200, 300}, [200], id="one not seen before is spared until the next check"),
        pytest.param(THREE, 0, set(), [], id="none seen yet: the master may not have marked them"),
        pytest.param([], 0, set(), [], id="no old generations"),
    ],
)
def test_to_end_picks_the_oldest_beyond_the_limit(
    generations: list[Generation], limit: int, seen: set[int], ended: list[int]
) -> None:
    assert [g.started for g in to_end(generations, limit, seen)] == ended


def test_summary_counts_generations_workers_and_memory() -> None:
    assert G.summary([gen(100, 1, 2), gen(200, 3)]) == (
        "2 old worker generations still serving connections (3 workers, 12.0 MiB resident)"
    )
    assert G.summary([gen(100, 1)]) == "1 old worker generation still serving connections (1 worker, 4.0 MiB resident)"


def test_read_worker_reads_a_real_process_and_skips_others(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert read_worker(sleeper.pid) is None  # not titled as an nginx worker
        assert read_worker(2**22 + 1) is None  # no such process
    finally:
        sleeper.kill()
        sleeper.wait()
    # The same files with a worker's title: start time is field 22 of stat, memory VmRSS.
    fake = tmp_path / "77"
    fake.mkdir()
    (fake / "cmdline").write_bytes(b"nginx: worker process is shutting down\0")
    (fake / "stat").write_text(
        "77 (nginx (odd) name) S 40 40 1 0 -1 4194624 1 0 0 0 0 0 0 0 20 0 1 0 1319133 15482880 894\n"
    )
    (fake / "status").write_text("Name:\tnginx\nVmRSS:\t    4324 kB\nRssAnon:\t2072 kB\n")
    assert read_worker(77, tmp_path) == Worker(pid=77, started=1319133, rss_kib=4324, draining=True)
    (fake / "cmdline").write_bytes(b"nginx: worker process\0")
    assert read_worker(77, tmp_path) == Worker(pid=77, started=1319133, rss_kib=4324, draining=False)


@pytest.fixture
def held_nginx(tmp_path: Path) -> Iterator[tuple[Nginx, Path]]:
    """A real nginx proxying to a backend that never answers: each request holds its worker."""
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    # On loopback TCP: the workers' user may not enter tmp_path to reach a unix socket.
    backend = socket.socket()
    backend.bind(("127.0.0.1", 0))
    backend.listen(64)  # never accepted: nginx's requests wait in the backlog
    port = backend.getsockname()[1]
    server = (
        f"    server {{ listen unix:{tmp_path}/http.sock;\n"
        f"        location / {{ proxy_pass http://127.0.0.1:{port}; proxy_read_timeout 1h; }} }}\n"
    )
    command = nginx_command(tmp_path, conf_d, server=server)
    try:
        with nginx_running(command, tmp_path, signal.SIGTERM):
            yield Nginx(command, tmp_path / "nginx.pid", retire_early=True), tmp_path
    finally:
        backend.close()


def hold(folder: Path) -> socket.socket:
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(10)
    client.connect(str(folder / "http.sock"))
    client.sendall(b"GET / HTTP/1.0\r\n\r\n")
    return client


def wait_for_generations(keeper: Keeper, count: int) -> list[Generation]:
    deadline = time.monotonic() + 10
    while True:
        found = keeper.check()
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@needs_nginx
def test_the_keeper_ends_the_oldest_generation_beyond_the_limit_and_spares_the_rest(
    held_nginx: tuple[Nginx, Path], caplog: pytest.LogCaptureFixture
) -> None:
    nginx, folder = held_nginx
    master = nginx.master_pid() or 0
    keeper = Keeper(1, nginx.master_pid, logging.getLogger("reloader"), children)
    caplog.set_level(logging.DEBUG, "reloader")
    with hold(folder) as first:
        time.sleep(0.3)  # nginx has the request: it waits on the backend
        assert nginx.reload() is True
        [oldest] = wait_for_generations(keeper, 1)
        assert "1 old worker generation still serving connections (1 worker," in caplog.text
        with hold(folder) as second:
            time.sleep(0.3)
            assert nginx.reload() is True
            time.sleep(0.3)  # the second old generation takes its title

            left = keeper.check()  # two old generations, limit 1: the oldest (seen before) is ended

            assert len(left) == 1 and left[0].started != oldest.started
            assert keeper.ended == 1
            warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warning) == 1 and f"pid {oldest.pids[0]}," in warning[0], warning
            assert "since 2 old generations were live and DYNAMIC_NGINX_MAX_OLD_GENERATIONS=1" in warning[0]
            assert first.recv(64) == b"", "the ended generation's connection is closed"
            second.settimeout(0.5)
            with pytest.raises(TimeoutError):
                second.recv(64)  # the younger old generation still holds its request
            time.sleep(0.5)
            workers = children(master)
            assert oldest.pids[0] not in workers
            assert len(workers) == 2, "one current worker and one old one: the master respawned nothing"
