"""Every file nmmx writes goes through here.

Two promises, for every command:

* an output location is checked *before* any work starts (:func:`check_output_dir`,
  :func:`check_output_file`), so a bad path costs the user nothing;
* a file appears whole or not at all (:func:`atomic_write`, :func:`atomic_open`): it is
  written to a temporary file in the target directory, flushed to disk and renamed into
  place with :func:`os.replace`; on any failure the temporary file is removed.
"""

import contextlib
import errno
import fcntl
import os
import tempfile
from pathlib import Path

__all__ = ["OutputError", "locked", "check_output_dir", "check_output_file", "atomic_write",
           "atomic_open", "atomic_files", "file_mode", "is_disk_full", "os_error_text"]

#: Trees no output may be written into, whatever the permissions say.
_PSEUDO_FS = (Path("/proc"), Path("/sys"), Path("/dev"))


class OutputError(ValueError):
    """An output location that cannot be written; the message is one sentence."""


def file_mode():
    """The mode a new file gets from the process umask (0o644 under the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _as_path(path, what):
    if isinstance(path, Path):
        text = str(path)
    elif isinstance(path, str):
        text = path
    else:
        raise TypeError(f"The {what} must be a path, not {path!r}")
    if text.strip() == "":
        raise OutputError(f"The {what} must not be empty")
    return Path(text)


def _check_names(path, what):
    try:
        name_max = os.pathconf("/", "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise OutputError(f"The {what} has a name of {len(os.fsencode(part))} bytes, "
                              f"more than the file system's {name_max}: {part[:40]!r}...")


def _nearest_existing(path):
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # dangling link: the target would be created elsewhere
            raise OutputError(f"The path {str(probe)!r} is a broken symbolic link")
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    return probe


def _read_only_fs(path):
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_output_dir(path, *, what="output directory"):
    """Check that ``path`` is, or can be created as, a writable directory.

    Nothing is created.  Returns the path as a :class:`~pathlib.Path`.

    Raises
    ------
    OutputError
        With one sentence naming the path and what is wrong with it.
    """
    path = _as_path(path, what)
    _check_names(path, what)
    absolute = Path(os.path.abspath(path))
    for pseudo in _PSEUDO_FS:
        if absolute == pseudo or pseudo in absolute.parents:
            raise OutputError(f"The {what} {str(path)!r} is under {pseudo}, which holds no "
                              f"regular files")
    existing = _nearest_existing(absolute)
    if not existing.is_dir():
        if existing == absolute:
            raise OutputError(f"The {what} {str(path)!r} exists and is not a directory")
        raise OutputError(f"The {what} {str(path)!r} cannot be created: {str(existing)!r} "
                          f"is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        if _read_only_fs(existing):
            raise OutputError(f"The {what} {str(path)!r} is not writable: {str(existing)!r} "
                              f"is on a read-only file system")
        raise OutputError(f"The {what} {str(path)!r} is not writable: no write permission "
                          f"on {str(existing)!r}")
    return path


def check_output_file(path, *, what="output file"):
    """Check that a file can be written at ``path`` (its directory may not exist yet).

    Nothing is created.  Returns the path as a :class:`~pathlib.Path`.

    Raises
    ------
    OutputError
        With one sentence naming the path and what is wrong with it.
    """
    path = _as_path(path, what)
    _check_names(path, what)
    if path.is_dir():
        raise OutputError(f"The {what} {str(path)!r} is a directory")
    if path.exists() and not os.access(path, os.W_OK) and not os.access(
            path.parent, os.W_OK):
        raise OutputError(f"The {what} {str(path)!r} is not writable")
    existing = _nearest_existing(Path(os.path.abspath(path.parent)))
    if not existing.is_dir():
        raise OutputError(f"The {what} {str(path)!r} cannot be created: {str(existing)!r} "
                          f"is a file, not a directory")
    check_output_dir(path.parent, what=f"directory of the {what}")
    return path


def _make_parents(directory):
    """Create ``directory`` and its missing parents; return the ones created, deepest
    first (so that a failed write can remove exactly those)."""
    missing = []
    probe = Path(directory)
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    created = []
    try:
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:      # another process made it meanwhile
                continue
            created.append(d)
    except BaseException:
        _remove_dirs(created[::-1])
        raise
    return created[::-1]


def _remove_dirs(dirs):
    for d in dirs:                        # deepest first; only if still empty
        with contextlib.suppress(OSError):
            d.rmdir()


def _named(exc, path):
    """``exc`` with ``path`` as its file name when the OS did not give one (a failed
    ``write`` or ``fsync`` names no file), so the user's message can say which file."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
        return OSError(exc.errno, exc.strerror, str(path))
    return None


