"""Checksum-verified download of dataset files (only used when a file is missing and a network exists)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DatasetFile", "download_file", "md5sum"]


@dataclass(frozen=True)
class DatasetFile:
    """One file of a dataset: its name, the URLs it can be fetched from, and its known MD5 (``None`` if
    unknown)."""

    name: str
    urls: tuple[str, ...]
    md5: str | None


def md5sum(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(
    file: DatasetFile, folder: str | os.PathLike[str], *, mirrors: tuple[str, ...] = (), timeout: float = 30.0
) -> Path:
    """Download ``file`` into ``folder`` and verify its MD5; return the path.

    ``mirrors`` are base URLs tried first (``<mirror>/<file.name>``); the environment variable
    ``AMD_DATA_MIRROR`` adds one more. A partial download never replaces a good file: the data goes to a
    temporary file that is moved into place only after the checksum matches.

    Raises:
        ConnectionError: no URL could be fetched (no network); the message lists the URLs tried.
        ValueError: a file was fetched but its MD5 differs from the expected one.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file.name
    env_mirror = os.environ.get("AMD_DATA_MIRROR")
    bases = list(mirrors) + ([env_mirror] if env_mirror else [])
    urls = [f"{base.rstrip('/')}/{file.name}" for base in bases] + list(file.urls)
    if not urls:
        raise ConnectionError(
            f"could not download {file.name}: no URL is known for it (no mirror given and AMD_DATA_MIRROR is "
            "unset); "
            f"set AMD_DATA_MIRROR to a folder URL that holds it, or put the file in {folder}"
        )
    errors: list[str] = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as tmp:
                    shutil.copyfileobj(response, tmp)
                    tmp_path = Path(tmp.name)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        digest = md5sum(tmp_path)
        if file.md5 is not None and digest != file.md5:
            tmp_path.unlink(missing_ok=True)
            raise ValueError(
                f"checksum mismatch for {file.name} from {url}: MD5 {digest}, expected {file.md5}"
            )
        os.replace(tmp_path, target)
        return target
    raise ConnectionError(f"could not download {file.name}; tried:\n  " + "\n  ".join(errors))
