"""Faults every command must survive: a bad output location (exit 2, before any work), a
full disk (exit 1, nothing left behind) and Ctrl-C (exit 130 within seconds, one line)."""

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dse.__main__ import main as dse_main
from gen.__main__ import main as gen_main
from nmmx.flags import run_cli
from sim.__main__ import main as sim_main
from synth.__main__ import main as synth_main
from tests.test_dse import FAST, fake_area
from tests.test_files import _mount_tmpfs, _umount, fill

ROOT = Path(__file__).resolve().parent.parent

#: A small engine: generated in about a second.
SMALL = ["--rows", "2", "--cols", "2", "--m-max", "8", "--k-max", "64", "--n-max", "8"]


def _dse(argv):
    return dse_main(argv, area_fn=fake_area)


#: command -> (main, argv before the output flag, the output flag)
CLIS = {
    "gen": (gen_main, SMALL, "-o"),
    "dse": (_dse, ["--format", "int8", "--sparsity", "2:4", "--rows", "2", "--no-plots"]
            + FAST, "-o"),
    "synth": (synth_main, ["--top", "pe", "--format", "int8"], "--json"),
    "sim": (sim_main, SMALL + ["--gemm", "2x64x2"], "--json"),
}


def _files(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


@pytest.fixture
def places(tmp_path):
    """Bad output locations, each with the sentence (a regex) that must name it."""
    f = tmp_path / "a_file"
    f.write_text("keep")
    ro = tmp_path / "ro"
    if os.geteuid() == 0:
        _mount_tmpfs(ro, "ro,size=64k")
    else:
        ro.mkdir()
        ro.chmod(0o555)
    q = lambda p: re.escape(repr(str(p)))
    yield {
        "parent is a file": (str(f / "out"), rf"{q(f / 'out')} cannot be created: {q(f)} "
                                             rf"is a file, not a directory"),
        "is a file": (str(f), None),
        "under /proc": ("/proc/nmmx/out", r"'/proc/nmmx(/out)?' is under /proc, which "
                                          r"holds no regular files"),
        "under /sys": ("/sys/nmmx/out", r"'/sys/nmmx(/out)?' is under /sys, which holds "
                                        r"no regular files"),
        "read-only": (str(ro / "out"), rf".* is not writable: {q(ro)} is on a read-only "
                                       rf"file system" if os.geteuid() == 0 else
                                       rf".* is not writable: no write permission on {q(ro)}"),
        "300 characters": (str(tmp_path / ("x" * 300)), r".* has a name of 300 bytes, more "
                                                        r"than the file system's 255: .*"),
        "empty": ("", r".* must not be empty"),
    }
    if os.geteuid() == 0:
        _umount(ro)
    else:
        ro.chmod(0o755)


PLACES = ["parent is a file", "is a file", "under /proc", "under /sys", "read-only",
          "300 characters", "empty"]
#: An existing file is a valid --json target (it is replaced), not a bad one.
BAD_OUTPUTS = [(cli, place) for cli in CLIS for place in PLACES
               if not (place == "is a file" and CLIS[cli][2] == "--json")]


@pytest.mark.parametrize("cli, place", BAD_OUTPUTS)
def test_bad_output_location(cli, place, places, tmp_path, capsys, monkeypatch):
    """Exit 2 with one sentence naming the path, before any work: sim and synth would
    take seconds to minutes first, so a stand-in that fails the test guards the work."""
    main, argv, flag = CLIS[cli]
    path, message = places[place]
    monkeypatch.chdir(tmp_path)
    import sim.run
    import synth.estimate
    import gen.generate
    work = lambda *a, **k: pytest.fail("the work started before the output was checked")
    monkeypatch.setattr(sim.run, "simulate_cases", work)
    monkeypatch.setattr("synth.__main__.estimate_area", work)
    monkeypatch.setattr(gen.generate, "build_verilog", work)
    before = _files(tmp_path)
    assert run_cli(main, argv + [flag, path]) == 2
    err = capsys.readouterr().err
    if message is None:
        message = rf".* {re.escape(repr(path))} exists and is not a directory"
    assert re.match(rf"^error: The [^\n]*{message}\n$", err), err
    assert _files(tmp_path) == before


def test_gen_into_an_existing_directory_named_like_the_verilog(tmp_path, capsys):
    """Before: shutil.move put the file inside the directory and 'wrote' named a path
    that was not a file."""
    taken = tmp_path / "nmmx_os_2x2_mxfp8e4m3_2of4.v"
    taken.mkdir()
    assert run_cli(gen_main, SMALL + ["-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: The Verilog file {str(taken)!r} is a directory\n"
    assert _files(tmp_path) == [taken.name]


def test_sim_json_creates_missing_directories(tmp_path):
    """The other side of the decision: a --json in a directory that does not exist yet is
    created (after the checks), as gen -o and dse -o do.  Checked without simulating."""
    from nmmx.files import check_output_file
    target = tmp_path / "new" / "deeper" / "report.json"
    assert check_output_file(target, what="--json file") == target
    from nmmx.files import atomic_write
    atomic_write(target, "{}")
    assert target.read_text() == "{}"


# -- disk full ------------------------------------------------------------------------------

@pytest.fixture
def small_fs(tmp_path):
    path = _mount_tmpfs(tmp_path / "fs", "size=1m")
    yield path
    _umount(path)


def _one_error_line(err, pattern):
    lines = err.splitlines()
    assert len(lines) == 1 and re.match(pattern, lines[0]), err
    assert "Traceback" not in err


def test_gen_disk_full_verilog_does_not_fit(small_fs, tmp_path, capsys):
    fill(small_fs, leave=64 * 1024)
    assert run_cli(gen_main, SMALL + ["-o", str(small_fs / "out"), "-q"]) == 1
    _one_error_line(capsys.readouterr().err,
                    r"^error: The disk is full: could not write '.*/out/"
                    r"nmmx_os_2x2_mxfp8e4m3_2of4\.(v|json)'$")
    assert _files(small_fs) == ["filler"]


def test_gen_disk_full_manifest_does_not_fit(small_fs, tmp_path, capsys):
    """The Verilog fits and the manifest does not: before, a complete .v was left with
    an empty .json; now neither appears."""
    assert run_cli(gen_main, SMALL + ["-o", str(tmp_path / "probe"), "-q"]) == 0
    capsys.readouterr()
    v_size = (tmp_path / "probe" / "nmmx_os_2x2_mxfp8e4m3_2of4.v").stat().st_size
    fill(small_fs, leave=(math.ceil(v_size / 4096) + 1) * 4096)
    assert run_cli(gen_main, SMALL + ["-o", str(small_fs / "out"), "-q"]) == 1
    _one_error_line(capsys.readouterr().err,
                    r"^error: The disk is full: could not write '.*\.json'$")
    assert _files(small_fs) == ["filler"]


@pytest.mark.parametrize("cli", ["dse", "synth"])
def test_disk_full(cli, small_fs, capsys):
    main, argv, flag = CLIS[cli]
    fill(small_fs)
    target = small_fs / ("out" if flag == "-o" else "area.json")
    assert run_cli(main, argv + [flag, str(target)]) == 1
    _one_error_line(capsys.readouterr().err.splitlines()[-1] + "\n",
                    rf"^error: The disk is full: could not write '{small_fs}/.*'$")
    assert _files(small_fs) == ["filler"]


# -- Ctrl-C ---------------------------------------------------------------------------------

def _default_sigint():
    # An ignored SIGINT is inherited through exec, and something in a long pytest-xdist
    # worker ignores it; a terminal's Ctrl-C reaches a process that has the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(argv, tmp_path, ready, *, env=None, timeout=120):
    """Start ``python -m ...`` in its own session (as a terminal would), wait until
    ``ready(stderr_text)`` is true, send SIGINT to the whole process group (workers and
    compilers get it too, as with Ctrl-C) and return (exit code, stderr, seconds from
    the signal to the exit)."""
    err_path = tmp_path / "stderr.txt"
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=tmp_path, env=full_env,
                                stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, preexec_fn=_default_sigint)
    t_end = time.monotonic() + timeout
    while not ready(err_path.read_text()):
        assert proc.poll() is None, f"finished before the interrupt: {err_path.read_text()}"
        assert time.monotonic() < t_end, "never got ready"
        time.sleep(0.1)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return code, err_path.read_text(), time.monotonic() - t0


def _after(seconds):
    t0 = time.monotonic()
    return lambda _err: time.monotonic() - t0 > seconds


def _check_interrupted(code, err, elapsed, pattern):
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert re.match(pattern, lines[-1]), err
    assert sum("interrupted" in l for l in lines) == 1, err
    # A correctness bound (the process does stop), not a benchmark.
    assert elapsed < 5, f"exit took {elapsed:.1f} s after SIGINT"
    return lines


def test_ctrl_c_gen_during_elaboration(tmp_path):
    out = tmp_path / "out"
    code, err, elapsed = _interrupt(["gen", "--rows", "16", "--cols", "16", "-o", str(out)],
                                    tmp_path, _after(3.0))
    lines = _check_interrupted(code, err, elapsed, r"^interrupted: nothing was written; run "
                                                   r"the same command again$")
    assert len(lines) == 1
    assert not out.exists()


def test_ctrl_c_dse_jobs_2_during_the_sweep(tmp_path):
    out = tmp_path / "out"
    argv = ["dse", "--format", "int8,mxfp4_e2m1", "--sparsity", "2:4,4:4", "--rows", "2",
            "--jobs", "2", "--no-plots", "--no-progress", "-o", str(out)] + FAST
    started = {}

    def ready(err):   # the sweep is running (real synthesis, empty cache) for 2 s
        if "points ->" in err:
            started.setdefault("t", time.monotonic())
        return "t" in started and time.monotonic() - started["t"] > 2.0

    code, err, elapsed = _interrupt(argv, tmp_path, ready,
                                    env={"NMMX_CACHE_DIR": str(tmp_path / "cache")})
    _check_interrupted(code, err, elapsed,
                       rf"^interrupted: \d of 4 points are cached in "
                       rf"{re.escape(str(out / 'points'))}; run the same command again "
                       rf"to resume$")
    assert not (out / "results.csv").exists() and not (out / "report.md").exists()


def test_ctrl_c_synth_during_yosys(tmp_path):
    argv = ["synth", "--top", "pe", "--rows", "2", "--cols", "2", "--format",
            "mxfp6_e3m2", "--json", str(tmp_path / "area.json")]
    code, err, elapsed = _interrupt(argv, tmp_path, _after(3.0),
                                    env={"NMMX_CACHE_DIR": str(tmp_path / "cache")})
    _check_interrupted(code, err, elapsed, r"^interrupted: no report was written; "
                                           r"synthesized modules are cached, so run the "
                                           r"same command again$")
    assert not (tmp_path / "area.json").exists()


def test_ctrl_c_sim_during_build(tmp_path):
    builds = tmp_path / "builds"

    def building(_err):     # Verilator has started on the design
        return any(builds.glob("*/design.v"))

    code, err, elapsed = _interrupt(
        ["sim", *SMALL, "--gemm", "2x64x2", "--json", str(tmp_path / "r.json")], tmp_path,
        building, env={"NMMX_BUILD_DIR": str(builds)})
    _check_interrupted(code, err, elapsed, r"^interrupted: no result was written; finished "
                                           r"Verilator builds are cached, so run the same "
                                           r"command again$")
    assert not (tmp_path / "r.json").exists()
    assert not list(builds.glob("*/nmmx_build.json"))     # no stamp for a half build
