"""cocotb testbench of the AXI-wrapped engine (``python -m gen --bus axi``), with
cocotbext-axi's AxiLiteMaster, AxiStreamSource and AxiStreamSink.

Two halves, as in :mod:`sim.tb` / :mod:`sim.run`:

* the parent process (:func:`run_soc`) generates and builds the wrapper once per Verilog
  hash (:func:`sim.build.build_model`), precomputes every stream's words
  (:func:`golden.pack.stream_words`), the golden C bit patterns, the expected counters
  and the bus cycle model (:mod:`golden.regmap`), and passes them in the ``.npz`` named
  by ``$NMMX_SOC_IN``;
* the cocotb tests below (running in the simulator) only drive the buses, compare in
  bulk with numpy and write what they measured to ``$NMMX_SOC_OUT.<test>.npz``.

Tests: ``soc_registers`` (every register's reset value against the manifest, RW
read-back, counter capture), ``soc_gemms`` (back-to-back GEMMs under random TVALID
pauses on every sink and a random TREADY pattern on the C source, bit-exact against
golden, every counter, the interrupt), ``soc_timing`` (no backpressure: load and
START-to-last-C cycles equal the model), ``soc_bad_access`` (every bad access of
:mod:`hw.soc`).  The seed of the random patterns is printed.
"""

import hashlib
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout

from golden import counters as counter_table
from golden.config import Config
from sim.wrapper import CLOCK_PERIOD_NS

__all__ = ["soc_model", "run_soc", "SocCase", "TB", "TESTS"]

#: The cocotb tests of this module, in the order they run.
TESTS = ("soc_registers", "soc_gemms", "soc_timing", "soc_bad_access")


# ======================================================================================
# parent side
# ======================================================================================

class SocCase:
    """One GEMM for the wrapper: shape, stimulus class and seed."""

    def __init__(self, m, k, n, data="gaussian", seed=0):
        self.m, self.k, self.n, self.data, self.seed = m, k, n, data, seed


_generated = {}


def _generate(config):
    """Generate the AXI top once per process; return ``(verilog_path, manifest)``."""
    from gen.generate import generate
    from sim.build import build_root
    key = (str(build_root()), config)
    if key not in _generated:
        digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
        out = build_root() / "gen" / f"{config.name}_axi_{digest.hexdigest()[:12]}"
        paths = generate(config, out, bus="axi")
        _generated[key] = (paths[0], json.loads(paths[1].read_text()), paths)
    return _generated[key]


def soc_model(config, *, waves=False, hdl_clock=False):
    """Generate and build (or reuse) the cocotb model of ``config``'s AXI top; return
    ``(model, manifest, paths)`` (paths: ``.v``, ``.json``, ``.h``, ``_regs.md``).

    ``hdl_clock`` wraps the top in :mod:`sim.wrapper`'s clock generator.  It is off by
    default: the bus models sample on the rising edge, and with the clock made in HDL
    they see some registers after the edge (a lost C word, measured), so the testbench
    drives the clock with cocotb's ``Clock``."""
    from nmmx.files import atomic_write
    from sim.build import build_model
    from sim.wrapper import TIMING_ARGS, WRAPPER_TOP, clock_wrapper
    verilog_path, manifest, paths = _generate(config)
    top = manifest["top"]
    if not hdl_clock:
        return build_model([verilog_path], top, waves=waves), manifest, paths
    wrap = verilog_path.with_name(f"{WRAPPER_TOP}_{top}.v")
    ports = [(p["name"], "input" if p["dir"] == "in" else "output", p["width"])
             for p in manifest["ports"]]
    text = clock_wrapper(top, ports, clock=manifest["clock"]["name"])
    if not wrap.exists() or wrap.read_text() != text:
        atomic_write(wrap, text)
    model = build_model([verilog_path, wrap], WRAPPER_TOP, waves=waves,
                        extra_args=TIMING_ARGS)
    return model, manifest, paths


