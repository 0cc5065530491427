"""mounts: single-file bind mounts found in mountinfo (filewatch polls them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dynamic_nginx.mounts import mount_points, mounted_files

# Lines as Docker leaves them in a container's /proc/self/mountinfo.
MOUNTINFO = """\
1041 856 0:94 / / rw,relatime master:387 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A
1042 1041 0:97 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1057 1041 259:1 /var/lib/docker/containers/0123/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw
1060 1041 259:1 /home/me/shop/nginx.conf /etc/nginx/nginx.conf ro,relatime - ext4 /dev/vda1 rw
1061 1041 259:1 /home/me/shop/conf.d /etc/nginx/conf.d rw,relatime - ext4 /dev/vda1 rw
1062 1041 259:1 /home/me/shop/my\\040site.conf /etc/nginx/sites/my\\040site.conf rw - ext4 /dev/vda1 rw
1063 1041 259:1 /home/me/shop/default.conf /etc/nginx/conf.d/default.conf ro - ext4 /dev/vda1 rw
"""


def test_mount_points_reads_the_fifth_field_and_unescapes_it() -> None:
    assert mount_points(MOUNTINFO) == [
        Path("/"),
        Path("/proc"),
        Path("/etc/resolv.conf"),
        Path("/etc/nginx/nginx.conf"),
        Path("/etc/nginx/conf.d"),
        Path("/etc/nginx/sites/my site.conf"),
        Path("/etc/nginx/conf.d/default.conf"),
    ]


@pytest.mark.parametrize(
    ("text", "points"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("garbage\n1 2 3\n", [], id="short lines are skipped"),
        pytest.param("1 2 0:1 / /a\\134b rw - x y rw\n", [Path("/a\\b")], id="escaped backslash"),
        pytest.param("1 2 0:1 / /a\\011b rw - x y rw\n", [Path("/a\tb")], id="escaped tab"),
    ],
)
def test_mount_points_edge_cases(text: str, points: list[Path]) -> None:
    assert mount_points(text) == points


def test_mounted_files_are_the_files_under_the_folders(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "nginx"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "nginx.conf").write_text("")
    (etc / "conf.d" / "default.conf").write_text("")
    (tmp_path / "etc" / "resolv.conf").write_text("")
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO.replace(" /etc/", f" {tmp_path}/etc/"))

    assert mounted_files([etc], info) == [etc / "conf.d" / "default.conf", etc / "nginx.conf"]
    assert mounted_files([etc / "conf.d"], info) == [etc / "conf.d" / "default.conf"]
    assert mounted_files([tmp_path / "elsewhere"], info) == []
    assert mounted_files([etc], tmp_path / "missing") == []
