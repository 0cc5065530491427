"""lastgood: generated files nginx -t blames get their last good version back; the user's never do."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pytest
from dynamic_nginx import lastgood
from dynamic_nginx.lastgood import Blame, GoodCopies, blamed, template_of
from dynamic_nginx.marker import MARKER
from dynamic_nginx.nginx import Nginx
from dynamic_nginx.nginx import TestResult as Result  # a "Test" name pytest would collect
from support import needs_nginx, nginx_command

repair = lastgood.test_and_repair


def generated(body: str, template: str = "site.conf.j2") -> str:
    return f"{MARKER} from {template}; changes are overwritten.\n{body}"


GOOD = generated("upstream a.upstream { server 10.0.0.1:80; }\n")
NEWER = generated("upstream a.upstream { server 10.0.0.2:80; }\n")
BAD = generated("this is not nginx;\n")
USERS = "server { listen 127.0.0.1:8098; }\n"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            '[emerg] unknown directive "this" in /etc/nginx/conf.d/a.conf:2',
            Blame(Path("/etc/nginx/conf.d/a.conf"), 2),
            id="unknown directive",
        ),
        pytest.param(
            "[emerg] 56#56: no servers are inside upstream in /etc/nginx/conf.d/x.conf:14",
            Blame(Path("/etc/nginx/conf.d/x.conf"), 14),
            id="with nginx's pid prefix",
        ),
        pytest.param(
            '[emerg] host not found in upstream "web.upstream" in /etc/nginx/conf.d/my site.conf:5',
            Blame(Path("/etc/nginx/conf.d/my site.conf"), 5),
            id="a name with a space",
        ),
        pytest.param(
            '[emerg] open() "/etc/nginx/x.conf" failed (2: No such file) in /etc/nginx/nginx.conf:31',
            Blame(Path("/etc/nginx/nginx.conf"), 31),
            id="the file that says include, not the missing one",
        ),
        pytest.param("[emerg] bind() to 0.0.0.0:80 failed (98: Address in use)", None, id="no file named"),
        pytest.param("nginx -t failed without a message", None, id="no message"),
        pytest.param("[emerg] x in relative.conf:3", None, id="a relative path is not trusted"),
    ],
)
def test_blamed(message: str, expected: Blame | None) -> None:
    assert blamed(message) == expected


@pytest.mark.parametrize(
    ("data", "template"),
    [
        pytest.param(GOOD.encode(), "site.conf.j2", id="our header"),
        pytest.param(generated("", "my-upstreams.conf.j2").encode(), "my-upstreams.conf.j2", id="user template"),
        pytest.param(f"{MARKER}\nx\n".encode(), "", id="marker without a template"),
        pytest.param(b"", "", id="empty"),
        pytest.param(b"\xff\xfe from x; \n", "x", id="undecodable bytes"),
    ],
)
def test_template_of(data: bytes, template: str) -> None:
    assert template_of(data) == template


def folder_with(tmp_path: Path, files: dict[str, str]) -> GoodCopies:
    conf = tmp_path / "conf.d"
    conf.mkdir(exist_ok=True)
    for name, text in files.items():
        (conf / name).write_text(text)
    return GoodCopies(conf, tmp_path / "good")


def names(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def test_current_lists_only_generated_files(tmp_path: Path) -> None:
    copies = folder_with(tmp_path, {"a.conf": GOOD, "user.conf": USERS, ".dynamic-nginx-x.tmp": GOOD})
    (copies.folder / "sub").mkdir()
    assert copies.current() == {"a.conf": GOOD.encode()}


def test_keep_stores_what_did_not_change_during_the_test(tmp_path: Path) -> None:
    copies = folder_with(tmp_path, {"a.conf": GOOD, "b.conf": GOOD})
    copies.keep(
        {"a.conf": GOOD.encode(), "b.conf": GOOD.encode()},
        {"a.conf": GOOD.encode(), "b.conf": NEWER.encode()},
    )
    assert names(copies.store) == {"a.conf": GOOD}  # b changed while nginx -t ran: not known good


def test_keep_forgets_files_that_are_gone(tmp_path: Path) -> None:
    copies = folder_with(tmp_path, {"a.conf": GOOD, "b.conf": GOOD})
    copies.keep(copies.current(), copies.current())
    (copies.folder / "b.conf").unlink()
    copies.keep(copies.current(), copies.current())
    assert names(copies.store) == {"a.conf": GOOD}


def test_put_back_restores_the_good_copy(tmp_path: Path) -> None:
    copies = folder_with(tmp_path, {"a.conf": GOOD})
    copies.keep(copies.current(), copies.current())
    (copies.folder / "a.conf").write_text(BAD)
    assert copies.put_back("a.conf") == "put back its last good version"
    assert names(copies.folder) == {"a.conf": GOOD}
    assert copies.put_back("a.conf") is None  # already good: it cannot be the cause


def test_put_back_removes_a_file_without_good_copy(tmp_path: Path) -> None:
    copies = folder_with(tmp_path, {"a.conf": BAD, "user.conf": USERS})
    assert copies.put_back("a.conf") == "removed it (it has no good version yet)"
    assert names(copies.folder) == {"user.conf": USERS}


def test_put_back_all_restores_every_changed_file(tmp_path: Path) -> None:
    copies = folder_with(tmp_path, {"a.conf": GOOD, "b.conf": GOOD, "user.conf": USERS})
    copies.keep(copies.current(), copies.current())
    (copies.folder / "b.conf").write_text(NEWER)
    (copies.folder / "c.conf").write_text(BAD)
    (copies.folder / "user.conf").write_text(BAD.replace(MARKER, "# mine"))
    assert copies.put_back_all() == (
        "put back the last good version of every generated file that changed (b.conf, c.conf)"
    )
    assert names(copies.folder) == {
        "a.conf": GOOD,
        "b.conf": GOOD,
        "user.conf": BAD.replace(MARKER, "# mine"),
    }
    assert copies.put_back_all() is None


def test_owns_only_generated_files_of_its_folder(tmp_path: Path) -> None:
    copies = folder_with(tmp_path, {"a.conf": GOOD, "user.conf": USERS})
    (tmp_path / "elsewhere.conf").write_text(GOOD)
    assert copies.owns(copies.folder / "a.conf")
    assert copies.owns(tmp_path / "conf.d" / ".." / "conf.d" / "a.conf")
    assert not copies.owns(copies.folder / "user.conf")
    assert not copies.owns(tmp_path / "elsewhere.conf")
    assert not copies.owns(copies.folder / "missing.conf")


class Scripted:
    """An nginx whose `-t` answers come from a function of the folder's files."""

    def __init__(self, folder: Path, verdict):
        self.folder = folder
        self.verdict = verdict
        self.tests = 0

    def test(self) -> Result:
        self.tests += 1
        return self.verdict({p.name: p.read_text() for p in self.folder.iterdir() if p.is_file()})


