"""A call a socket proxy refuses is named in the outage line as its allow-list names it.

Both clients' errors are used as they really are: SocketApi's ApiError (the
first render) and docker-py's APIError around a requests Response (the watcher).
"""

from __future__ import annotations

import docker.errors
import pytest
import requests
from dynamic_nginx import docker_source as D
from dynamic_nginx import reconnect as R


def docker_py_error(status: int, method: str, url: str) -> docker.errors.APIError:
    """What docker-py raises for an HTTP error: an APIError with the response (and its request)."""
    response = requests.Response()
    response.status_code = status
    response.request = requests.Request(method, url).prepare()
    response.url = url
    try:
        response.raise_for_status()
    except requests.HTTPError as error:
        return docker.errors.APIError(error, response=response, explanation="not allowed")
    raise AssertionError("raise_for_status did not raise")


@pytest.mark.parametrize(
    ("error", "call"),
    [
        (docker_py_error(403, "GET", "http+docker://localhost/v1.41/events?filters=%7B%7D"), "GET /events"),
        (docker_py_error(401, "GET", "http://proxy:2375/v1.45/containers/abc123/json"), "GET /containers/{id}/json"),
        (docker_py_error(403, "GET", "http://proxy:2375/version"), "GET /version"),
        (D.ApiError(403, "no", D.Request("GET", "/v1.45/containers/json?filters=x")), "GET /containers/json"),
        (D.ApiError(403, "no", D.Request("GET", "/_ping")), "GET /_ping"),
        (docker.errors.DockerException("Error while fetching server API version"), None),
        (docker_py_error(500, "GET", "http://proxy:2375/v1.45/events"), None),
        (D.ApiError(404, "no such container", D.Request("GET", "/v1.45/containers/x/json")), None),
    ],
)
def test_refused_call_names_the_endpoint_without_version_query_or_id(error: BaseException, call: str | None) -> None:
    assert R.refused_call(error) == call


def test_a_refusal_wrapped_by_docker_py_is_found_through_its_cause() -> None:
    wrapped = docker.errors.DockerException("Error while fetching server API version: 403 Client Error")
    wrapped.__cause__ = docker_py_error(403, "GET", "http://proxy:2375/version")
    assert R.refused_call(wrapped) == "GET /version"


def test_the_outage_line_names_the_refused_call_and_the_fix() -> None:
    error = docker_py_error(403, "GET", "http+docker://localhost/v1.41/events?filters=%7B%7D")
    line = R.describe(R.classify(error), "unix:///var/run/docker.sock", R.one_line(error), error)
    assert line.startswith("Docker refused GET /events at unix:///var/run/docker.sock (")
    assert line.endswith("allow GET /events in the socket proxy in front of Docker")
    assert "\n" not in line


def test_a_refusal_without_a_request_keeps_the_generic_hint() -> None:
    error = PermissionError(13, "Permission denied")
    line = R.describe(R.classify(error), "unix:///var/run/docker.sock", R.one_line(error), error)
    assert line == (
        "Docker refused at unix:///var/run/docker.sock ([Errno 13] Permission denied):"
        " check the socket's permissions or the socket proxy's allow-list"
    )
