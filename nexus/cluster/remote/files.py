"""Private folders and files of ``nexus start`` (keys, state files, logs): this user's only, checked before use."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

__all__ = ["home", "private_folder", "write_private"]


def home() -> Path:
    """Where ``nexus start`` keeps what it started on this host: ``$NEXUS_HOME``, else ``~/.nexus``."""
    return Path(os.environ.get("NEXUS_HOME") or Path.home() / ".nexus")


def private_folder(path: str | os.PathLike[str]) -> str:
    """``path`` as a folder of this user's only (made 0700 if missing); PermissionError if it is anyone else's."""
    path = os.fspath(path)
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, mode=0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise PermissionError(
            f"{path} is not a private folder of this user (owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}); "
            "Nexus keeps its keys only in a folder of yours with mode 0700: `chmod 700` it, or remove it"
        )
    return path


def write_private(path: str, data: dict | str) -> None:
    """Write ``data`` (a dict as JSON, text as it is) to ``path``, mode 0600, replacing what was there at once
    (write, then rename)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            if isinstance(data, str):
                f.write(data)
            else:
                json.dump(data, f, indent=1)
                f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
