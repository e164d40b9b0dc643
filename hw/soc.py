"""The engine behind SoC buses: AXI4-Lite registers, AXI4-Stream loads and result.

:class:`SocEngine` wraps any engine of a config (it uses only the host ports of
:func:`hw.engine.engine_signature`) with

* an AXI4-Lite slave (:class:`AxiLiteRegisters`) whose registers are the table of
  :func:`golden.regmap.register_map`: identification constants, shape, start, status,
  sticky errors, interrupt status, the engine's counters and the wrapper's own;
* one AXI4-Stream sink per operand buffer (:class:`StreamLoader`): each word's bank and
  address follow from its position in the stream and the shape registers, TLAST ends a
  load; the sinks share the engine's write port through a fixed-priority arbiter;
* an AXI4-Stream source for C (:class:`ResultStreamer`), started when the engine is done;
* ``irq``: ``CTRL.IRQ_EN & IRQ.DONE``.

Bad accesses: a write to a read-only register or any access to an unmapped address
answers SLVERR, increments ``BAD_ACCESS`` and changes nothing.  ``START`` while busy is
ignored and sets ``ERROR.START_BUSY``; ``START`` (or a load word) with M, K or N outside
``1..max`` sets ``ERROR.SHAPE`` and starts (writes) nothing.  A load whose TLAST is not
on the word its shape says is last sets ``ERROR.LOAD_LENGTH``.

Port names at the Verilog boundary are the AXI ones (``s_axil_awaddr``,
``s_axis_a_tdata``, ``m_axis_c_tvalid`` ...), so cocotbext-axi and vendor tools find the
buses by prefix.
"""

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from golden.pack import WrSel
from golden.regmap import (counter_regs, DATA_BITS, addr_bits, register_map, streams)
from .axil import OKAY, SLVERR, AxiLiteRegisters, axil_signature
from .engine import engine_signature
from .component import ConfigComponent

__all__ = ["SocEngine", "Phase", "AxiLiteRegisters", "StreamLoader", "ResultStreamer",
           "axil_signature", "axis_members", "write_layout", "OKAY", "SLVERR"]


class Phase(enum.Enum, shape=2):
    """What the wrapper is doing (``STATUS.BUSY`` is every phase but ``IDLE``)."""
    IDLE = 0    #: waiting for START; loads accepted
    START = 1   #: pulsing the engine's ``start``
    RUN = 2     #: the engine computes; loads held off (TREADY low)
    DRAIN = 3   #: C streams out; loads for the next GEMM accepted


def axis_members(prefix, tdata_bits, direction):
    """Flat AXI4-Stream members ``<prefix>_tdata/tvalid/tready/tlast`` of a sink
    (``direction="in"``) or a source (``"out"``)."""
    fwd, back = (In, Out) if direction == "in" else (Out, In)
    return {f"{prefix}_tdata": fwd(tdata_bits), f"{prefix}_tvalid": fwd(1),
            f"{prefix}_tready": back(1), f"{prefix}_tlast": fwd(1)}


def _beat(bits):
    return data.StructLayout({"data": bits, "last": 1})


def write_layout(config):
    """One request for the engine's write port: bank, address, data."""
    return data.StructLayout({"bank": config.wr_bank_bits, "addr": config.wr_addr_bits,
                              "data": config.wr_data_bits})


