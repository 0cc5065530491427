"""User files are sacred: a file in conf.d is written or removed only with both proofs, name and marker.

The name proof is an output of a template being rendered now, or a name in the
record the watcher keeps in the run dir of what it wrote; the marker proof is
the first line. Everything here runs on real files (and real nginx -t where
the image has it).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from dynamic_nginx import lastgood, rundir, startup, write
from dynamic_nginx.marker import MARKER, recorded
from dynamic_nginx.nginx import Nginx
from dynamic_nginx.rebuild import Output
from support import needs_nginx, nginx_command, settings_in

GENERATED = f"{MARKER} from up.conf.j2; changes are overwritten.\nupstream a.upstream {{ server 10.0.0.1:80; }}\n"
NEWER = f"{MARKER} from up.conf.j2; changes are overwritten.\nupstream a.upstream {{ server 10.0.0.2:80; }}\n"
USERS = "upstream a.upstream { server 192.0.2.7:80; }  # the user's own\n"


def files(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    folder = tmp_path / "conf.d"
    folder.mkdir()
    return folder


@pytest.fixture
def record(tmp_path: Path) -> Path:
    (tmp_path / "run").mkdir()
    return tmp_path / "run" / rundir.WRITTEN


def test_a_users_file_with_the_output_name_is_never_overwritten(conf: Path, record: Path) -> None:
    (conf / "up.conf").write_text(USERS)

    changes = write.sync(conf, {"up.conf": GENERATED, "other.conf": GENERATED}, record=record)

    assert files(conf) == {"up.conf": USERS, "other.conf": GENERATED}  # the other output is still written
    assert changes.written == ("other.conf",) and changes.removed == () and changes.failed == ()
    assert changes.conflicts == (
        f"{conf}/up.conf is your file (its first line is not '{MARKER}'), so dynamic-nginx does not write "
        "its own up.conf over it: rename your file to let dynamic-nginx generate up.conf, or remove it to "
        "let dynamic-nginx generate it in its place",
    )


def test_the_users_file_is_never_removed_either_once_the_template_is_gone(conf: Path, record: Path) -> None:
    (conf / "up.conf").write_text(USERS)
    write.sync(conf, {"up.conf": GENERATED}, record=record)  # its name is in the record now
    changes = write.sync(conf, {}, record=record)
    assert files(conf) == {"up.conf": USERS} and changes.removed == ()


def test_once_the_users_file_is_removed_the_output_is_generated(conf: Path, record: Path) -> None:
    (conf / "up.conf").write_text(USERS)
    write.sync(conf, {"up.conf": GENERATED}, record=record)
    (conf / "up.conf").unlink()
    changes = write.sync(conf, {"up.conf": GENERATED}, record=record)
    assert changes.written == ("up.conf",) and changes.conflicts == ()
    assert files(conf) == {"up.conf": GENERATED}


def test_a_copy_with_the_marker_is_never_removed(conf: Path, record: Path) -> None:
    write.sync(conf, {"up.conf": GENERATED}, record=record)
    (conf / "pinned.conf").write_text(GENERATED)  # the user pins today's upstreams

    changes = write.sync(conf, {"up.conf": NEWER}, record=record)

    assert files(conf) == {"pinned.conf": GENERATED, "up.conf": NEWER}
    assert changes.written == ("up.conf",) and changes.removed == ()
    assert changes.conflicts == (
        f"{conf}/pinned.conf starts with the dynamic-nginx marker but dynamic-nginx did not write it under "
        "this name (a copy of a generated file?), so it is left alone: if it repeats upstreams that "
        "dynamic-nginx generates, nginx -t fails on the duplicates and says so; remove it, or remove its "
        "first line to make it plainly yours",
    )


def test_a_file_it_wrote_is_removed_when_its_template_is_gone(conf: Path, record: Path) -> None:
    write.sync(conf, {"up.conf": GENERATED, "old.conf": GENERATED}, record=record)
    assert recorded(record, conf) == {"up.conf", "old.conf"}

    changes = write.sync(conf, {"up.conf": GENERATED}, record=record)

    assert changes.removed == ("old.conf",) and changes.conflicts == ()
    assert files(conf) == {"up.conf": GENERATED}
    assert recorded(record, conf) == {"up.conf"}  # a later file of that name is not ours


def test_a_name_that_left_the_record_is_not_ours_again(conf: Path, record: Path) -> None:
    write.sync(conf, {"up.conf": GENERATED, "old.conf": GENERATED}, record=record)
    write.sync(conf, {"up.conf": GENERATED}, record=record)
    (conf / "old.conf").write_text(GENERATED)  # the user puts a copy back under that name
    changes = write.sync(conf, {"up.conf": GENERATED}, record=record)
    assert changes.removed == () and len(changes.conflicts) == 1
    assert (conf / "old.conf").exists()


def test_a_recorded_file_the_user_took_over_is_left_alone(conf: Path, record: Path) -> None:
    write.sync(conf, {"up.conf": GENERATED, "old.conf": GENERATED}, record=record)
    (conf / "old.conf").write_text(USERS)  # marker line gone: the user's now
    changes = write.sync(conf, {"up.conf": GENERATED}, record=record)
    assert changes.removed == () and changes.conflicts == ()
    assert files(conf) == {"old.conf": USERS, "up.conf": GENERATED}


def test_without_a_record_only_the_outputs_are_provably_ours(conf: Path, record: Path) -> None:
    # A recreated container: its run dir, and the record, are new; conf.d is the old one.
    (conf / "up.conf").write_text(GENERATED)
    (conf / "gone.conf").write_text(GENERATED)
    changes = write.sync(conf, {"up.conf": NEWER}, record=record)
    assert changes.written == ("up.conf",) and changes.removed == ()
    assert [line.split(" ", 1)[0] for line in changes.conflicts] == [f"{conf}/gone.conf"]
    assert files(conf) == {"gone.conf": GENERATED, "up.conf": NEWER}


def test_the_record_keeps_other_folders_lines(tmp_path: Path, record: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    write.sync(first, {"x.conf": GENERATED}, record=record)
    write.sync(second, {"y.conf": GENERATED}, record=record)
    write.sync(second, {}, record=record)
    assert recorded(record, first) == {"x.conf"} and recorded(record, second) == set()
    assert files(second) == {}


def test_the_watcher_logs_each_conflict_once_while_it_lasts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_in(tmp_path)
    output = Output(settings)
    (settings.conf_dir / "up.conf").write_text(USERS)
    caplog.set_level(logging.INFO, "watcher")

    for _ in range(3):  # three renders: one line
        output.write({"up.conf": GENERATED})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(f"{settings.conf_dir}/up.conf is your file")
    assert "rename your file" in warnings[0] and "remove it" in warnings[0]

    (settings.conf_dir / "up.conf").unlink()  # the fix: the generated file is written at the next render
    assert output.write({"up.conf": GENERATED}).written == ("up.conf",)
    (settings.conf_dir / "up.conf").write_text(USERS)  # back again: logged again
    output.write({"up.conf": GENERATED})
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_the_reloaders_copies_only_own_recorded_files(tmp_path: Path, conf: Path, record: Path) -> None:
    write.sync(conf, {"up.conf": GENERATED}, record=record)
    (conf / "pinned.conf").write_text(GENERATED)
    copies = lastgood.GoodCopies(conf, tmp_path / "good", record)
    assert set(copies.current()) == {"up.conf"}
    assert copies.owns(conf / "up.conf") and not copies.owns(conf / "pinned.conf")


@needs_nginx
@pytest.mark.parametrize("copy", ["pinned.conf", "a-pinned.conf"])  # nginx blames the copy / the generated file
def test_nginx_t_failing_on_a_pinned_copy_never_removes_it(tmp_path: Path, conf: Path, record: Path, copy: str) -> None:
    """The copy repeats the generated upstream, so nginx -t fails on the duplicate: it is reported
    (by the caller), and neither file is "repaired" away."""
    write.sync(conf, {"up.conf": GENERATED}, record=record)
    copies = lastgood.GoodCopies(conf, tmp_path / "good", record)
    nginx = Nginx(nginx_command(tmp_path, conf), tmp_path / "nginx.pid")
    assert lastgood.test_and_repair(nginx, copies, logging.getLogger()).ok
    (conf / copy).write_text(GENERATED)

    result = lastgood.test_and_repair(nginx, copies, logging.getLogger())

    assert not result.ok and 'duplicate upstream "a.upstream"' in result.message
    assert files(conf) == {copy: GENERATED, "up.conf": GENERATED}


def test_the_watcher_and_the_nginx_checks_share_one_record(tmp_path: Path) -> None:
    """The reloader and the start-up check read the record the watcher writes, in the run dir."""
    settings = settings_in(tmp_path)
    Output(settings).write({"up.conf": GENERATED})
    (settings.conf_dir / "pinned.conf").write_text(GENERATED)
    copies = startup._copies(settings)
    assert set(copies.current()) == {"up.conf"}
    assert recorded(settings.run_dir / rundir.WRITTEN, settings.conf_dir) == {"up.conf"}