def _limbs(words, bits):
    count = max(1, -(-bits // 64))
    vals = [int(w) for w in words]
    out = np.zeros((len(vals), count), np.uint64)
    for q in range(count):
        out[:, q] = [(v >> (64 * q)) & 0xFFFFFFFFFFFFFFFF for v in vals]
    return out


def _inputs(config, manifest, cases, seed, hdl_clock):
    from golden.pack import stream_words
    from golden.regmap import load_cycles, soc_cycles
    from golden.skip import gemm_tile_skip, weight_tile_mask
    from sim.stimulus import make_operands
    widths = {s["name"]: s["word_bits"] for s in manifest["streams"]}
    src = {"config": json.dumps(config.to_dict()), "manifest": json.dumps(manifest),
           "seed": seed, "cases": len(cases), "hdl_clock": int(hdl_clock)}
    for q, case in enumerate(cases):
        enc = make_operands(config, case.m, case.k, case.n, case.data, case.seed)
        words = stream_words(config, enc)
        src[f"c{q}_shape"] = np.array([case.m, case.k, case.n], np.int64)
        for name, w in words.items():
            src[f"c{q}_{name}"] = _limbs(w, widths[name])
        # An engine with tile_skip skips the run's all-zero weight tiles (golden.skip).
        skip = (tuple(bool(s) for s in weight_tile_mask(config, enc))
                if config.tile_skip else None)
        src[f"c{q}_expect"] = gemm_tile_skip(enc, config).view(np.uint32)
        m, k, n = case.m, case.k, case.n
        src[f"c{q}_counters"] = np.array(
            list(counter_table.expected(config, m, k, n, skip).values()), np.int64)
        src[f"c{q}_model"] = np.array([load_cycles(config, m, k, n),
                                       soc_cycles(config, m, k, n, skip)], np.int64)
    return src


def run_soc(config, cases, *, tests=TESTS, seed=0, waves=False, verbose=False,
            hdl_clock=False):
    """Run the cocotb ``tests`` on ``config``'s AXI top with ``cases``.

    Returns
    -------
    ok : bool
        Every test passed.
    results : dict of str to dict
        Per test, what it measured (``soc_timing``: ``load``, ``soc``, ``engine`` cycles
        per case).
    run_dir : pathlib.Path
        Holds ``sim.log`` (and waves when requested).
    """
    from sim.build import run_cocotb
    from nmmx.files import atomic_open
    model, manifest, _ = soc_model(config, waves=waves, hdl_clock=hdl_clock)
    print(f"soc testbench: {manifest['top']} seed={seed}")
    tmp = model.build_dir / "runs"
    tmp.mkdir(parents=True, exist_ok=True)
    stem = tmp / f"soc_{os.getpid()}_{time.time_ns()}"
    with atomic_open(f"{stem}.in.npz", "wb") as f:
        np.savez(f, **_inputs(config, manifest, cases, seed, hdl_clock))
    results, ok_all, run_dir = {}, True, None
    for test in tests:
        run_dir, ok = run_cocotb(model, "sim.tb_axi", testcase=test, verbose=verbose,
                                 extra_env={"NMMX_SOC_IN": f"{stem}.in.npz",
                                            "NMMX_SOC_OUT": str(stem)})
        ok_all &= ok
        out = Path(f"{stem}.{test}.npz")
        if out.exists():
            with np.load(out) as z:
                results[test] = {k: z[k] for k in z.files}
        results.setdefault(test, {})["ok"] = ok
    return ok_all, results, run_dir


# ======================================================================================
# simulator side
# ======================================================================================

def _words(limbs):
    limbs = np.asarray(limbs, np.uint64)
    cols = [limbs[:, q].tolist() for q in range(limbs.shape[1])]
    if len(cols) == 1:
        return cols[0]
    return [sum(v << (64 * q) for q, v in enumerate(vals)) for vals in zip(*cols)]


class TB:
    """Clock, reset and the bus models of one wrapper instance.

    Members
    -------
    dut, config, regs (name -> manifest register dict), axil (AxiLiteMaster),
    sources (stream name -> AxiStreamSource), sink (AxiStreamSink of C)
    """

    def __init__(self, dut, src):
        from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus,
                                   AxiStreamSink, AxiStreamSource)
        self.dut = dut
        self.src = src
        self.config = Config.from_dict(json.loads(str(src["config"])))
        self.manifest = json.loads(str(src["manifest"]))
        self.regs = {r["name"]: r for r in self.manifest["regmap"]["registers"]}
        self.streams = self.manifest["streams"]
        self.seed = int(src["seed"])
        clk, rst = dut.clk, dut.rst
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), clk, rst)
        self.sources = {s["name"]: AxiStreamSource(AxiStreamBus.from_prefix(dut, s["prefix"]),
                                                   clk, rst, byte_lanes=1)
                        for s in self.streams if s["direction"] == "in"}
        out = [s for s in self.streams if s["direction"] == "out"][0]
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, out["prefix"]), clk, rst,
                                  byte_lanes=1)
        for model in [self.axil.write_if, self.axil.read_if, *self.sources.values(),
                      self.sink]:
            model.log.setLevel("WARNING")
        if not int(src["hdl_clock"]):
            Clock(clk, CLOCK_PERIOD_NS, unit="ns").start()
        self._rise, self._fall = RisingEdge(clk), FallingEdge(clk)

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    def offset(self, name):
        return self.regs[name]["offset"]

    def field(self, reg, name):
        for f in self.regs[reg]["fields"]:
            if f["name"] == name:
                return f
        raise KeyError(name)

    async def write(self, name_or_addr, value):
        """Write a register (by name or byte address); return the AXI response code."""
        addr = self.offset(name_or_addr) if isinstance(name_or_addr, str) else name_or_addr
        resp = await self.axil.write(addr, int(value).to_bytes(4, "little"))
        return int(resp.resp)

    async def read(self, name_or_addr):
        """Read a register; return ``(value, response code)``."""
        addr = self.offset(name_or_addr) if isinstance(name_or_addr, str) else name_or_addr
        resp = await self.axil.read(addr, 4)
        return int.from_bytes(resp.data, "little"), int(resp.resp)

    async def value(self, name):
        v, resp = await self.read(name)
        assert resp == 0, f"read of {name} answered {resp}"
        return v

    async def counter(self, stem):
        lo = await self.value(f"{stem}_LO")
        hi = await self.value(f"{stem}_HI")
        return lo | (hi << 32)

    def pauses(self, rng, probability):
        """A TVALID pause / TREADY pattern generator: ``True`` with ``probability``."""
        return itertools.cycle((rng.random(251) < probability).tolist())

    def case(self, q):
        s = self.src
        m, k, n = (int(v) for v in s[f"c{q}_shape"])
        words = {name: _words(s[f"c{q}_{name}"]) for name in self.sources}
        return (m, k, n), words, s[f"c{q}_expect"], s[f"c{q}_counters"].tolist(), \
            s[f"c{q}_model"].tolist()

    async def load(self, words):
        """Send every stream's words as one frame each (TLAST on the last), all at once."""
        from cocotbext.axi import AxiStreamFrame
        for name, w in words.items():
            await self.sources[name].send(AxiStreamFrame(w))
        for name in words:
            await self.sources[name].wait()

    async def shape(self, m, k, n):
        for name, v in (("M", m), ("K", k), ("N", n)):
            assert await self.write(name, v) == 0

    async def result(self, m, n, limit):
        """Receive the C frame; return the (m, n) uint32 bit patterns."""
        from golden.pack import unpack_c_stream
        frame = await with_timeout(self.sink.recv(), limit * CLOCK_PERIOD_NS, "ns")
        return unpack_c_stream(self.config, frame.tdata, m, n).view(np.uint32)


