"""The generated top: buffers, skew, tiling controller, drain and performance counters.

The host interface (ports, buffers, write-port decode, C read, counters) is shared with
the weight-stationary :class:`hw.ws.WSEngine` through :class:`EngineBase`.
"""

from amaranth import Module, Signal, Mux, Cat, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.pack import WrSel
from .array import Array
from .pe import ConfigComponent, control_layout

__all__ = ["Engine", "EngineBase", "engine_signature", "host_buffers", "skew_chain",
           "COUNTERS"]

#: The performance counter ports, in port order.
COUNTERS = ("cnt_cycles", "cnt_issued", "cnt_stall", "cnt_tiles")


def engine_signature(config):
    """The host ports every engine of ``config`` has, whatever its dataflow (see
    :class:`Engine` for their meaning)."""
    members = {
        "wr_en": In(1),
        "wr_sel": In(WrSel),
        "wr_bank": In(config.wr_bank_bits),
        "wr_addr": In(config.wr_addr_bits),
        "wr_data": In(config.wr_data_bits),
        "rd_addr": In(config.rd_addr_bits),
        "rd_data": Out(config.c_word_bits),
        "start": In(1),
        "m": In(config.m_bits),
        "k": In(config.k_bits),
        "n": In(config.n_bits),
        "busy": Out(1),
        "done": Out(1),
    }
    members.update({name: Out(config.counter_bits) for name in COUNTERS})
    return wiring.Signature(members)


def host_buffers(config):
    """The buffers the host writes (and C, which it reads): name -> (banks, depth, word
    bits), in the order the engines build them."""
    out = {"a_data": (config.rows, config.a_data_depth, config.a_group_bits),
           "w_data": (config.cols, config.w_data_depth, config.w_group_bits)}
    if config.scaled:
        out["a_scale"] = (config.rows, config.a_scale_depth, config.scale_bits)
        out["w_scale"] = (config.cols, config.w_scale_depth, config.scale_bits)
    out["c"] = (config.cols, config.c_depth, config.acc_bits)
    return out


def skew_chain(m, first, count, name):
    """Yield ``first`` and then ``count - 1`` registered copies of it, each one cycle later
    than the one before (named ``<name>_1`` ...): the stage of array row or column i."""
    stage = first
    for i in range(count):
        if i:
            nxt = Signal(stage.shape(), name=f"{name}_{i}")
            m.d.sync += nxt.eq(stage)
            stage = nxt
        yield stage


class EngineBase(ConfigComponent):
    """Host interface shared by the engines of both dataflows: the ports of
    :func:`engine_signature`, the buffers of :func:`host_buffers` and builders for the
    buffer memories, the C lanes and the performance counters, used by a subclass's
    ``elaborate``.

    Parameters
    ----------
    config : golden.Config
    pe_module : str or None
        Build the array from references to a separately emitted PE module of this name
        (what the generator does) instead of full PEs.

    Members
    -------
    See :class:`Engine`.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    """

    def __init__(self, config, *, pe_module=None):
        self._pe_module = pe_module
        super().__init__(config, engine_signature(config))

    def buffers(self):
        """Describe the on-chip buffers: name -> (banks, depth, word bits)."""
        return host_buffers(self.config)

    def operand_memories(self, m):
        """Add one memory per bank of every operand buffer, written through the shared
        write port; return the lists of the banks' read ports (latency 1) of ``a_data``,
        ``w_data``, ``a_scale`` and ``w_scale`` (the last two ``None`` for ``int8``)."""
        ports = {"a_scale": None, "w_scale": None}
        for name, (banks, depth, width) in host_buffers(self.config).items():
            if name == "c":
                continue
            ports[name] = []
            for b in range(banks):
                mem = Memory(shape=unsigned(width), depth=depth, init=[])
                m.submodules[f"{name}_{b}"] = mem
                wp = mem.write_port()
                m.d.comb += [
                    wp.en.eq(self.wr_en & (self.wr_sel == WrSel.of(name))
                             & (self.wr_bank == b)),
                    wp.addr.eq(self.wr_addr),
                    wp.data.eq(self.wr_data),
                ]
                ports[name].append(mem.read_port())
        return ports["a_data"], ports["w_data"], ports["a_scale"], ports["w_scale"]

    def c_lane(self, m, c, en, addr, value):
        """Add lane ``c``'s C memory, written with ``value`` at ``addr`` when ``en``;
        return its data as read at ``rd_addr`` (one cycle later)."""
        mem = Memory(shape=unsigned(self.config.acc_bits), depth=self.config.c_depth,
                     init=[])
        m.submodules[f"c_{c}"] = mem
        wp = mem.write_port()
        m.d.comb += [wp.en.eq(en), wp.addr.eq(addr), wp.data.eq(value)]
        rp = mem.read_port()
        m.d.comb += rp.addr.eq(self.rd_addr)
        return rp.data

    def status(self, m):
        """Add the ``busy`` and ``done`` registers driving the ports of the same name;
        return them."""
        busy, done = Signal(name="busy"), Signal(name="done")
        m.d.comb += [self.busy.eq(busy), self.done.eq(done)]
        return busy, done

    def counters(self, m, busy, issue):
        """Add the performance counters: cycles and stalls (busy without ``issue``) count
        here; the caller counts issued slots and tiles.  Return name -> register, in
        :data:`COUNTERS` order; the caller clears them on ``start``."""
        regs = {name: Signal(self.config.counter_bits, name=name) for name in COUNTERS}
        m.d.comb += [getattr(self, name).eq(reg) for name, reg in regs.items()]
        with m.If(busy):
            m.d.sync += regs["cnt_cycles"].eq(regs["cnt_cycles"] + 1)
            with m.If(~issue):
                m.d.sync += regs["cnt_stall"].eq(regs["cnt_stall"] + 1)
        return regs


