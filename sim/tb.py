"""cocotb testbench of the generated engine (runs inside the simulator process).

The parent process (:mod:`sim.run`) precomputes everything with numpy -- the packed
buffer words of each job and the golden result bit patterns -- and saves them as a
:class:`sim.job.SimInput` in the file named by ``$NMMX_SIM_IN``.  This module only drives
ports: it loads the buffers through the write port (one Python write per word), pulses
``start``, awaits ``done`` with no Python work per cycle, reads the C buffer and the
counters, compares the whole result with numpy, and saves what it saw as a
:class:`sim.job.SimOutput` to ``$NMMX_SIM_OUT`` (the parent prints the mismatch report
and writes the replay file).  The clock is generated in the Verilog wrapper unless
``hdl_clock`` is false (see :mod:`sim.wrapper`).
"""

import os
import time

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, SimTimeoutError, with_timeout

from golden.pack import c_read_addresses, unpack_c
from sim.job import JobResult, SimInput, SimOutput, words_from_limbs
from sim.wrapper import CLOCK_PERIOD_NS

__all__ = ["TB", "CLOCK_PERIOD_NS"]



class TB:
    """Clock, reset and port drivers of one engine instance.

    Parameters
    ----------
    dut : cocotb handle
        The engine top (or the :mod:`sim.wrapper` top, which has the same ports).
    hdl_clock : bool
        ``clk`` is generated in HDL; otherwise a cocotb ``Clock`` drives it.
    counters : sequence of str
        Counter outputs to read (:func:`golden.counters.names`).
    modes : bool
        The engine has a ``mode`` input (a unified engine).

    Members
    -------
    dut : cocotb handle
    period_ns : int
        Clock period in ns.
    """

    def __init__(self, dut, *, hdl_clock, counters, modes=False):
        self.dut = dut
        self._modes = modes
        self._counters = [getattr(dut, name) for name in counters]
        self.period_ns = CLOCK_PERIOD_NS
        if not hdl_clock:
            Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
        # Triggers are created once and reused in the loops below.
        self._rise = RisingEdge(dut.clk)
        self._fall = FallingEdge(dut.clk)

    async def reset(self):
        """Hold ``rst`` for two cycles with every input idle."""
        d = self.dut
        for name in ("wr_en", "wr_sel", "wr_bank", "wr_addr", "wr_data", "rd_addr",
                     "start", "m", "k", "n") + (("mode",) if self._modes else ()):
            getattr(d, name).value = 0
        d.rst.value = 1
        await ClockCycles(d.clk, 2)
        d.rst.value = 0
        await self._rise

    async def write(self, sel, bank, addr, data):
        """Write buffer words through the write port, one word per cycle.

        Parameters
        ----------
        sel, bank, addr : sequence of int
        data : sequence of int
            Packed words (:func:`golden.pack.pack_operands`).
        """
        d = self.dut
        wr_en, wr_sel, wr_bank, wr_addr, wr_data = (d.wr_en, d.wr_sel, d.wr_bank,
                                                    d.wr_addr, d.wr_data)
        rise = self._rise
        wr_en.value = 1
        for s, b, a, w in zip(sel, bank, addr, data):
            wr_sel.value = s
            wr_bank.value = b
            wr_addr.value = a
            wr_data.value = w
            await rise
        wr_en.value = 0

    async def run(self, m, k, n, limit=None, mode=0):
        """Pulse ``start`` with shape ``m, k, n`` and wait for ``done``.

        Parameters
        ----------
        m, k, n : int
        limit : int, optional
            Cycles to wait before giving up (raises ``cocotb.triggers.SimTimeoutError``);
            the wait is one timer, so it adds no per-cycle work.
        mode : int
            The ``mode`` input with ``start`` (unified engines).

        Returns
        -------
        seconds : float
            Wall time from the start pulse to ``done``.
        cycles : int
            Simulated clock cycles over the same interval.
        """
        d = self.dut
        d.m.value, d.k.value, d.n.value = m, k, n
        if self._modes:
            d.mode.value = mode
        d.start.value = 1
        await self._rise
        d.start.value = 0
        t_sim = get_sim_time(unit="ns")
        t0 = time.perf_counter()
        if int(d.done.value):
            await FallingEdge(d.done)
        if limit is None:
            await RisingEdge(d.done)
        else:
            await with_timeout(RisingEdge(d.done), limit * self.period_ns, "ns")
        seconds = time.perf_counter() - t0
        cycles = round((get_sim_time(unit="ns") - t_sim) / self.period_ns)
        await self._fall
        return seconds, cycles

    def counters(self):
        """The performance counters as a list of ints (in ``counters`` order)."""
        return [int(h.value) for h in self._counters]

    async def read_c(self, addresses):
        """Read C-buffer words (``rd_data`` is valid the cycle after ``rd_addr``)."""
        d = self.dut
        rd_addr, rd_data = d.rd_addr, d.rd_data
        rise, fall = self._rise, self._fall
        words = []
        await fall
        for a in addresses:
            rd_addr.value = a
            await rise
            await fall
            words.append(rd_data.value.to_unsigned())
        return words


@cocotb.test()
async def engine_test(dut):
    """Run every job of ``$NMMX_SIM_IN``; compare; write ``$NMMX_SIM_OUT``."""
    src = SimInput.load(os.environ["NMMX_SIM_IN"])
    config = src.config
    tb = TB(dut, hdl_clock=src.hdl_clock, counters=src.counters, modes=config.unified)
    await tb.reset()
    results, failed, hung = [], [], False
    for j, job in enumerate(src.jobs):
        m, k, n = job.shape
        t0 = time.perf_counter()
        await tb.write(job.sel.tolist(), job.bank.tolist(), job.addr.tolist(),
                       words_from_limbs(job.data))
        load_s = time.perf_counter() - t0
        try:
            seconds, cycles = await tb.run(m, k, n, job.limit, job.mode)
        except SimTimeoutError:
            # A hung engine stays hung: report this job and skip the rest.
            hung = True
            failed.append(j)
            break
        counters = tb.counters()
        words = await tb.read_c(c_read_addresses(config, m))
        got = unpack_c(config, words, m, n).view(np.uint32)
        bad = int((got != job.expect).sum())
        if bad:
            failed.append(j)
        results.append(JobResult(c=got, counters=tuple(counters), seconds=seconds,
                                 sim_cycles=cycles, load_seconds=load_s, mismatches=bad))
    SimOutput(results=tuple(results), hung=hung).save(os.environ["NMMX_SIM_OUT"])
    assert not failed, f"jobs {failed} differ from golden (the parent process reports them)"