def _save(name, **arrays):
    from nmmx.files import atomic_open
    with atomic_open(f"{os.environ['NMMX_SOC_OUT']}.{name}.npz", "wb") as f:
        np.savez(f, **arrays)


def _tb(dut):
    return TB(dut, np.load(os.environ["NMMX_SOC_IN"]))


@cocotb.test()
async def soc_registers(dut):
    """Every register's reset value is the manifest's; RW registers read back; reading
    a counter's _LO captures its _HI."""
    tb = _tb(dut)
    await tb.reset()
    for reg in tb.regs.values():
        value, resp = await tb.read(reg["name"])
        assert resp == 0, f"{reg['name']} read answered {resp}"
        want = 0 if reg["access"] == "WO" else reg["reset"]
        assert value == want, f"{reg['name']} reads {value:#x}, reset is {want:#x}"
    for reg in tb.regs.values():
        if reg["access"] != "RW":
            continue
        mask = sum(f["mask"] for f in reg["fields"])
        for pattern in (0xFFFFFFFF, 0xA5A5A5A5 & mask):
            assert await tb.write(reg["name"], pattern) == 0
            assert await tb.value(reg["name"]) == pattern & mask
        assert await tb.write(reg["name"], reg["reset"]) == 0
    # A partial write (one byte lane) changes only that byte.
    await tb.write("M", 0)
    await tb.axil.write(tb.offset("M"), b"\x03")
    assert await tb.value("M") == 3
    _save("soc_registers", checked=len(tb.regs))


