"""docker_source: the pure parts of the Docker edge (finding ourselves, converting inspect answers)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from dynamic_nginx import docker_source as D
from dynamic_nginx.model import Container, Proxy

OWN = "9e53f462120d64e4d1c36f36085542eea6d365140c34d536bcfc30860a5e19ae"
OTHER = "6a6e1f48a05b4e84c33066ba89863f9d4d8e5291aea380e2e8ff94b8789042d7"

# /proc/self/mountinfo of a container on a cgroup v2 host: the cgroup mount
# shows only "/", so the id is found in the bind mounts of hostname & co.
CGROUP_V2 = f"""\
1187 1106 0:118 / / rw,relatime master:515 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/P5RUOLVRBYVGN7SXY3C4RLFENB:/var/lib/docker/overlay2/l/INOHY3C7YYFPJ3AAXCEET25DVM,upperdir=/var/lib/docker/overlay2/61b851ed26a6ef27e4e13015b7ed3aa460a149d9d9b4f1ea87801be3bbef9fa0/diff,workdir=/var/lib/docker/overlay2/61b851ed26a6ef27e4e13015b7ed3aa460a149d9d9b4f1ea87801be3bbef9fa0/work,nouserxattr
1188 1187 0:121 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1189 1187 0:122 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755,inode64
1190 1189 0:123 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620,ptmxmode=666
1191 1187 0:124 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
1192 1191 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot
1193 1189 0:117 / /dev/mqueue rw,nosuid,nodev,noexec,relatime - mqueue mqueue rw
1194 1189 0:125 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k,inode64
1195 1187 254:1 /var/lib/docker/containers/{OWN}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw,discard,errors=remount-ro
1196 1187 254:1 /var/lib/docker/containers/{OWN}/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw,discard,errors=remount-ro
1197 1187 254:1 /var/lib/docker/containers/{OWN}/hosts /etc/hosts rw,relatime - ext4 /dev/vda1 rw,discard,errors=remount-ro
1198 1187 0:26 /docker.sock /run/docker.sock rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,size=1632180k,mode=755,inode64
1107 1188 0:121 /bus /proc/bus ro,nosuid,nodev,noexec,relatime - proc proc rw
"""

# The same on a cgroup v1 host (the id also shows in the cgroup mounts; we do not rely on it).
CGROUP_V1 = f"""\
216 163 0:72 / / rw,relatime master:5 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/P5RU:/var/lib/docker/overlay2/l/INOH
222 221 0:29 /docker/{OWN} /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu
233 216 254:0 /var/lib/docker/containers/{OWN}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw,discard
234 216 254:0 /var/lib/docker/containers/{OWN}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw,discard
235 216 254:0 /var/lib/docker/containers/{OWN}/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw,discard
"""

HOST = """\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard,errors=remount-ro
23 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=12288000k,nr_inodes=3072000,mode=755
24 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 22 0:26 / /run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=2457600k,mode=755
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(CGROUP_V2, OWN, id="cgroup v2 container"),
        pytest.param(CGROUP_V1, OWN, id="cgroup v1 container"),
        pytest.param(
            f"241 216 254:0 /var/lib/docker/containers/{OWN}/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw\n",
            OWN,
            id="only the hosts bind mount",
        ),
        pytest.param(
            f"241 216 8:17 /containers/{OWN}/hostname /etc/hostname rw,relatime - xfs /dev/sdb1 rw\n",
            OWN,
            id="/var/lib/docker on a filesystem of its own",
        ),
        pytest.param(
            f"241 216 7:3 /var/snap/docker/common/var-lib-docker/containers/{OWN}/hostname /etc/hostname "
            "rw,relatime - ext4 /dev/loop3 rw\n",
            OWN,
            id="snap-packaged docker",
        ),
        pytest.param(HOST, None, id="a host's mountinfo, not a container"),
        pytest.param("", None, id="empty"),
        pytest.param(
            f"241 216 254:0 /var/lib/docker/containers/{OTHER} /data rw,relatime - ext4 /dev/vda rw\n"
            f"242 216 254:0 /var/lib/docker/containers/{OTHER}/hostname /srv/hostname rw - ext4 /dev/vda rw\n",
            None,
            id="another container's folder mounted elsewhere",
        ),
        pytest.param(
            f"241 216 254:0 /var/lib/containers/storage/overlay-containers/{OTHER}/userdata/hostname "
            "/etc/hostname rw - ext4 /dev/vda rw\n",
            None,
            id="podman layout is not docker's",
        ),
        pytest.param(
            f"234 216 254:0 /var/lib/docker/containers/{OWN[:12]}/hostname /etc/hostname rw - ext4 /dev/vda rw\n",
            None,
            id="short id",
        ),
        pytest.param(
            f"234 216 254:0 /var/lib/docker/containers/{OWN.upper()}/hostname /etc/hostname rw - ext4 /dev/vda rw\n",
            None,
            id="upper-case hex is not an id",
        ),
        pytest.param("234 216 254:0 /etc/hostname\n", None, id="truncated line"),
    ],
)
def test_own_id_from_mountinfo(text: str, expected: str | None) -> None:
    assert D.own_id_from_mountinfo(text) == expected