@contextlib.contextmanager
def atomic_files(paths, mode="w", *, encoding="utf-8"):
    """Open one temporary file beside each of ``paths``; rename them all into place when
    the block ends, or none of them.

    Yields the list of open files, in the order of ``paths``.  ``mode`` is ``"w"`` (text,
    ``encoding``) or ``"wb"``.  Every file is written, flushed and synced before the first
    rename, so a full disk or an exception in the block (``KeyboardInterrupt`` included)
    leaves every path as it was: the temporary files, and any directory this call created,
    are removed and the exception propagates.  New files get :func:`file_mode`.  An
    ``OSError`` that names no file (``ENOSPC`` from ``write``) is re-raised naming the path.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes with mode 'w' or 'wb', not {mode!r}")
    paths = [Path(p) for p in paths]
    created, tmps, files, done = [], [], [], []
    current = paths[0] if paths else None
    try:
        for path in paths:
            current = path
            created += _make_parents(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:200]}.",
                                       suffix=".tmp")
            tmps.append(tmp)
            files.append(os.fdopen(fd, mode, **({"encoding": encoding} if mode == "w"
                                               else {})))
        yield files
        for path, f in zip(paths, files):
            current = path
            f.flush()
            os.fsync(f.fileno())
            f.close()
        for path, tmp in zip(paths, tmps):
            current = path
            os.chmod(tmp, file_mode())
        for path, tmp in zip(paths, tmps):
            current = path
            os.replace(tmp, path)
            done.append(path)
    except BaseException as e:
        for f in files:
            with contextlib.suppress(OSError):
                f.close()
        for tmp in tmps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for path in done:                 # a rename failed after others: none, not some
            with contextlib.suppress(OSError):
                os.unlink(path)
        _remove_dirs(created)
        named = _named(e, current)
        if named is not None:
            raise named from e
        raise


@contextlib.contextmanager
def atomic_open(path, mode="w", *, encoding="utf-8"):
    """Open a temporary file beside ``path``; rename it to ``path`` when the block ends.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"``.  If the block raises, or the
    data cannot be flushed to disk (for example ``ENOSPC``), the temporary file is
    removed, ``path`` is left as it was, and the exception propagates (see
    :func:`atomic_files`, of which this is the one-file case).  Missing parent
    directories are created, and removed again on failure.
    """
    with atomic_files([path], mode, encoding=encoding) as (f,):
        yield f


def atomic_write(path, data):
    """Write ``data`` (``str`` as UTF-8, or ``bytes``) to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def read_utf8(path, what):
    """The text of the UTF-8 input file ``path``.

    Raises :class:`ValueError` with one sentence naming ``what`` and the path when the
    file cannot be read, or is not UTF-8 (naming the first bad byte and its offset).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"Cannot read the {what} {str(path)!r} ({e.strerror})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"The {what} {str(path)!r} is not UTF-8 text (byte "
                         f"0x{raw[e.start]:02x} at offset {e.start})") from None


def is_disk_full(exc):
    """True when ``exc`` is the operating system saying the disk or quota is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def os_error_text(exc):
    """One sentence for an ``OSError`` a command could not avoid (a full disk, a file
    that vanished, a permission that changed after the checks)."""
    where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
    if is_disk_full(exc):
        return f"The disk is full: could not write{where}"
    reason = exc.strerror or type(exc).__name__
    return f"{reason[:1].upper()}{reason[1:]}:{where}" if where else f"{reason}"


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive ``flock`` on ``path`` (created, with its parents) for the block:
    one process at a time builds what several would otherwise race for."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