@cocotb.test()
async def soc_gemms(dut):
    """Back-to-back GEMMs under random backpressure on every stream, bit-exact, with
    every counter and the interrupt."""
    tb = _tb(dut)
    rng = np.random.default_rng(tb.seed)
    print(f"soc_gemms seed={tb.seed}")
    for q, src in enumerate(tb.sources.values()):
        src.set_pause_generator(tb.pauses(rng, 0.3 + 0.1 * q))
    tb.sink.set_pause_generator(tb.pauses(rng, 0.4))
    await tb.reset()
    assert await tb.write("CTRL", 1 << tb.field("CTRL", "IRQ_EN")["lsb"]) == 0
    irq_done = 1 << tb.field("IRQ", "DONE")["lsb"]
    bad = []
    for q in range(int(tb.src["cases"])):
        (m, k, n), words, expect, counters, model = tb.case(q)
        await tb.shape(m, k, n)
        await tb.load(words)
        status = await tb.value("STATUS")
        for name in words:
            assert status >> tb.field("STATUS", f"{name.upper()}_LOADED")["lsb"] & 1
        assert int(dut.irq.value) == 0
        assert await tb.write("START", 1) == 0
        got = await tb.result(m, n, 20 * model[1] + 1000)
        bad.append(int((got != expect).sum()))
        for _ in range(5):
            if int(dut.irq.value):
                break
            await tb._rise
        assert int(dut.irq.value) == 1, "no interrupt after the result"
        assert await tb.value("IRQ") == irq_done
        assert await tb.write("IRQ", irq_done) == 0
        assert int(dut.irq.value) == 0 and await tb.value("IRQ") == 0
        seen = [await tb.counter(counter_table.register_stem(name))
                for name in counter_table.names(tb.config)]
        assert seen == counters, f"GEMM {q}: counters {seen}, model {counters}"
        assert await tb.value("GEMMS") == q + 1
        status = await tb.value("STATUS")
        assert status & (1 << tb.field("STATUS", "DONE")["lsb"])
        assert not status & (1 << tb.field("STATUS", "BUSY")["lsb"])
    assert await tb.value("ERROR") == 0
    assert await tb.value("BAD_ACCESS") == 0
    _save("soc_gemms", mismatches=np.array(bad, np.int64))
    assert not any(bad), f"C differs from golden in {bad} words per GEMM"


class _Monitor:
    """Cycle numbers of the handshakes on every stream and of the START write."""

    def __init__(self, tb):
        self.tb = tb
        d = tb.dut
        self.streams = [(s["name"], getattr(d, f"{s['prefix']}_tvalid"),
                         getattr(d, f"{s['prefix']}_tready")) for s in tb.streams]
        self.beats = {s["name"]: [] for s in tb.streams}
        self.start = []
        self.done = []
        self.start_addr = tb.offset("START")
        self.cycle = 0

    async def run(self):
        d, fall = self.tb.dut, self.tb._fall
        aw = (d.s_axil_awvalid, d.s_axil_awready, d.s_axil_awaddr, d.s_axil_wdata)
        while True:
            await fall
            self.cycle += 1
            for name, valid, ready in self.streams:
                if valid.value == 1 and ready.value == 1:
                    self.beats[name].append(self.cycle)
            if aw[0].value == 1 and aw[1].value == 1 and int(aw[2].value) == self.start_addr:
                self.start.append(self.cycle)