def scripted(copies: GoodCopies, bad: Iterable[str]) -> Scripted:
    """nginx -t that fails, naming the file, while any file holds one of the bad texts."""

    def verdict(files: dict[str, str]) -> Result:
        for name, text in sorted(files.items()):
            if text in bad:
                return Result(False, f'[emerg] unknown directive "this" in {copies.folder}/{name}:2')
        return Result(True, "")

    return Scripted(copies.folder, verdict)


def test_repair_puts_back_a_blamed_generated_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    copies = folder_with(tmp_path, {"site.conf": GOOD})
    nginx = scripted(copies, [BAD])
    assert repair(nginx, copies, logging.getLogger("t")).ok
    (copies.folder / "site.conf").write_text(BAD)

    result = repair(nginx, copies, logging.getLogger("t"))

    assert result.ok and nginx.tests == 3
    assert names(copies.folder) == {"site.conf": GOOD}
    expected = (
        f"nginx -t failed because of generated file {copies.folder}/site.conf line 2 (rendered from template "
        f'site.conf.j2): [emerg] unknown directive "this" in {copies.folder}/site.conf:2; '
        "put back its last good version"
    )
    assert caplog.messages == [expected]


def test_repair_never_touches_a_users_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = "this is not nginx;\n"
    copies = folder_with(tmp_path, {"site.conf": GOOD, "user.conf": broken})
    result = repair(scripted(copies, [broken]), copies, logging.getLogger("t"))
    assert not result.ok and result.message.endswith("user.conf:2")
    assert names(copies.folder) == {"site.conf": GOOD, "user.conf": broken}
    assert names(copies.store) == {}  # nothing is known good while nginx -t fails
    assert caplog.messages == []


def test_repair_when_the_blamed_file_is_already_good_puts_back_the_others(tmp_path: Path) -> None:
    # nginx names the second of two conflicting files: a.conf changed, b.conf (named) did not.
    copies = folder_with(tmp_path, {"a.conf": GOOD, "b.conf": GOOD})
    assert repair(Scripted(copies.folder, lambda _f: Result(True, "")), copies, logging.getLogger()).ok
    (copies.folder / "a.conf").write_text(NEWER)

    def duplicate(files: dict[str, str]) -> Result:
        if files["a.conf"] == NEWER:
            return Result(False, f'[emerg] duplicate upstream "a.upstream" in {copies.folder}/b.conf:2')
        return Result(True, "")

    assert repair(Scripted(copies.folder, duplicate), copies, logging.getLogger()).ok
    assert names(copies.folder) == {"a.conf": GOOD, "b.conf": GOOD}


def test_repair_gives_up_after_a_bounded_number_of_tries(tmp_path: Path) -> None:
    copies = folder_with(tmp_path, {})
    counter = iter(range(1000))

    def endless(_files: dict[str, str]) -> Result:
        # Every test blames a new generated file that appeared meanwhile.
        name = f"n{next(counter)}.conf"
        (copies.folder / name).write_text(BAD)
        return Result(False, f"[emerg] x in {copies.folder}/{name}:2")

    nginx = Scripted(copies.folder, endless)
    assert not repair(nginx, copies, logging.getLogger()).ok
    assert nginx.tests == lastgood.MAX_REPAIRS


@needs_nginx
def test_repair_with_the_real_nginx(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    copies = folder_with(tmp_path, {"site.conf": GOOD})
    nginx = Nginx(nginx_command(tmp_path, conf), tmp_path / "nginx.pid")
    assert repair(nginx, copies, logging.getLogger()).ok

    (conf / "site.conf").write_text(BAD)
    (conf / "new.conf").write_text(generated("upstream b.upstream { }\n", "new.conf.j2"))
    assert repair(nginx, copies, logging.getLogger()).ok
    assert names(conf) == {"site.conf": GOOD}
    assert names(copies.store) == {"site.conf": GOOD}

    (conf / "user.conf").write_text("this is the user's;\n")
    result = repair(nginx, copies, logging.getLogger())
    assert not result.ok and result.message.endswith(f"{conf}/user.conf:1")
    assert (conf / "user.conf").exists()
