"""Atomic writes: write to a temporary file beside the target, fsync, then rename over it.

A crash mid-write never leaves a half-written file under the final name: the final name holds either the
complete old file (or nothing, if there was none) or the complete new one. Temporary names start with a dot
and end in the target's suffix; a killed writer may leave one behind, never a partial file under the final name.

Files and folders get the user's normal permissions (``0o666`` / ``0o777`` less the umask), as ``open()`` and
``mkdir`` would give them, although :func:`tempfile.mkstemp` creates them private (``0o600``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import sys
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask (read by setting it and setting it back; there is no read-only call before 3.13)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from ``open(path, "w")`` under the current umask."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode a new folder gets from ``mkdir`` under the current umask."""
    return 0o777 & ~current_umask()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None, sync_dir: bool = True):
    """Yield a temporary path in the target's folder; on success rename it onto ``final``.

    ``suffix`` defaults to the final name's full suffix (``.nii.gz`` stays ``.nii.gz``) so
    libraries that dispatch on the extension still work. The file ends with the umask's mode.
    ``sync_dir=False`` leaves the folder's fsync (making the rename durable) to the caller, e.g. to rename
    two files right after one another.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(final.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, file_mode())
        os.replace(tmp_path, final)
        if sync_dir:
            _fsync_dir(final.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def atomic_write_text(final: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(final, text.encode(encoding))


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system or kernel cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_tree(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir():
            _fsync_tree(child)
            continue
        with open(child, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(folder)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary folder beside ``final``; on success rename it onto ``final``.

    A folder that already exists is replaced only when it is empty or ``overwrite`` is true. The
    replacement swaps the two folders in one step where the system can (Linux ``renameat2``), so a crash
    leaves ``final`` holding the complete old or the complete new folder; elsewhere the old folder is moved
    aside just before the rename. The old folder is deleted afterwards. On any error the temporary folder is
    removed and ``final`` is left as it was. Raises FileExistsError for a non-empty ``final`` without
    ``overwrite``. The folder ends with the umask's mode.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not final.is_dir():
        raise FileExistsError(f"{final} exists and is not a folder")
    if final.is_dir() and any(final.iterdir()) and not overwrite:
        raise FileExistsError(f"{final} exists and is not empty")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        os.chmod(tmp, dir_mode())
        if final.exists() and _exchange(tmp, final):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
        else:
            old = None
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
                os.rmdir(old)
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