@cocotb.test()
async def soc_timing(dut):
    """With no backpressure the loads take load_cycles (one word per cycle through the
    shared write port) and START to the last C word takes soc_cycles."""
    tb = _tb(dut)
    await tb.reset()
    mon = _Monitor(tb)
    task = cocotb.start_soon(mon.run())
    loads, socs, engines = [], [], []
    for q in range(int(tb.src["cases"])):
        (m, k, n), words, expect, counters, model = tb.case(q)
        await tb.shape(m, k, n)
        for beats in mon.beats.values():
            beats.clear()
        await tb.load(words)
        first = min(b[0] for name, b in mon.beats.items() if name in words)
        last = max(b[-1] for name, b in mon.beats.items() if name in words)
        loads.append(last - first + 1)
        await tb.write("START", 1)
        got = await tb.result(m, n, 20 * model[1] + 1000)
        assert (got == expect).all(), f"GEMM {q}: C differs from golden"
        await ClockCycles(dut.clk, 2)
        socs.append(mon.beats["c"][-1] - mon.start[-1])
        engines.append(await tb.counter("CYCLES"))
        assert [loads[-1], socs[-1]] == model, \
            f"GEMM {m}x{k}x{n}: measured load {loads[-1]}, soc {socs[-1]} cycles; model {model}"
    task.cancel()
    _save("soc_timing", load=np.array(loads), soc=np.array(socs), engine=np.array(engines))


@cocotb.test()
async def soc_bad_access(dut):
    """Writes to RO registers and accesses to unmapped addresses answer SLVERR, count
    and change nothing; START while busy and bad shapes set their error bits; a load
    whose TLAST is off sets LOAD_LENGTH."""
    from cocotbext.axi import AxiStreamFrame
    tb = _tb(dut)
    await tb.reset()
    SLVERR, count = 2, 0
    mapped = {r["offset"] for r in tb.regs.values()}
    span = 1 << tb.manifest["regmap"]["addr_bits"]
    for reg in tb.regs.values():
        if reg["access"] != "RO":
            continue
        before = await tb.value(reg["name"])
        assert await tb.write(reg["name"], ~before & 0xFFFFFFFF) == SLVERR, reg["name"]
        count += 1
        assert await tb.value(reg["name"]) == before + (reg["name"] == "BAD_ACCESS")
    unmapped = [a for a in range(0, span, 4) if a not in mapped]
    for addr in unmapped:
        assert await tb.write(addr, 0xFFFFFFFF) == SLVERR
        assert (await tb.read(addr)) == (0, SLVERR)
        count += 2
    assert await tb.value("BAD_ACCESS") == count
    # Nothing changed: every RW/W1C register still holds its reset value.
    for reg in tb.regs.values():
        if reg["access"] in ("RW", "W1C"):
            assert await tb.value(reg["name"]) == reg["reset"], reg["name"]
    err = {f["name"]: 1 << f["lsb"] for f in tb.regs["ERROR"]["fields"]}
    busy = 1 << tb.field("STATUS", "BUSY")["lsb"]
    cfg = tb.config
    # Shapes beyond the buffers (and zero) set ERROR.SHAPE and start nothing.
    for shape in ((cfg.m_max + 1, 1, 1), (1, cfg.k_max + 1, 1), (1, 1, cfg.n_max + 1),
                  (0, 1, 1)):
        await tb.shape(*shape)
        assert await tb.write("START", 1) == 0
        assert await tb.value("STATUS") & busy == 0
        assert await tb.value("ERROR") == err["SHAPE"], shape
        assert await tb.write("ERROR", err["SHAPE"]) == 0
        assert await tb.value("ERROR") == 0
    # A load word with a bad shape is dropped and flagged.
    name = next(iter(tb.sources))
    await tb.sources[name].send(AxiStreamFrame([1]))
    await tb.sources[name].wait()
    assert await tb.value("ERROR") == err["SHAPE"]
    await tb.write("ERROR", 0xFFFFFFFF)
    # TLAST early: LOAD_LENGTH, and the stream is not marked loaded.
    (m, k, n), words, expect, counters, model = tb.case(0)
    await tb.shape(m, k, n)
    short = words[name][:-1] if len(words[name]) > 1 else words[name] + [0]
    await tb.sources[name].send(AxiStreamFrame(short))
    await tb.sources[name].wait()
    assert await tb.value("ERROR") == err["LOAD_LENGTH"]
    loaded = 1 << tb.field("STATUS", f"{name.upper()}_LOADED")["lsb"]
    assert not await tb.value("STATUS") & loaded
    await tb.write("ERROR", 0xFFFFFFFF)
    # START while busy: ignored (one GEMM runs, GEMMS counts one) and flagged.
    await tb.load(words)
    assert await tb.write("START", 1) == 0
    assert await tb.value("STATUS") & busy
    assert await tb.write("START", 1) == 0
    assert await tb.value("ERROR") == err["START_BUSY"]
    got = await tb.result(m, n, 20 * model[1] + 1000)
    assert (got == expect).all()
    await ClockCycles(dut.clk, 4)
    assert await tb.value("GEMMS") == 1
    assert tb.sink.empty(), "a second result was streamed"
    assert await tb.value("BAD_ACCESS") == count
    _save("soc_bad_access", slverr=count)