class Engine(EngineBase):
    """Self-contained N:M-sparse MX GEMM engine (output stationary), the generated top.

    The host fills the A, A-scale, W and W-scale buffers through the write port
    (layouts in ``docs/architecture.md`` and the manifest, produced by
    :func:`golden.pack.pack_operands`), pulses ``start`` with the run-time shape and
    waits for ``done``; it then reads C through ``rd_addr``/``rd_data``.  Between
    ``start`` and ``done`` the controller walks the ceil(m/R) x ceil(n/C) output tiles
    (tile rows outer, tile columns inner) and issues one group per cycle; the next
    tile's groups follow the previous tile's last group directly, unless a tile has
    fewer than R groups, in which case tiles start R cycles apart (the drain period).

    Parameters
    ----------
    config : golden.Config
    pe_module : str or None
        Build the array from references to a separately emitted PE module of this name
        (see :class:`hw.pe.PEInstance`; what the generator does) instead of full PEs.

    Members
    -------
    wr_en, wr_sel, wr_bank, wr_addr, wr_data : In
        Buffer write port: one word per cycle into bank ``wr_bank`` of buffer
        ``wr_sel`` (:class:`golden.pack.WrSel`).  Writes to the scale buffers of an ``int8`` engine
        are ignored.  Do not write while ``busy``.
    rd_addr : In(config.rd_addr_bits)
        C buffer word address.
    rd_data : Out(config.c_word_bits)
        C buffer word (lane c at bits [32c, 32c+32)), one cycle after ``rd_addr``.
    start : In(1)
        Pulse (ignored while ``busy``): run the GEMM of shape ``m`` x ``k`` x ``n``.
    m, k, n : In
        Run-time shape, 1 <= m <= m_max, 1 <= k <= k_max, 1 <= n <= n_max (other
        values give undefined results).
    busy : Out(1)
        High from the cycle after ``start`` until the last C word is written.
    done : Out(1)
        High from completion until the next ``start``.
    cnt_cycles, cnt_issued, cnt_stall, cnt_tiles : Out(config.counter_bits)
        Busy cycles, multiplier slots issued with valid operands, busy cycles without
        an issued group, tiles processed.  Valid while ``done``.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.

    Timing is exactly ``config.cycles(m, k, n)`` busy cycles (see the timing section
    of :class:`golden.Config`).
    """

    def elaborate(self, platform):
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        Gmax, Bmax, NTmax = cfg.groups_max, cfg.blocks_max, cfg.n_tiles_max
        gpb, bs = cfg.groups_per_block, cfg.block_size
        m = Module()
        m.submodules.array = array = Array(cfg, pe_module=self._pe_module)

        # -- buffers: one memory per bank, written through the shared write port -------
        a_rd, w_rd, as_rd, ws_rd = self.operand_memories(m)

        # -- controller state ------------------------------------------------------------
        busy, done = self.status(m)
        m_r = Signal(cfg.m_bits)
        k_r = Signal(cfg.k_bits)
        n_r = Signal(cfg.n_bits)
        i0 = Signal(range(cfg.m_max + R + 1))       # first row of the current tile
        j0 = Signal(range(cfg.n_max + C + 1))       # first column of the current tile
        a_base = Signal(range(cfg.a_data_depth + Gmax + 1))
        w_base = Signal(range(cfg.w_data_depth + Gmax + 1))
        as_base = Signal(range(cfg.m_tiles_max * Bmax + Bmax + 1))
        ws_base = Signal(range(cfg.n_tiles_max * Bmax + Bmax + 1))
        row_cbase = Signal(range((cfg.m_max + R) * NTmax + 1))   # i0 * NTmax
        c_base = Signal.like(row_cbase)                          # i0 * NTmax + j0 / C
        g = Signal(range(Gmax + 1))       # group of the tile
        gb = Signal(range(gpb + 1))       # group inside the block
        b = Signal(range(Bmax + 1))       # block of the tile
        kb = Signal(range(cfg.kp_max + 1))  # K index of the block's first element
        p = Signal(range(max(Gmax, R) + 1))   # cycles since the tile's first group
        waiting = Signal()                # tile issued, waiting out the R-cycle period
        flushing = Signal()               # every tile issued, draining
        issue = Signal()
        m.d.comb += issue.eq(busy & ~waiting & ~flushing)
        cnt = self.counters(m, busy, issue)
        cnt_issued, cnt_tiles = cnt["cnt_issued"], cnt["cnt_tiles"]
        block_last = Signal()
        last_g = Signal()
        m.d.comb += [block_last.eq(gb == gpb - 1),
                     last_g.eq(block_last & (kb + bs >= k_r))]
        rows_left = Signal(range(cfg.m_max + 1))
        cols_left = Signal(range(cfg.n_max + 1))
        rv = Signal(range(R + 1))
        cv = Signal(range(C + 1))
        m.d.comb += [
            rows_left.eq(m_r - i0), cols_left.eq(n_r - j0),
            rv.eq(Mux(rows_left >= R, R, rows_left)),
            cv.eq(Mux(cols_left >= C, C, cols_left)),
        ]
        last_tile = Signal()
        m.d.comb += last_tile.eq((i0 + R >= m_r) & (j0 + C >= n_r))

        # -- tile information handed from the issue side to the drain side -------------
        info_layout = data.StructLayout({
            "c_base": unsigned(len(c_base)), "rv": unsigned(len(rv)),
            "cv": unsigned(len(cv)), "last": 1})
        depth = cfg.tile_fifo_depth
        fifo = [Signal(info_layout, name=f"tile_info_{x}") for x in range(depth)]
        wr_ptr = Signal(range(depth))
        rd_ptr = Signal(range(depth))

        def next_tile():
            m.d.sync += [p.eq(0), waiting.eq(0)]
            with m.If(last_tile):
                m.d.sync += flushing.eq(1)
            with m.Elif(j0 + C < n_r):
                m.d.sync += [j0.eq(j0 + C), w_base.eq(w_base + Gmax),
                             ws_base.eq(ws_base + Bmax), c_base.eq(c_base + 1)]
            with m.Else():
                m.d.sync += [j0.eq(0), w_base.eq(0), ws_base.eq(0), i0.eq(i0 + R),
                             a_base.eq(a_base + Gmax), as_base.eq(as_base + Bmax),
                             row_cbase.eq(row_cbase + R * NTmax),
                             c_base.eq(row_cbase + R * NTmax)]

        with m.If(issue):
            m.d.sync += [cnt_issued.eq(cnt_issued + rv * cv * cfg.n_keep), p.eq(p + 1)]
            with m.If(last_g):
                m.d.sync += [g.eq(0), gb.eq(0), b.eq(0), kb.eq(0),
                             cnt_tiles.eq(cnt_tiles + 1),
                             wr_ptr.eq(wr_ptr + 1)]
                for x in range(depth):
                    with m.If(wr_ptr == x):
                        m.d.sync += [fifo[x].c_base.eq(c_base), fifo[x].rv.eq(rv),
                                     fifo[x].cv.eq(cv), fifo[x].last.eq(last_tile)]
                with m.If(p + 1 < R):
                    m.d.sync += waiting.eq(1)
                with m.Else():
                    next_tile()
            with m.Else():
                m.d.sync += [g.eq(g + 1), gb.eq(Mux(block_last, 0, gb + 1))]
                with m.If(block_last):
                    m.d.sync += [b.eq(b + 1), kb.eq(kb + bs)]
        with m.Elif(busy & waiting):
            m.d.sync += p.eq(p + 1)
            with m.If(p == R - 1):
                next_tile()

        with m.If(self.start & ~busy):
            m.d.sync += [
                busy.eq(1), done.eq(0), waiting.eq(0), flushing.eq(0),
                m_r.eq(self.m), k_r.eq(self.k), n_r.eq(self.n),
                i0.eq(0), j0.eq(0), a_base.eq(0), w_base.eq(0), as_base.eq(0),
                ws_base.eq(0), row_cbase.eq(0), c_base.eq(0),
                g.eq(0), gb.eq(0), b.eq(0), kb.eq(0), p.eq(0),
                *(reg.eq(0) for reg in cnt.values()),
            ]

        # -- skew: register chains on the read addresses (rows down, columns across) ----
        row_stage = data.StructLayout({
            "a_addr": unsigned(len(a_base)), "as_addr": unsigned(len(as_base)),
            "ctl": control_layout})
        col_stage = data.StructLayout({
            "w_addr": unsigned(len(w_base)), "ws_addr": unsigned(len(ws_base))})
        row0 = Signal(row_stage)
        col0 = Signal(col_stage)
        m.d.comb += [
            row0.a_addr.eq(a_base + g), row0.as_addr.eq(as_base + b),
            row0.ctl.valid.eq(issue), row0.ctl.tfirst.eq(g == 0),
            row0.ctl.bfirst.eq(gb == 0), row0.ctl.blast.eq(block_last),
            row0.ctl.tlast.eq(last_g),
            col0.w_addr.eq(w_base + g), col0.ws_addr.eq(ws_base + b),
        ]
        for r, stage in enumerate(skew_chain(m, row0, R, "row_skew")):
            m.d.comb += a_rd[r].addr.eq(stage.a_addr)
            m.d.comb += array.a[r].eq(a_rd[r].data)
            if cfg.scaled:
                m.d.comb += [as_rd[r].addr.eq(stage.as_addr),
                             array.a_scale[r].eq(as_rd[r].data)]
            # The control waits one cycle for the synchronous buffer read.
            ctl = Signal(control_layout, name=f"row_ctl_{r}")
            m.d.sync += ctl.eq(stage.ctl)
            m.d.comb += array.ctl[r].eq(ctl)
        for c, stage in enumerate(skew_chain(m, col0, C, "col_skew")):
            m.d.comb += [w_rd[c].addr.eq(stage.w_addr), array.w[c].eq(w_rd[c].data)]
            if cfg.scaled:
                m.d.comb += [ws_rd[c].addr.eq(stage.ws_addr),
                             array.w_scale[c].eq(ws_rd[c].data)]

        # -- drain: column 0's chain load starts a write stream, skewed across lanes ----
        em_active = Signal()
        em_row = Signal(range(max(R, 2)))
        em_addr = Signal(len(c_base) + 1)
        em_rv = Signal.like(rv)
        em_cv = Signal.like(cv)
        em_last = Signal()
        head = Signal(info_layout)
        m.d.comb += head.eq(Cat(*(f.as_value() for f in fifo))
                            .word_select(rd_ptr, info_layout.size))
        with m.If(array.drain_load[0]):
            m.d.sync += [em_active.eq(1), em_row.eq(R - 1),
                         em_addr.eq(head.c_base + (R - 1) * NTmax),
                         em_rv.eq(head.rv), em_cv.eq(head.cv), em_last.eq(head.last),
                         rd_ptr.eq(rd_ptr + 1)]
        with m.Elif(em_active):
            m.d.sync += [em_row.eq(em_row - 1), em_addr.eq(em_addr - NTmax)]
            with m.If(em_row == 0):
                m.d.sync += em_active.eq(0)

        lane_stage = data.StructLayout({
            "we": 1, "addr": unsigned(cfg.rd_addr_bits), "cv": unsigned(len(cv)), "fin": 1})
        lane0 = Signal(lane_stage)
        m.d.comb += [
            lane0.we.eq(em_active & (em_row < em_rv)),
            lane0.addr.eq(em_addr),
            lane0.cv.eq(em_cv),
            lane0.fin.eq(em_active & em_last & (em_row == 0)),
        ]
        lanes = list(skew_chain(m, lane0, C, "lane_skew"))
        c_rd = [self.c_lane(m, c, stage.we & (stage.cv > c), stage.addr, array.drain_data[c])
                for c, stage in enumerate(lanes)]
        m.d.comb += self.rd_data.eq(Cat(*c_rd))

        # The last lane writes the last row of the last tile: the GEMM is complete.
        last_lane = lanes[-1]
        with m.If(last_lane.fin):
            m.d.sync += [busy.eq(0), done.eq(1), flushing.eq(0)]
        return m
