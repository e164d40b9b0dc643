"""Area and register-to-register timing of a design in a real NLDM library.

:func:`analyze` takes an Amaranth component (or a :class:`golden.Config`, meaning its PE,
or a Verilog file), maps it flat to the library for a target clock with Yosys
(:func:`mapping_commands`, run through :func:`synth.yosys.run_yosys`) and times the
mapped netlist with OpenSTA (:func:`synth.sta.check_timing`).

Mapping for timing, as SiliconCompiler and OpenLane do it: ``synth -flatten``,
``dfflibmap``, then ``abc -D <clock_ps>`` with a constraint file that sets the driving
cell (the library's unit inverter, :attr:`synth.nldm.Library.fo4_inverter`) and the load
on every output (four of its inputs, the FO4 load), so ABC sizes for delay at that clock
instead of minimum area.  Area is then the mapped area at that clock.

Every figure is labelled :data:`synth.sta.LABEL` ("pre-layout, no wire load").
"""

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

from nmmx.files import atomic_write

from . import nldm, sta
from .area import cache_dir
from .yosys import run_yosys

__all__ = ["analyze", "mapping_commands", "abc_constraints", "liberty_file",
           "design_of_config"]


def liberty_file(library, cache=None):
    """One plain liberty file of ``library`` (a set is merged), cached by content.

    Single uncompressed files are used in place; ``.lib.gz`` files and sets are written
    once under ``<cache>/liberty/`` (:func:`synth.area.cache_dir` by default), atomically.
    """
    paths = list(library.paths)
    if len(paths) == 1 and not paths[0].name.endswith(".gz"):
        return paths[0]
    h = hashlib.sha256(b"nmmx-merged-liberty 1")
    for p in paths:
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    out = (Path(cache) if cache is not None else cache_dir()) / "liberty" / \
        f"{library.name}-{h.hexdigest()[:16]}.lib"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, nldm.merged_liberty_text(paths))
    return out


def abc_constraints(library):
    """ABC's ``-constr`` text: unit inverter drives every input, FO4 load on every output."""
    load = library.fo4_load_ff / library.cap_unit_ff
    return f"set_driving_cell {library.fo4_inverter}\nset_load {load:.6g}\n"


def mapping_commands(design, liberty, top, clock_ps, constr="abc.constr",
                     netlist="netlist.v", stat_json="stat.json"):
    """The Yosys script that maps ``design`` flat to ``liberty`` for a ``clock_ps`` clock.

    ``design`` ends in ``.il`` (RTLIL) or ``.v``/``.sv`` (Verilog); all paths are as Yosys
    sees them (relative to its working directory under YoWASP).
    """
    read = f"read_rtlil {design}" if str(design).endswith(".il") else \
        f"read_verilog -sv {design}"
    return [
        read,
        f"hierarchy -check -top {top}",
        f"synth -flatten -top {top}",
        f"dfflibmap -liberty {liberty}",
        f"abc -D {clock_ps:g} -liberty {liberty} -constr {constr}",
        # Constants become cell-free assigns; nets are split so OpenSTA reads plain wires.
        "setundef -zero",
        "splitnets -ports -format _",
        "opt_clean -purge",
        f"tee -q -o {stat_json} stat -liberty {liberty} -json",
        f"write_verilog -noattr -noexpr -nohex -nodec {netlist}",
    ]


_INSTANCE = re.compile(r"^\s*(\S+)\s+(\S+)\s*\((.*?)\);", re.M | re.S)
_CONN = re.compile(r"\.(\w+)\s*\(\s*([^()]*?)\s*\)")


def register_names(netlist_text, library):
    """Instance name -> the net its output drives, for every sequential cell of a netlist.

    The mapped netlist names flip-flops ``_123_``; the net on their output (``acc_7``,
    after ``splitnets``) is the register bit the RTL named.
    """
    out = {}
    for cell, inst, body in _INSTANCE.findall(netlist_text):
        c = library.cells.get(cell)
        if c is None or not c.sequential:
            continue
        outs = {p.name for p in c.outputs}
        for pin, net in _CONN.findall(body):
            if pin in outs and net:
                out[inst.lstrip("\\")] = net.lstrip("\\").strip()
                break
    return out


def design_of_config(config):
    """The PE of ``config`` as the generator builds it (the one place that picks the class)."""
    from hw.registry import hardware
    return hardware(config).pe(config)


def _write_design(design, workdir, top):
    """Write the design into ``workdir``; return its file name there."""
    if isinstance(design, (str, Path)) and Path(design).suffix in (".v", ".sv", ".il"):
        name = "design" + Path(design).suffix
        shutil.copyfile(design, Path(workdir, name))
        return name
    from amaranth.back import rtlil
    Path(workdir, "design.il").write_text(rtlil.convert(design, name=top, emit_src=False))
    return "design.il"