class StreamLoader(ConfigComponent):
    """AXI4-Stream sink of one operand buffer: word position -> bank and address.

    Words arrive in the order of :func:`golden.regmap.streams` (row or column major,
    then K group or block); bank = row (column) mod banks, address = (row div banks) *
    stride + inner index, as :func:`golden.pack.pack_operands` places them.  Only
    adders and comparators: the row ends after the word of the block that covers K.

    Parameters
    ----------
    config : golden.Config
    stream : golden.regmap.Stream
        A sink (``direction == "in"``).

    Members
    -------
    s : In(stream.Signature(data + last))
        The sink.
    outer : In(m_bits or n_bits)
        Rows (A) or columns (W) of the load: the M or N register.
    k : In(k_bits)
    enable : In(1)
        The buffers may be written (the engine does not read them).
    shape_ok : In(1)
        M, K and N are in range; otherwise words are accepted and dropped.
    wr : Out(stream.Signature(write_layout))
        Write request; ``ready`` is the arbiter's grant.
    loaded, length_error, shape_error : Out(1)
        One-cycle pulses: a load ended with TLAST on its last word; TLAST was not on
        the last word (the position restarts at 0); a word was dropped for its shape.
    """

    @classmethod
    def validate(cls, config, stream_=None, **kw):
        super().validate(config)
        if stream_ is None or stream_.direction != "in" or \
                stream_.buffer not in config.host_buffers:
            raise ValueError(f"StreamLoader needs a sink of this config, not {stream_!r}")

    def __init__(self, config, stream_):
        self._stream = stream_
        outer_bits = config.m_bits if stream_.buffer.startswith("a") else config.n_bits
        super().__init__(config, {
            "s": In(stream.Signature(_beat(stream_.tdata_bits))),
            "outer": In(outer_bits), "k": In(config.k_bits),
            "enable": In(1), "shape_ok": In(1),
            "wr": Out(stream.Signature(write_layout(config))),
            "loaded": Out(1), "length_error": Out(1), "shape_error": Out(1),
        })

    @property
    def stream(self):
        return self._stream

    def elaborate(self, platform):
        m = Module()
        c, st = self.config, self._stream
        banks, depth, width = c.host_buffers[st.buffer]
        is_data = st.buffer.endswith("_data")
        per_block = c.groups_per_block if is_data else 1
        stride = c.groups_max if is_data else c.blocks_max
        bs = c.block_size

        wib = Signal(range(max(per_block, 2)))          # word in block
        kend = Signal(range(c.kp_max + bs + 1), init=bs)  # K covered at the block's end
        inner = Signal(range(max(stride, 2)))
        bank = Signal(range(max(banks, 2)))
        base = Signal(range(depth + stride + 1))
        row = Signal(len(self.outer))

        fire = Signal()
        m.d.comb += [
            self.wr.valid.eq(self.s.valid & self.enable & self.shape_ok),
            self.s.ready.eq(self.enable & (self.wr.ready | ~self.shape_ok)),
            fire.eq(self.s.valid & self.s.ready),
            self.wr.payload.bank.eq(bank),
            self.wr.payload.addr.eq(base + inner),
            self.wr.payload.data.eq(self.s.payload.data[:width]),
        ]
        block_end = wib == per_block - 1
        row_end = block_end & (kend >= self.k)
        last = row_end & (row == self.outer - 1)
        tlast = self.s.payload.last
        restart = [wib.eq(0), kend.eq(bs), inner.eq(0), bank.eq(0), base.eq(0), row.eq(0)]
        with m.If(fire):
            with m.If(~self.shape_ok):
                m.d.comb += self.shape_error.eq(1)
            with m.Elif(tlast | last):
                m.d.sync += restart
                m.d.comb += [self.loaded.eq(tlast & last),
                             self.length_error.eq(tlast ^ last)]
            with m.Elif(row_end):
                m.d.sync += [wib.eq(0), kend.eq(bs), inner.eq(0), row.eq(row + 1)]
                with m.If(bank == banks - 1):
                    m.d.sync += [bank.eq(0), base.eq(base + stride)]
                with m.Else():
                    m.d.sync += bank.eq(bank + 1)
            with m.Else():
                m.d.sync += inner.eq(inner + 1)
                with m.If(block_end):
                    m.d.sync += [wib.eq(0), kend.eq(kend + bs)]
                with m.Else():
                    m.d.sync += wib.eq(wib + 1)
        return m


