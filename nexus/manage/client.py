"""The CLI's side of the head's REST management port: where it is, its token, one request.

The port and its token are those the local head wrote to ``management.json``
in its folder (mode 0600, checked: a file another user could read or write is
refused), or ``--management HOST:PORT`` with ``--token-file FILE`` (the same
file, copied to this host). The token is never taken from the command line:
other local users can read that.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ..cluster.remote.daemon import head_folder
from ..cluster.remote.files import home
from .daemon import TOKEN_FILE

__all__ = ["ManagementError", "request"]


class ManagementError(Exception):
    """No answer to a command, or a refusal: the message says which and what to do (``status``: HTTP's, or 0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _endpoint(address: str | None, token_file: str | None) -> tuple[str, str]:
    if address and not token_file:  # (this host's head's token is for that head only)
        raise ManagementError("--management HOST:PORT needs --token-file FILE: the management.json of that head")
    path = Path(token_file) if token_file else head_folder(home()) / TOKEN_FILE
    try:
        info = os.stat(path)
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if token_file:
            raise ManagementError(f"no token file {path}") from None
        raise ManagementError(
            "no head with a management port runs here (`nexus start --head`); elsewhere, say --management HOST:PORT "
            "and --token-file FILE (the head's management.json, copied with mode 0600)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ManagementError(f"the token file {path} cannot be read: {exc}") from None
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ManagementError(f"the token file {path} may be read by others (mode {stat.S_IMODE(info.st_mode):o}): `chmod 600 {path}`")
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        raise ManagementError(f"the token file {path} holds no token (it is the head's management.json)")
    return address or str(data.get("address", "")), data["token"]


def request(
    command: str, args: dict[str, Any] | None = None, address: str | None = None, token_file: str | None = None, timeout: float = 10.0
) -> Any:
    """Run ``command`` on the head's management port and return its result; ManagementError saying why not."""
    where, token = _endpoint(address, token_file)
    body = json.dumps(args or {}).encode()
    url = f"http://{where}/api/v1/{urllib.parse.quote(command)}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # (never through a proxy: it would see the token)
    try:
        with opener.open(req, timeout=timeout) as response:  # (http: the head's own port, loopback unless told)
            data = response.read()
            if response.headers.get_content_type() == "application/gzip":
                return data  # (a bundle: nexus dump)
            answer = json.loads(data)
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise ManagementError(str(message), exc.code) from None
    except TimeoutError:
        raise ManagementError(f"the management port at {where} did not answer {command} within {timeout:g} s") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", exc)
        if isinstance(why, TimeoutError):
            raise ManagementError(f"the management port at {where} did not answer {command} within {timeout:g} s") from None
        raise ManagementError(f"no management port answered at {where} ({why}): is the head running? (`nexus start --head`)") from None
    return answer.get("result") if isinstance(answer, dict) else answer