# Trimmed from `docker inspect` of a compose replica (Docker 20.10, API 1.41).
INSPECT: dict[str, Any] = {
    "Id": OTHER,
    "Created": "2026-11-25T20:55:41.517794302Z",
    "Path": "/docker-entrypoint.sh",
    "Args": ["nginx", "-g", "daemon off;"],
    "State": {
        "Status": "running",
        "Running": True,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 28917,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": "2026-11-25T20:55:41.807034421Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
        "Health": {
            "Status": "healthy",
            "FailingStreak": 0,
            "Log": [
                {
                    "Start": "2026-11-25T20:55:42.8Z",
                    "End": "2026-11-25T20:55:42.9Z",
                    "ExitCode": 0,
                    "Output": "",
                }
            ],
        },
    },
    "Name": "/shop-web-1",
    "RestartCount": 0,
    "Config": {
        "Hostname": "6a6e1f48a05b",
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Image": "nginx:1.27",
        "Labels": {
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
            "com.docker.compose.project": "shop",
            "com.docker.compose.service": "web",
            "dynamic-nginx.port": "8000",
        },
        "ExposedPorts": {"5353/udp": {}, "80/tcp": {}, "8000/tcp": {}},
        "StopSignal": "SIGUSR1",
        "StopTimeout": 30,
    },
    "NetworkSettings": {
        "Bridge": "",
        "Ports": {"80/tcp": None, "8000/tcp": None},
        "Networks": {
            "shop_default": {
                "IPAMConfig": None,
                "Links": None,
                "Aliases": ["shop-web-1", "web", "6a6e1f48a05b"],
                "NetworkID": "6e100d7324cc6792f154c66b1ac72c7e0684c533443e97bd20dc5c1edd8b443e",
                "EndpointID": "075fd6d733fb7bf885b2e77f5ec66f1b7458c736d93a6ef2aaf0582387577eba",
                "Gateway": "172.28.0.1",
                "IPAddress": "172.28.0.2",
                "IPPrefixLen": 16,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": "02:42:ac:1c:00:02",
                "DriverOpts": None,
            },
            "shop_back": {"NetworkID": "8c1f", "IPAddress": "172.29.0.5", "Aliases": None},
        },
    },
}

INSPECTED = Container(
    id=OTHER,
    name="shop-web-1",
    labels=INSPECT["Config"]["Labels"],
    networks={"shop_default": "172.28.0.2", "shop_back": "172.29.0.5"},
    exposed_ports=(80, 8000),
    state="running",
    health="healthy",
    stop_signal="SIGUSR1",
    created="2026-11-25T20:55:41.517794302Z",
    stop_timeout=30.0,
)