class ResultStreamer(ConfigComponent):
    """AXI4-Stream source of C: reads the C buffer through ``rd_addr``/``rd_data``.

    Words: row i = 0..m-1, then column tile t = 0..ceil(n/C)-1 (address i * n_tiles_max
    + t); lanes of columns >= n are 0; TLAST on the last word.  Reads are issued only
    while the 3-word FIFO has room for them, so TREADY may fall at any time; with TREADY
    high one word leaves per cycle, the first :data:`golden.regmap.RESULT_LATENCY`
    cycles after ``start``.

    Members
    -------
    start : In(1)
        Pulse: stream the result of shape ``m`` x ``n`` (sampled now).
    m : In(m_bits), n : In(n_bits)
    rd_addr : Out(rd_addr_bits), rd_data : In(c_word_bits)
        The engine's C read port (data one cycle after the address).
    c : Out(stream.Signature(data + last))
    active : Out(1)
        Words remain to be sent.
    finished : Out(1)
        One-cycle pulse: the last word's handshake.
    """

    #: Words the output FIFO holds.
    FIFO_DEPTH = 3

    def __init__(self, config):
        super().__init__(config, {
            "start": In(1), "m": In(config.m_bits), "n": In(config.n_bits),
            "rd_addr": Out(config.rd_addr_bits), "rd_data": In(config.c_word_bits),
            "c": Out(stream.Signature(_beat(config.c_word_bits))),
            "active": Out(1), "finished": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        C, lane = c.cols, c.acc_bits
        m.submodules.fifo = fifo = SyncFIFO(width=c.c_word_bits + 1, depth=self.FIFO_DEPTH)

        m_r, n_r = Signal.like(self.m), Signal.like(self.n)
        issuing = Signal()
        row = Signal.like(self.m)
        jbase = Signal(range(c.n_max + C + 1))
        addr = Signal(c.rd_addr_bits)
        row_addr = Signal(c.rd_addr_bits)
        inflight = Signal()
        in_mask = Signal(C)
        in_last = Signal()

        row_end = jbase + C >= n_r
        last = row_end & (row == m_r - 1)
        room = fifo.level + inflight < self.FIFO_DEPTH
        issue = Signal()
        m.d.comb += [issue.eq(issuing & room), self.rd_addr.eq(addr)]
        m.d.sync += [inflight.eq(issue)]
        with m.If(issue):
            m.d.sync += [in_mask.eq(Cat(*(jbase + j < n_r for j in range(C)))),
                         in_last.eq(last)]
            with m.If(last):
                m.d.sync += issuing.eq(0)
            with m.Elif(row_end):
                m.d.sync += [row.eq(row + 1), jbase.eq(0),
                             addr.eq(row_addr + c.n_tiles_max),
                             row_addr.eq(row_addr + c.n_tiles_max)]
            with m.Else():
                m.d.sync += [jbase.eq(jbase + C), addr.eq(addr + 1)]
        with m.If(self.start):
            m.d.sync += [issuing.eq(1), m_r.eq(self.m), n_r.eq(self.n), row.eq(0),
                         jbase.eq(0), addr.eq(0), row_addr.eq(0)]

        masked = Cat(*(Mux(in_mask[j], self.rd_data[j * lane:(j + 1) * lane], 0)
                       for j in range(C)))
        m.d.comb += [
            fifo.w_en.eq(inflight), fifo.w_data.eq(Cat(masked, in_last)),
            self.c.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.c.ready),
            self.c.payload.data.eq(fifo.r_data[:c.c_word_bits]),
            self.c.payload.last.eq(fifo.r_data[c.c_word_bits]),
            self.finished.eq(self.c.valid & self.c.ready & self.c.payload.last),
            self.active.eq(issuing | inflight | fifo.r_rdy),
        ]
        return m


class SocEngine(ConfigComponent):
    """An engine with AXI4-Lite control and AXI4-Stream data (the ``--bus axi`` top).

    Parameters
    ----------
    config : golden.Config
    engine : wiring.Component
        The engine to wrap (an engine of ``config``, e.g. ``hw.engine.Engine``); only
        its host ports (:func:`hw.engine.engine_signature`) are used.
    regs : tuple of golden.regmap.Register, optional
        The register map (default :func:`golden.regmap.register_map` of ``config``);
        the generator passes the one it also writes to the manifest and C header.

    Members
    -------
    s_axil_* : the AXI4-Lite slave (:func:`axil_signature`).
    irq : Out(1)
        ``CTRL.IRQ_EN & IRQ.DONE`` (level, cleared by writing 1 to ``IRQ.DONE``).
    s_axis_<name>_* : sinks of :func:`golden.regmap.streams` (TDATA, TVALID, TREADY,
        TLAST).
    m_axis_c_* : the C source.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    ValueError
        ``engine`` lacks the host ports of ``config``.
    """

    @classmethod
    def validate(cls, config, engine=None, regs=None, **kw):
        super().validate(config)
        want = engine_signature(config).members
        got = getattr(getattr(engine, "signature", None), "members", None)
        if got is None or any(name not in got or got[name] != want[name] for name in want):
            raise ValueError(f"SocEngine needs an engine with the host ports of this "
                             f"config, not {engine!r}")

    def __init__(self, config, engine, regs=None, *, pe_module=None):
        self._engine = engine
        self._regs = register_map(config) if regs is None else tuple(regs)
        self._streams = streams(config)
        members = {f"s_axil_{k}": v for k, v in
                   axil_signature(addr_bits(self._regs)).members.items()}
        members["irq"] = Out(1)
        for s in self._streams:
            members.update(axis_members(s.prefix, s.tdata_bits, s.direction))
        super().__init__(config, members)

    @property
    def engine(self):
        return self._engine

    @property
    def regs(self):
        return self._regs

    @property
    def streams(self):
        return self._streams

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = self._engine
        m.submodules.regs = regs = AxiLiteRegisters(self._regs)
        m.submodules.result = ResultStreamer(self.config)
        for name, member in axil_signature(addr_bits(self._regs)).members.items():
            pin, sub = getattr(self, f"s_axil_{name}"), getattr(regs.bus, name)
            m.d.comb += (sub.eq(pin) if member.flow == In else pin.eq(sub))
        run = self._run_control(m)
        self._result_stream(m, run)
        loads = self._load_streams(m, run)
        self._status(m, run, loads)
        self._errors_and_irq(m, run, loads)
        self._counters(m, run)
        return m

    def _reg(self, name):
        return next(r for r in self._regs if r.name == name)

    def _run_control(self, m):
        """The shape registers, the START decode and the IDLE/START/RUN/DRAIN phase
        (latency: the engine's ``start`` follows a GO write by 2 cycles)."""
        cfg, regs = self.config, m.submodules.regs
        eng, res = self._engine, m.submodules.result
        run = SimpleNamespace(
            shape={"m": regs.m[:cfg.m_bits], "k": regs.k[:cfg.k_bits],
                   "n": regs.n[:cfg.n_bits]},
            shape_ok=Signal(), idle=Signal(), loadable=Signal(), done_set=Signal(),
            err_shape=Signal(name="err_shape"), err_busy=Signal(name="err_start_busy"))
        sh = run.shape
        m.d.comb += run.shape_ok.eq((sh["m"] >= 1) & (sh["m"] <= cfg.m_max)
                                    & (sh["k"] >= 1) & (sh["k"] <= cfg.k_max)
                                    & (sh["n"] >= 1) & (sh["n"] <= cfg.n_max))
        run.regs = {key: Signal(len(v), name=f"run_{key}") for key, v in sh.items()}
        go = regs.stb_start & regs.w_start[self._reg("START").field("GO").lsb]
        m.d.comb += [eng.m.eq(run.regs["m"]), eng.k.eq(run.regs["k"]),
                     eng.n.eq(run.regs["n"])]
        state = Signal(Phase, name="phase")
        with m.If(state == Phase.IDLE):
            m.d.comb += [run.idle.eq(1), run.loadable.eq(1)]
            with m.If(go & run.shape_ok):
                m.d.sync += [run.regs[k].eq(v) for k, v in sh.items()]
                m.d.sync += state.eq(Phase.START)
            with m.Elif(go):
                m.d.comb += run.err_shape.eq(1)
        with m.Elif(state == Phase.START):
            m.d.comb += eng.start.eq(1)
            m.d.sync += state.eq(Phase.RUN)
        with m.Elif(state == Phase.RUN):
            with m.If(eng.done & ~eng.busy):
                m.d.comb += res.start.eq(1)
                m.d.sync += state.eq(Phase.DRAIN)
        with m.Else():
            # DRAIN: the engine no longer reads its operand buffers, so the next loads
            # may go while C streams out.
            m.d.comb += run.loadable.eq(1)
            with m.If(res.finished):
                m.d.comb += run.done_set.eq(1)
                m.d.sync += state.eq(Phase.IDLE)
        with m.If(go & ~run.idle):
            m.d.comb += run.err_busy.eq(1)
        return run

    def _result_stream(self, m, run):
        """C from the engine's read port to the AXI4-Stream source."""
        eng, res = self._engine, m.submodules.result
        m.d.comb += [res.m.eq(run.regs["m"]), res.n.eq(run.regs["n"]),
                     eng.rd_addr.eq(res.rd_addr), res.rd_data.eq(eng.rd_data),
                     self.m_axis_c_tdata.eq(res.c.payload.data),
                     self.m_axis_c_tlast.eq(res.c.payload.last),
                     self.m_axis_c_tvalid.eq(res.c.valid),
                     res.c.ready.eq(self.m_axis_c_tready)]

    def _load_streams(self, m, run):
        """One :class:`StreamLoader` per sink, arbitrated onto the engine's one write
        port (first sink first); returns the loaders by stream name."""
        eng, loads, prior = self._engine, {}, Const(0, 1)
        for s in self._streams:
            if s.direction != "in":
                continue
            ld = loads[s.name] = StreamLoader(self.config, s)
            m.submodules[f"load_{s.name}"] = ld
            m.d.comb += [
                ld.s.valid.eq(getattr(self, f"{s.prefix}_tvalid")),
                ld.s.payload.data.eq(getattr(self, f"{s.prefix}_tdata")),
                ld.s.payload.last.eq(getattr(self, f"{s.prefix}_tlast")),
                getattr(self, f"{s.prefix}_tready").eq(ld.s.ready),
                ld.outer.eq(run.shape["m"] if s.buffer.startswith("a") else run.shape["n"]),
                ld.k.eq(run.shape["k"]), ld.enable.eq(run.loadable),
                ld.shape_ok.eq(run.shape_ok), ld.wr.ready.eq(~prior),
            ]
            with m.If(ld.wr.valid & ~prior):
                m.d.comb += [eng.wr_en.eq(1), eng.wr_sel.eq(WrSel.of(s.buffer)),
                             eng.wr_bank.eq(ld.wr.payload.bank),
                             eng.wr_addr.eq(ld.wr.payload.addr),
                             eng.wr_data.eq(ld.wr.payload.data)]
            prior = prior | ld.wr.valid
        return loads

    def _status(self, m, run, loads):
        """The STATUS register: busy, result streaming, done and the loaded flags."""
        regs, res, status = m.submodules.regs, m.submodules.result, self._reg("STATUS")
        st_bits = Signal(DATA_BITS, name="status_bits")
        m.d.comb += [st_bits[status.field("BUSY").lsb].eq(~run.idle),
                     st_bits[status.field("RESULT").lsb].eq(res.active)]
        done_flag = Signal(name="done_flag")
        with m.If(run.done_set):
            m.d.sync += done_flag.eq(1)
        with m.Elif(self._engine.start):
            m.d.sync += done_flag.eq(0)
        m.d.comb += st_bits[status.field("DONE").lsb].eq(done_flag)
        for name, ld in loads.items():
            bit = Signal(name=f"loaded_{name}")
            with m.If(ld.loaded):
                m.d.sync += bit.eq(1)
            m.d.comb += st_bits[status.field(f"{name.upper()}_LOADED").lsb].eq(bit)
        m.d.comb += regs.r_status.eq(st_bits)

    def _errors_and_irq(self, m, run, loads):
        """The sticky ERROR flags and the completion interrupt."""
        regs, irq = m.submodules.regs, self._reg("IRQ")
        flags = {"START_BUSY": run.err_busy,
                 "SHAPE": run.err_shape | Cat(*(ld.shape_error for ld in loads.values())).any(),
                 "LOAD_LENGTH": Cat(*(ld.length_error for ld in loads.values())).any()}
        bits = [Const(0, 1)] * DATA_BITS
        for f in self._reg("ERROR").fields:
            bits[f.lsb] = flags[f.name]
        m.d.comb += [regs.set_error.eq(Cat(*bits)),
                     regs.set_irq.eq(run.done_set << irq.field("DONE").lsb),
                     self.irq.eq(regs.ctrl[self._reg("CTRL").field("IRQ_EN").lsb]
                                 & regs.irq[irq.field("DONE").lsb])]

    def _counters(self, m, run):
        """The engine's counters as LO/HI register pairs, the GEMM and bad-access counts."""
        regs = m.submodules.regs
        for stem, (_offset, port) in counter_regs(self._engine.config).items():
            value = getattr(self._engine, port)
            m.d.comb += [getattr(regs, f"r_{stem.lower()}_lo").eq(value[:DATA_BITS]),
                         getattr(regs, f"r_{stem.lower()}_hi").eq(value[DATA_BITS:])]
        gemms = Signal(DATA_BITS, name="gemms")
        bad = Signal(DATA_BITS, name="bad_access")
        with m.If(run.done_set):
            m.d.sync += gemms.eq(gemms + 1)
        with m.If(regs.bad_access):
            m.d.sync += bad.eq(bad + 1)
        m.d.comb += [regs.r_gemms.eq(gemms), regs.r_bad_access.eq(bad)]