def _point(sta_point, regs):
    """A start/end point as the register bit it is (``acc_7``), else as OpenSTA named it."""
    inst = sta_point.split("/")[0]
    return regs.get(inst, sta_point)


def analyze(design, library="osu018", clock_ps=1000.0, *, top=None, clock_port="clk",
            yosys=None, sta_exe=None, keep=None):
    """Map ``design`` to ``library`` for ``clock_ps`` and time it register to register.

    Parameters
    ----------
    design : golden.Config, amaranth.lib.wiring.Component or path
        A config means its PE (:func:`design_of_config`); a path is a ``.v``/``.sv``/``.il``
        file whose top module is ``top``.
    library : str, list of paths or synth.nldm.Library
        ``"osu018"``, ``"asap7"``, liberty path(s) (see :func:`synth.nldm.library_paths`).
    clock_ps : float
        Target clock for ``abc -D`` and the OpenSTA clock.
    top : str or None
        Top module name (default ``config.name + "_pe"`` for a config, else ``"top"``).
    keep : path or None
        Copy the work directory (netlist, scripts, logs) there.

    Returns
    -------
    dict
        ``library``, ``ge_unit_cell``, ``ge_unit_um2``, ``fo4_inverter``, ``fo4_ps``,
        ``clock_ps``, ``area_um2``, ``area_ge``, ``cells``, ``critical_path_ps``,
        ``critical_path_fo4``, ``fmax_mhz``, ``slack_ps``, ``start_point``, ``end_point``,
        ``label``.  The path figures are ``None`` in a design without a
        register-to-register path.
    """
    if not (isinstance(clock_ps, (int, float)) and clock_ps > 0):
        raise ValueError(f"The clock period must be a positive number of ps, not {clock_ps!r}")
    lib = library if isinstance(library, nldm.Library) else nldm.find_library(library)
    sta.sta_executable(sta_exe)     # missing OpenSTA: fail before any work
    from golden.config import Config
    if isinstance(design, Config):
        top = top or f"{design.name}_pe"
        design = design_of_config(design)
    top = top or "top"
    lib_path = liberty_file(lib)
    with tempfile.TemporaryDirectory(prefix="nmmx-timing-") as tmp:
        src = _write_design(design, tmp, top)
        shutil.copyfile(lib_path, Path(tmp, "cells.lib"))
        Path(tmp, "abc.constr").write_text(abc_constraints(lib))
        Path(tmp, "map.ys").write_text(
            "\n".join(mapping_commands(src, "cells.lib", top, clock_ps)) + "\n")
        run_yosys("map.ys", tmp, yosys)
        stat = json.loads(Path(tmp, "stat.json").read_text())
        mod = next(iter(stat["modules"].values()))
        by_type = mod["num_cells_by_type"]
        unknown = sorted(t for t in by_type if t not in lib.cells)
        if unknown:
            raise sta.StaError(f"Mapping to {lib.name} left unmapped cells {unknown}")
        area = sum(lib.cells[t].area_um2 * n for t, n in by_type.items())
        path = sta.check_timing("cells.lib", "netlist.v", top, clock_ps, lib.time_unit_ps,
                                clock_port=clock_port, cwd=tmp, sta=sta_exe)
        regs = register_names(Path(tmp, "netlist.v").read_text(), lib)
        if keep is not None:
            shutil.copytree(tmp, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("cells.lib"))
    out = {
        "library": lib.name,
        "ge_unit_cell": lib.ge_unit_cell,
        "ge_unit_um2": lib.ge_unit_um2,
        "fo4_inverter": lib.fo4_inverter,
        "fo4_ps": round(lib.fo4_ps, 3),
        "clock_ps": clock_ps,
        "area_um2": round(area, 4),
        "area_ge": round(lib.ge(area), 2),
        "cells": dict(sorted(by_type.items())),
        "critical_path_ps": None, "critical_path_fo4": None, "fmax_mhz": None,
        "slack_ps": None, "start_point": None, "end_point": None,
        "label": sta.LABEL,
    }
    if path is not None:
        cp = path["critical_path_ps"]
        out.update(critical_path_ps=cp, critical_path_fo4=round(lib.fo4(cp), 2),
                   fmax_mhz=round(1e6 / cp, 2), slack_ps=path["slack_ps"],
                   start_point=_point(path["start_point"], regs),
                   end_point=_point(path["end_point"], regs),
                   arrival_ps=path["arrival_ps"], setup_ps=path["setup_ps"])
    return out
