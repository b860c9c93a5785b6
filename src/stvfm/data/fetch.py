"""Download a registered dataset's files, verified, so a half-written file never appears."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from stvfm.atomic import atomic_path
from stvfm.data.checksums import verify_sha256
from stvfm.data.paths import dataset_dir
from stvfm.data.registry import DataFile, DatasetSpec, get_dataset
from stvfm.errors import DataError, FetchError

_CHUNK = 1 << 20


def _url_for(spec: DatasetSpec, data_file: DataFile, urls: str | Mapping[str, str] | None) -> str:
    if isinstance(urls, str):
        return urls.rstrip("/") + "/" + data_file.path
    if urls is not None and data_file.path in urls:
        return urls[data_file.path]
    if data_file.url:
        return data_file.url
    raise FetchError(
        f"{data_file.path}: no direct download link is known for dataset {spec.name!r}; "
        f"download it from {spec.download_page} or pass a mirror URL"
    )


def _download(url: str, target: Path, expected_sha256: str | None, timeout: float) -> None:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(chunk)
                    handle.write(chunk)
            if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
                raise FetchError(
                    f"{target.name}: download from {url} has sha256 {digest.hexdigest()[:16]}..., "
                    f"expected {expected_sha256[:16]}...; nothing was written"
                )
    except urllib.error.HTTPError as error:
        raise FetchError(f"{target.name}: HTTP {error.code} from {url}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(f"{target.name}: download from {url} failed ({reason})") from None


def fetch_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    urls: str | Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> list[Path]:
    """Fetch the files of dataset ``name`` missing under ``root``; return every file's path.

    ``urls`` overrides the spec's links: a base URL (file names are appended) or a
    mapping from file name to URL. Files already present and verified are kept.
    """
    spec = get_dataset(name)
    folder = dataset_dir(spec, root)
    paths = []
    for data_file in spec.files:
        target = folder / data_file.path
        if target.is_file():
            try:
                if data_file.sha256 is not None:
                    verify_sha256(target, data_file.sha256)
                paths.append(target)
                continue
            except DataError:
                pass  # a corrupt copy is replaced below
        _download(_url_for(spec, data_file, urls), target, data_file.sha256, timeout)
        paths.append(target)
    return paths
