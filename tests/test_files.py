"""nmmx.files: output checks before any work, and files that appear whole or not at all."""

import errno
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from nmmx import files
from nmmx.files import (OutputError, atomic_files, atomic_open, atomic_write,
                        check_output_dir, check_output_file, os_error_text)


def _mount_tmpfs(path, options):
    """Mount a tmpfs at ``path`` (root only); skip the test, saying why, where impossible."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    return path


def _umount(path):
    subprocess.run(["umount", str(path)], check=True)


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs: the disk-full fault."""
    path = _mount_tmpfs(tmp_path / "tiny", "size=64k")
    yield path
    _umount(path)


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only directory: a read-only mount as root (chmod does not stop root), else
    chmod 0555."""
    path = tmp_path / "ro"
    if os.geteuid() == 0:
        _mount_tmpfs(path, "ro,size=64k")
        yield path
        _umount(path)
    else:
        path.mkdir()
        path.chmod(0o555)
        yield path
        path.chmod(0o755)


def fill(directory, leave=0):
    """Fill the file system of ``directory`` until at most ``leave`` bytes are free."""
    filler = Path(directory) / "filler"
    with open(filler, "wb") as f:
        chunk = b"\0" * 4096
        try:
            while True:
                st = os.statvfs(directory)
                if st.f_bavail * st.f_frsize <= leave:
                    break
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


# -- atomic writes ------------------------------------------------------------------------

def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "a" / "b" / "out.txt"
    assert atomic_write(path, "one\n") == path
    atomic_write(path, b"two\n")
    assert path.read_text() == "two\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_mode_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "f", "x")
        with atomic_files([tmp_path / "g", tmp_path / "h"]) as fs:
            for f in fs:
                f.write("y")
    finally:
        os.umask(old)
    for name in "fgh":
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_open(path) as f:
                f.write("new, half written")
                raise exc
        assert path.read_text() == "old"
        assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failure_removes_the_directories_it_created(tmp_path):
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "kept" / "new" / "deeper" / "f.json") as f:
            raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []


def test_atomic_files_all_or_none(tmp_path):
    a, b = tmp_path / "x.v", tmp_path / "x.json"
    with pytest.raises(ValueError):
        with atomic_files([a, b]) as (fa, fb):
            fa.write("module x; endmodule\n")
            raise ValueError("the manifest could not be built")
    assert list(tmp_path.iterdir()) == []
    with atomic_files([a, b]) as (fa, fb):
        fa.write("v")
        fb.write("j")
    assert (a.read_text(), b.read_text()) == ("v", "j")


def test_a_rename_that_fails_takes_back_the_others(tmp_path, monkeypatch):
    a, b = tmp_path / "x.v", tmp_path / "x.json"
    real = os.replace

    def replace(src, dst):
        if str(dst) == str(b):
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(OSError, match=r"Input/output error: .*x\.json"):
        with atomic_files([a, b]) as (fa, fb):
            fa.write("v")
            fb.write("j")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_names_the_file_and_leaves_nothing(tiny_fs):
    path = tiny_fs / "out" / "big.v"
    with pytest.raises(OSError) as info:
        atomic_write(path, "x" * 200_000)
    assert files.is_disk_full(info.value)
    assert info.value.filename == str(path)
    assert re.match(rf"^The disk is full: could not write {re.escape(repr(str(path)))}$",
                    os_error_text(info.value))
    assert list(tiny_fs.iterdir()) == []


def test_mode_argument_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"^atomic_open writes with mode 'w' or 'wb', "
                                         r"not 'a'$"):
        with atomic_open(tmp_path / "f", "a"):
            pass


# -- checks before any work -----------------------------------------------------------------

def test_check_output_dir_accepts_existing_and_creatable(tmp_path):
    assert check_output_dir(tmp_path) == tmp_path
    assert check_output_dir(str(tmp_path / "new" / "dir")) == tmp_path / "new" / "dir"
    assert list(tmp_path.iterdir()) == []          # nothing created


def _msg(text):
    return "^" + re.escape(text) + "$"


def test_check_output_dir_refusals(tmp_path, read_only_dir):
    f = tmp_path / "file"
    f.write_text("x")
    long = tmp_path / ("n" * 300)
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    cases = [
        ("", "The output directory must not be empty"),
        ("  ", "The output directory must not be empty"),
        (str(f), f"The output directory {str(f)!r} exists and is not a directory"),
        (str(f / "sub"), f"The output directory {str(f / 'sub')!r} cannot be created: "
                         f"{str(f)!r} is a file, not a directory"),
        ("/proc/nmmx", "The output directory '/proc/nmmx' is under /proc, which holds no "
                       "regular files"),
        ("/sys/x/y", "The output directory '/sys/x/y' is under /sys, which holds no "
                     "regular files"),
        (str(long), f"The output directory has a name of 300 bytes, more than the file "
                    f"system's 255: {'n' * 40!r}..."),
        (str(link / "x"), f"The path {str(link)!r} is a broken symbolic link"),
    ]
    ro = read_only_dir / "out"
    if os.geteuid() == 0:
        cases.append((str(ro), f"The output directory {str(ro)!r} is not writable: "
                               f"{str(read_only_dir)!r} is on a read-only file system"))
    else:
        cases.append((str(ro), f"The output directory {str(ro)!r} is not writable: no "
                               f"write permission on {str(read_only_dir)!r}"))
    for path, message in cases:
        with pytest.raises(OutputError, match=_msg(message)):
            check_output_dir(path)
    with pytest.raises(TypeError, match=r"^The output directory must be a path, not 3$"):
        check_output_dir(3)


def test_check_output_file_refusals(tmp_path, read_only_dir):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match=_msg(f"The --json file {str(tmp_path / 'd')!r} "
                                               f"is a directory")):
        check_output_file(tmp_path / "d", what="--json file")
    long = tmp_path / ("j" * 300 + ".json")
    with pytest.raises(OutputError, match=r"^The output file has a name of 305 bytes"):
        check_output_file(long)
    with pytest.raises(OutputError, match=r"^The directory of the output file .* is not "
                                          r"writable: "):
        check_output_file(read_only_dir / "x.json")
    assert check_output_file(tmp_path / "new" / "x.json") == tmp_path / "new" / "x.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "ro"]


def test_os_error_text():
    assert os_error_text(OSError(errno.ENOSPC, "No space left on device", "/o/x.v")) == (
        "The disk is full: could not write '/o/x.v'")
    assert os_error_text(PermissionError(errno.EACCES, "Permission denied", "/o/x")) == (
        "Permission denied: '/o/x'")
    assert os_error_text(OSError(errno.EIO, "Input/output error")) == "Input/output error"