# ======================================================================================
# command line: the wrapper's cycle overhead, measured in RTL
# ======================================================================================

def main(argv=None):
    """``python -m sim.tb_axi [config flags] --gemm MxKxN``: run ``soc_timing`` on the
    AXI top and print the measured load, engine and START-to-last-C cycles against the
    model, and the wrapper's overhead over the bare engine."""
    from nmmx.flags import (ArgumentParser, UsageError, add_config_flags, config_from_args,
                           parse_shape, parse_seed, refuse_modes)
    from golden.regmap import load_cycles, result_words, soc_cycles
    parser = ArgumentParser(
        prog="python -m sim.tb_axi",
        description="Measure the AXI wrapper's bus cycles in RTL against the model.",
        examples=["python -m sim.tb_axi --rows 4 --cols 4 --m-max 64 --k-max 512 "
                  "--n-max 64 --gemm 64x512x64"])
    add_config_flags(parser)
    parser.add_argument("--gemm", default="8x64x8", metavar="MxKxN",
                        help="GEMM shape [default: 8x64x8]")
    parser.add_argument("--seed", default="0", help="stimulus seed [default: 0]")
    args = parser.parse_args(argv)
    config = refuse_modes(config_from_args(args), "python -m sim.tb_axi")
    try:
        m, k, n = parse_shape(args.gemm)
        config.check_gemm(m, k, n)
    except ValueError as e:
        raise UsageError(str(e)) from None
    seed = parse_seed(args.seed)
    ok, res, run_dir = run_soc(config, [SocCase(m, k, n, seed=seed)],
                               tests=("soc_timing",), seed=seed)
    if not ok:
        print(f"FAIL  see {run_dir}/sim.log")
        return 1
    t = res["soc_timing"]
    load, soc, eng = int(t["load"][0]), int(t["soc"][0]), int(t["engine"][0])
    words = load_cycles(config, m, k, n)
    print(f"PASS  {config.name}_axi  gemm {m}x{k}x{n}  seed={seed}")
    print(f"  load        {load} cycles (model {words}: one word per cycle, shared write port)")
    print(f"  engine      {eng} cycles (cnt_cycles, model {config.schedule.cycles(m, k, n)})")
    print(f"  START..C    {soc} cycles (model {soc_cycles(config, m, k, n)}; "
          f"{result_words(config, m, n)} C words)")
    bare = words + eng + result_words(config, m, n)
    total = load + soc
    print(f"  overhead    {total - bare} cycles over the bare engine's write-port load + "
          f"run + one C read per cycle ({bare}): {100 * (total - bare) / bare:.3f}%")
    return 0


if __name__ == "__main__":
    import sys
    from nmmx.flags import cli_main
    sys.exit(cli_main(main))
