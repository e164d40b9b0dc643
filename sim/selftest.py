"""A tiny design that proves the build/run flow without the engine.

:class:`Countdown` has the engine's control handshake (``start`` pulse, ``busy``,
``done``) and a cycle counter, so the runner, the cocotb-side timing and the C++ speed
harness can be checked on a design that builds in seconds.  The cocotb test
:func:`countdown_test` reads its job from the JSON file named by ``$NMMX_SELFTEST_IN``
and writes what it measured to ``$NMMX_SELFTEST_OUT``.
"""

import json
import os
import time

from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from sim.wrapper import CLOCK_PERIOD_NS

__all__ = ["Countdown", "write_countdown_verilog"]


class Countdown(wiring.Component):
    """Count ``length`` cycles after a ``start`` pulse, then raise ``done``.

    Parameters
    ----------
    width : int
        Width of ``length`` and ``cnt_cycles``.

    Members
    -------
    start : In(1)
        Pulse to begin; ignored while ``busy``.
    length : In(width)
        Cycles from the start pulse until ``done`` rises (at least 1).
    busy : Out(1)
        High from the cycle after ``start`` until done.
    done : Out(1)
        High from completion until the next ``start``.
    cnt_cycles : Out(width)
        Cycles the last run was busy; equals ``length`` (latency is ``length`` cycles).
    """

    def __init__(self, *, width=32):
        if isinstance(width, bool) or not isinstance(width, int):
            raise TypeError(f"width must be a whole number, not {width!r}")
        if not 1 <= width <= 64:
            raise ValueError(f"width must be between 1 and 64, not {width}")
        self._width = width
        super().__init__({
            "start": In(1), "length": In(width), "busy": Out(1), "done": Out(1),
            "cnt_cycles": Out(width),
        })

    @property
    def width(self):
        return self._width

    def elaborate(self, platform):
        m = Module()
        left = Signal(self._width)
        with m.If(self.start & ~self.busy):
            m.d.sync += [self.busy.eq(1), self.done.eq(0), left.eq(self.length),
                         self.cnt_cycles.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += [self.cnt_cycles.eq(self.cnt_cycles + 1), left.eq(left - 1)]
            with m.If(left <= 1):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m


def write_countdown_verilog(path, *, width=32, name="countdown"):
    """Write the Verilog of :class:`Countdown` to ``path``; return the top name."""
    top = Countdown(width=width)
    text = verilog.convert(top, name=name, emit_src=False)
    with open(path, "w") as f:
        f.write(text)
    return name


@cocotb.test()
async def countdown_test(dut):
    """Run the jobs in ``$NMMX_SELFTEST_IN``; write cycles and timings out."""
    job = json.loads(open(os.environ["NMMX_SELFTEST_IN"]).read())
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    dut.start.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    out = []
    for length in job["lengths"]:
        dut.length.value = length
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        t0 = time.perf_counter()
        await RisingEdge(dut.done)
        dt = time.perf_counter() - t0
        await RisingEdge(dut.clk)
        out.append({"length": length, "cnt_cycles": int(dut.cnt_cycles.value),
                    "done": int(dut.done.value), "seconds": dt})
    with open(os.environ["NMMX_SELFTEST_OUT"], "w") as f:
        json.dump(out, f)
    assert all(o["cnt_cycles"] == o["length"] for o in out), out
