"""Reading a study folder that lives on local disk or behind a URI (s3://, gs://, file://...).

Ray stores studies through pyarrow filesystems; the report reads them back the same way, so
`python -m study.report --storage s3://bucket/studies` works like a local folder.
"""

from __future__ import annotations

from pathlib import Path


def is_uri(location: str) -> bool:
    return "://" in location


def join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if is_uri(folder) else str(Path(folder) / name)


def _fs(location: str):  # noqa: ANN202 - a pyarrow FileSystem and the path on it
    from pyarrow import fs

    return fs.FileSystem.from_uri(location)


def read_bytes(path: str) -> bytes:
    if not is_uri(path):
        return Path(path).read_bytes()
    filesystem, inner = _fs(path)
    with filesystem.open_input_stream(inner) as f:
        return f.read()


def exists(path: str) -> bool:
    if not is_uri(path):
        return Path(path).exists()
    from pyarrow import fs

    filesystem, inner = _fs(path)
    return filesystem.get_file_info(inner).type != fs.FileType.NotFound


def names_in(folder: str) -> list[str]:
    """The names of the entries of a folder, sorted ([] when it does not exist)."""
    if not is_uri(folder):
        return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).is_dir() else []
    from pyarrow import fs

    filesystem, inner = _fs(folder)
    found = filesystem.get_file_info(fs.FileSelector(inner, allow_not_found=True))
    return sorted(info.base_name for info in found)
