"""The connection to a cluster's Ray Jobs server, and the errors every cluster call can end in.

Ray token authentication: RAY_AUTH_TOKEN (or a token passed in) is sent as the bearer token;
otherwise Ray's own loader applies where RAY_AUTH_MODE=token (RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token).
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable


class JobsError(Exception):
    """Something the caller can fix; the message says what."""


class Unreachable(JobsError):
    pass


class Unauthorized(JobsError):
    pass


class UnknownSweep(JobsError):
    pass


class Conflict(JobsError):
    pass


class ClusterError(JobsError):
    """The Jobs server answered with an error of its own."""


def resolve_address(address: str | None) -> str:
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise Unreachable("--address: the Ray dashboard URL (e.g. http://HEAD:8265) or RAY_ADDRESS expected, "
                          "but got neither")
    return address


def connect(address: str | None = None, token: str | None = None):
    """A JobSubmissionClient for the cluster; Unreachable / Unauthorized with a clear message."""
    import requests
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    address = resolve_address(address)
    token = token or os.environ.get("RAY_AUTH_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        with _explicit_address(address):
            return JobSubmissionClient(address, headers=headers)
    except AuthenticationError as err:
        raise Unauthorized(f"the Ray cluster at {address} refused the request: a valid token expected "
                           f"(set RAY_AUTH_TOKEN), but {first_line(err)}") from None
    except ConnectionError:
        raise Unreachable(f"--address: a reachable Ray dashboard expected, but nothing answered at {address!r}") \
            from None
    except (requests.exceptions.RequestException, ValueError, RuntimeError) as err:
        raise Unreachable(f"--address: a Ray dashboard URL such as http://HEAD:8265 expected, but {address!r} "
                          f"failed: {first_line(err)}") from None


_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _explicit_address(address: str):
    """Ray lets RAY_API_SERVER_ADDRESS / RAY_ADDRESS override the address a client is given; here the
    address given (--address, else RAY_ADDRESS) is the one used."""
    with _ENV_LOCK:
        saved = os.environ.get("RAY_API_SERVER_ADDRESS")
        os.environ["RAY_API_SERVER_ADDRESS"] = address
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("RAY_API_SERVER_ADDRESS", None)
            else:
                os.environ["RAY_API_SERVER_ADDRESS"] = saved


def first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def call(fn: Callable, *args):
    """One Jobs REST call, its failures turned into JobsError."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        return fn(*args)
    except AuthenticationError as err:
        raise Unauthorized(f"the Ray cluster refused the request: {first_line(err)}") from None
    except (requests.exceptions.ConnectionError, ConnectionError) as err:
        raise Unreachable(f"the Ray dashboard stopped answering: {first_line(err)}") from None
    except RuntimeError as err:  # the SDK's "Request failed with status code N: ..."
        raise ClusterError(f"the Ray Jobs server refused the request: {first_line(err)}") from None