def edited(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """INSPECT with the value at path replaced (a key is deleted when value is ...)."""
    data = copy.deepcopy(INSPECT)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def changed(**fields: Any) -> Container:
    values = {**INSPECTED.__dict__, **fields}
    return Container(**values)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(INSPECT, INSPECTED, id="compose replica: name without slash, tcp ports only"),
        pytest.param(edited(("Config", "Labels"), None), changed(labels={}), id="Labels null"),
        pytest.param(edited(("Config", "ExposedPorts"), None), changed(exposed_ports=()), id="ExposedPorts null"),
        pytest.param(
            edited(("Config", "ExposedPorts"), {"53/udp": {}, "443/sctp": {}, "8443": {}}),
            changed(exposed_ports=(8443,)),
            id="udp and sctp ignored, bare number is tcp",
        ),
        pytest.param(edited(("State", "Health"), ...), changed(health=None), id="no health check"),
        pytest.param(
            edited(("State", "Health"), {"Status": "starting", "FailingStreak": 0, "Log": []}),
            changed(health="starting"),
            id="health starting",
        ),
        pytest.param(
            edited(("State", "Status"), "paused"),
            changed(state="paused"),
            id="paused",
        ),
        pytest.param(edited(("Config", "StopSignal"), ...), changed(stop_signal=""), id="no StopSignal"),
        pytest.param(edited(("Config", "StopTimeout"), ...), changed(stop_timeout=None), id="no StopTimeout"),
        pytest.param(edited(("Config", "StopTimeout"), 0), changed(stop_timeout=0.0), id="StopTimeout 0"),
        pytest.param(edited(("Config", "StopTimeout"), "30"), changed(stop_timeout=None), id="StopTimeout text"),
        pytest.param(edited(("Config", "StopTimeout"), -1), changed(stop_timeout=None), id="negative StopTimeout"),
        pytest.param(
            edited(("Created",), "2026-11-25T20:55:41.5Z"),
            changed(created="2026-11-25T20:55:41.500000000Z"),
            id="trimmed nanoseconds are padded so times sort as strings",
        ),
        pytest.param(
            edited(("NetworkSettings", "Networks"), {"none": {"IPAddress": ""}, "host": {"IPAddress": None}}),
            changed(networks={"none": "", "host": ""}),
            id="networks without an address",
        ),
        pytest.param(edited(("NetworkSettings",), None), changed(networks={}), id="NetworkSettings null"),
        pytest.param(
            {"Id": OWN},
            Container(id=OWN, name="", labels={}, networks={}, exposed_ports=(), state="", health=None),
            id="almost empty answer",
        ),
    ],
)
def test_container_from_inspect(data: dict[str, Any], expected: Container) -> None:
    assert D.container_from_inspect(data) == expected


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        pytest.param("2026-11-25T20:55:41.5Z", "2026-11-25T20:55:41.51Z", id="shorter fraction"),
        pytest.param("2026-11-25T20:55:41Z", "2026-11-25T20:55:41.000000001Z", id="no fraction"),
        pytest.param("2026-11-25T20:55:41.9Z", "2026-11-25T20:55:42.1Z", id="next second"),
    ],
)
def test_sortable_time_orders_like_time(earlier: str, later: str) -> None:
    assert D.sortable_time(earlier) < D.sortable_time(later)


def test_proxy_from_inspect() -> None:
    assert D.proxy_from_inspect(INSPECT) == Proxy(
        id=OTHER, name="shop-web-1", project="shop", networks=("shop_back", "shop_default")
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(D.ApiError(404, "No such container: x"), True, id="404"),
        pytest.param(D.ApiError(500, "server error"), False, id="500"),
        pytest.param(OSError("connection refused"), False, id="no status code"),
    ],
)
def test_is_not_found(error: BaseException, expected: bool) -> None:
    assert D.is_not_found(error) is expected


@pytest.mark.parametrize(
    ("labels", "project", "opted_in", "listed"),
    [
        pytest.param({"com.docker.compose.project": "shop"}, "shop", False, True, id="the proxy's project"),
        pytest.param({"com.docker.compose.project": "other"}, "shop", False, False, id="another project"),
        pytest.param({"com.docker.compose.project": "shop"}, "", False, False, id="the proxy has no project"),
        pytest.param({}, "shop", False, False, id="no project label"),
        pytest.param({"dynamic-nginx.enable": "true"}, "shop", True, True, id="opted in, scope all"),
        pytest.param({"dynamic-nginx.enable": "yes"}, "shop", True, True, id="opted in with yes"),
        pytest.param({"dynamic-nginx.enable": "true"}, "shop", False, False, id="opted in, scope project"),
        pytest.param({"dynamic-nginx.enable": "false"}, "shop", True, False, id="opted out"),
        pytest.param({"dynamic-nginx.enable": "TRUE"}, "shop", True, False, id="the list's filter is exact"),
    ],
)
def test_is_listed_matches_the_list_filters(labels: dict[str, str], project: str, opted_in: bool, listed: bool) -> None:
    assert D.is_listed(labels, project, opted_in) is listed
