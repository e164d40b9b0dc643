"""The output-stationary engine, the generated top: buffers, skew, tile controller, drain
and performance counters, built from named parts on the shared host interface and run
control of :mod:`hw.host` (re-exported here).
"""

from types import SimpleNamespace

from amaranth import Module, Signal, Mux, Cat, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from golden.pack import WrSel, word_layouts
from golden.skip import zero_code_mask
from .array import Array
from .component import ConfigComponent
from .host import EngineBase, RunControl, engine_signature, host_buffers, skew_chain
from .pe import any_of, control_layout

__all__ = ["Engine", "EngineBase", "RunControl", "engine_signature", "host_buffers",
           "skew_chain"]


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
        ``wr_sel`` (:class:`golden.pack.WrSel`).  Writes to the scale buffers of an
        ``int8`` engine are ignored.  Do not write while ``busy``.
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
    cnt_rd_a, cnt_rd_w, cnt_rd_as, cnt_rd_ws, cnt_wr_c : Out(config.counter_bits)
        Word accesses of the buffers during the run (:mod:`golden.counters`; no scale
        counters for ``int8``): a bank read counts in the cycle its skewed stage is
        valid (scale words once per block, at its first group), a C write when a lane
        writes.  Valid while ``done``; they equal
        ``config.schedule.buffer_accesses(m, k, n)``.

    mode : In(config.mode_enum)
        Unified engines only (``config.unified``): the mode of the GEMM, registered with
        the shape at ``start`` (other values than the modes run as mode 0).

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.

    Timing is exactly ``config.schedule.cycles(m, k, n)`` busy cycles (see the timing section
    of :class:`golden.Config`); a unified engine's is ``config.schedule.cycles(m, k, n,
    mode)`` (:class:`golden.schedule.ModesSchedule`).
    """

    def __init__(self, config, *, pe_module=None):
        self._pe_module = pe_module
        signature = engine_signature(config)
        if config.unified:
            # The mode input joins the shape; nothing else of the interface changes.
            members = dict(signature.members.items())
            members["mode"] = In(config.mode_enum)
            signature = wiring.Signature(members)
        ConfigComponent.__init__(self, config, signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = Array(self._config, pe_module=self._pe_module)
        ports = self.operand_memories(m)
        rc = self.run_control(m)
        t = self._tile_state(m, rc)
        self._tile_controller(m, rc, t)
        if self._config.tile_skip:
            self._tile_skip(m, rc, t)
        self._skew(m, rc, t, array, *ports)
        if self._config.unified:
            m.d.comb += array.mode.eq(t.mode_r)
        last_lane = self._drain(m, rc, t, array)
        # The last lane writes the last row of the last tile: the GEMM is complete.
        rc.complete(last_lane.fin, t.flushing.eq(0))
        return m

    def _tile_state(self, m, rc):
        """The tile controller's registers and the values derived from them; adds the
        counters (``rc.count``).  Returns them as a namespace."""
        cfg = self._config
        R, C, Gmax, Bmax = cfg.rows, cfg.cols, cfg.groups_max, cfg.blocks_max
        NTmax = cfg.n_tiles_max
        t = SimpleNamespace()
        t.m_r, t.k_r, t.n_r = (Signal(cfg.m_bits, name="m_r"), Signal(cfg.k_bits, name="k_r"),
                               Signal(cfg.n_bits, name="n_r"))
        t.i0 = Signal(range(cfg.m_max + R + 1), name="i0")     # first row of the tile
        t.j0 = Signal(range(cfg.n_max + C + 1), name="j0")     # first column of the tile
        t.a_base = Signal(range(cfg.a_data_depth + Gmax + 1), name="a_base")
        t.w_base = Signal(range(cfg.w_data_depth + Gmax + 1), name="w_base")
        t.as_base = Signal(range(cfg.m_tiles_max * Bmax + Bmax + 1), name="as_base")
        t.ws_base = Signal(range(cfg.n_tiles_max * Bmax + Bmax + 1), name="ws_base")
        t.row_cbase = Signal(range((cfg.m_max + R) * NTmax + 1), name="row_cbase")  # i0*NTmax
        t.c_base = Signal.like(t.row_cbase, name="c_base")      # i0 * NTmax + j0 / C
        t.g = Signal(range(Gmax + 1), name="g")                 # group of the tile
        gpb = [cfg.mode(x).groups_per_block for x in cfg.all_modes]
        t.gb = Signal(range(max(gpb) + 1), name="gb")           # group in the block
        t.b = Signal(range(Bmax + 1), name="b")                 # block of the tile
        t.kb = Signal(range(cfg.kp_max + 1), name="kb")         # K of the block's start
        t.p = Signal(range(max(Gmax, R) + 1), name="p")         # cycles since the tile began
        t.waiting = Signal(name="waiting")    # tile issued, waiting out the R-cycle period
        t.flushing = Signal(name="flushing")  # every tile issued, draining
        t.issue = Signal(name="issue")
        if not cfg.tile_skip:
            m.d.comb += t.issue.eq(rc.busy & ~t.waiting & ~t.flushing)
        block_last = t.gb == cfg.groups_per_block - 1
        if cfg.tile_skip:
            # The tile's weight tile is all zero (driven by _tile_skip): its one group is
            # the block's and the tile's last, and the counters do not count it.
            t.jt = Signal(range(NTmax), name="jt")      # column tile, j0 / C
            t.skip = Signal(name="tile_skip")
            block_last = block_last | t.skip
            rc.count(t.issue & ~t.skip)
        else:
            rc.count(t.issue)
        t.block_last, t.last_g = Signal(name="block_last"), Signal(name="last_g")
        # A unified engine's groups per block and products per group follow its mode;
        # a fixed engine's are constants.
        t.gpb_last, t.n_keep = cfg.groups_per_block - 1, cfg.n_keep
        if cfg.unified:     # (golden.Config refuses tile_skip with several modes)
            t.mode_r = Signal(cfg.mode_enum, name="mode_r")
            t.gpb_last = Signal(range(max(gpb)), name="gpb_last")
            keep = [cfg.mode(x).n_keep for x in cfg.modes]
            t.n_keep = Signal(range(max(keep) + 1), name="n_keep")
            with m.Switch(t.mode_r):
                for i in range(1, len(cfg.modes)):
                    with m.Case(cfg.mode_enum(i)):
                        m.d.comb += [t.gpb_last.eq(gpb[i] - 1), t.n_keep.eq(keep[i])]
                with m.Default():
                    m.d.comb += [t.gpb_last.eq(gpb[0] - 1), t.n_keep.eq(keep[0])]
            block_last = t.gb == t.gpb_last
        last_g = t.block_last & (t.kb + cfg.block_size >= t.k_r)
        m.d.comb += [t.block_last.eq(block_last),
                     t.last_g.eq(last_g | t.skip if cfg.tile_skip else last_g)]
        if cfg.tile_skip:
            t.since = Signal(range(R + 1), name="since_last", init=R)   # see _tile_skip
        rows_left = Signal(range(cfg.m_max + 1), name="rows_left")
        cols_left = Signal(range(cfg.n_max + 1), name="cols_left")
        t.rv, t.cv = Signal(range(R + 1), name="rv"), Signal(range(C + 1), name="cv")
        m.d.comb += [
            rows_left.eq(t.m_r - t.i0), cols_left.eq(t.n_r - t.j0),
            t.rv.eq(Mux(rows_left >= R, R, rows_left)),
            t.cv.eq(Mux(cols_left >= C, C, cols_left)),
        ]
        t.last_tile = Signal(name="last_tile")
        m.d.comb += t.last_tile.eq((t.i0 + R >= t.m_r) & (t.j0 + C >= t.n_r))
        # Tile information handed from the issue side to the drain side.
        info = {"c_base": unsigned(len(t.c_base)), "rv": unsigned(len(t.rv)),
                "cv": unsigned(len(t.cv)), "last": 1}
        if cfg.tile_skip:
            info["zero"] = 1        # skipped: the drain writes zeros
        t.info_layout = data.StructLayout(info)
        depth = cfg.tile_fifo_depth
        t.fifo = Signal(data.ArrayLayout(t.info_layout, depth), name="tile_info")
        t.tile_in = Signal(t.info_layout, name="tile_in")   # the entry of the tile issuing
        m.d.comb += [t.tile_in.c_base.eq(t.c_base), t.tile_in.rv.eq(t.rv),
                     t.tile_in.cv.eq(t.cv), t.tile_in.last.eq(t.last_tile)]
        if cfg.tile_skip:
            m.d.comb += t.tile_in.zero.eq(t.skip)
        t.wr_ptr = Signal(range(depth), name="wr_ptr")
        t.rd_ptr = Signal(range(depth), name="rd_ptr")
        return t

    def _next_tile(self, m, t):
        """Move to the next output tile (tile columns inner), or flush after the last."""
        cfg = self._config
        R, C, Gmax, Bmax = cfg.rows, cfg.cols, cfg.groups_max, cfg.blocks_max
        NTmax = cfg.n_tiles_max
        m.d.sync += [t.p.eq(0), t.waiting.eq(0)]
        with m.If(t.last_tile):
            m.d.sync += t.flushing.eq(1)
        with m.Elif(t.j0 + C < t.n_r):
            m.d.sync += [t.j0.eq(t.j0 + C), t.w_base.eq(t.w_base + Gmax),
                         t.ws_base.eq(t.ws_base + Bmax), t.c_base.eq(t.c_base + 1)]
            if cfg.tile_skip:
                m.d.sync += t.jt.eq(t.jt + 1)
        with m.Else():
            m.d.sync += [t.j0.eq(0), t.w_base.eq(0), t.ws_base.eq(0), t.i0.eq(t.i0 + R),
                         t.a_base.eq(t.a_base + Gmax), t.as_base.eq(t.as_base + Bmax),
                         t.row_cbase.eq(t.row_cbase + R * NTmax),
                         t.c_base.eq(t.row_cbase + R * NTmax)]
            if cfg.tile_skip:
                m.d.sync += t.jt.eq(0)

    def _tile_controller(self, m, rc, t):
        """Issue one group per cycle; at a tile's last group hand the tile to the drain
        and start the next tile (after the R-cycle period when G < R)."""
        cfg = self._config
        R = cfg.rows
        cnt_issued, cnt_tiles = rc.cnt["cnt_issued"], rc.cnt["cnt_tiles"]
        slots = t.rv * t.cv * t.n_keep
        if cfg.tile_skip:
            slots = Mux(t.skip, 0, slots)
        with m.If(t.issue):
            m.d.sync += [cnt_issued.eq(cnt_issued + slots), t.p.eq(t.p + 1)]
            with m.If(t.last_g):
                m.d.sync += [t.g.eq(0), t.gb.eq(0), t.b.eq(0), t.kb.eq(0),
                             cnt_tiles.eq(cnt_tiles + 1), t.wr_ptr.eq(t.wr_ptr + 1)]
                m.d.sync += t.fifo[t.wr_ptr].eq(t.tile_in)
                if cfg.tile_skip:
                    self._next_tile(m, t)       # the wait is before the next last group
                else:
                    with m.If(t.p + 1 < R):
                        m.d.sync += t.waiting.eq(1)
                    with m.Else():
                        self._next_tile(m, t)
            with m.Else():
                m.d.sync += [t.g.eq(t.g + 1), t.gb.eq(Mux(t.block_last, 0, t.gb + 1))]
                with m.If(t.block_last):
                    m.d.sync += [t.b.eq(t.b + 1), t.kb.eq(t.kb + cfg.block_size)]
        with m.Elif(rc.busy & t.waiting):
            m.d.sync += t.p.eq(t.p + 1)
            with m.If(t.p == R - 1):
                self._next_tile(m, t)
        rc.on_start(
            t.waiting.eq(0), t.flushing.eq(0),
            t.m_r.eq(self.m), t.k_r.eq(self.k), t.n_r.eq(self.n),
            *([t.mode_r.eq(self.mode)] if cfg.unified else []),
            t.i0.eq(0), t.j0.eq(0), t.a_base.eq(0), t.w_base.eq(0), t.as_base.eq(0),
            t.ws_base.eq(0), t.row_cbase.eq(0), t.c_base.eq(0),
            t.g.eq(0), t.gb.eq(0), t.b.eq(0), t.kb.eq(0), t.p.eq(0),
            *([t.jt.eq(0), t.since.eq(R)] if cfg.tile_skip else []))

    def _tile_skip(self, m, rc, t):
        """Coarse-grained sparsity (``tile_skip``): one "nonzero" bit per weight tile
        (column tile ``j div C`` of W, all of K: W addresses ``[t*Gmax, (t+1)*Gmax)`` of
        every bank), kept from the write port; the controller's ``skip``; and the issue
        rule that keeps tiles' last groups R cycles apart (``since_last``).

        A W data write into tile t sets the bit when one of the word's slot values is
        not zero (:func:`golden.skip.zero_code_mask`; indices and scales do not count).
        The first W data write into tile t after a ``start`` (or reset) restarts the
        bit from that word, so a host that rewrites a tile rewrites all of it (every
        bank's groups of the next run), and a tile it does not touch keeps its bit with
        its words.  After reset every bit is 0, as the zero-initialized buffer is.
        Cost: 2 x n_tiles_max flip-flops, 2 x n_tiles_max - 1 address comparators, one
        zero test per slot, a column-tile and a ``since_last`` counter; none of it in
        the PEs.
        """
        cfg = self._config
        nt, gmax = cfg.n_tiles_max, cfg.groups_max
        word = word_layouts(cfg)["w_data"]
        value = word.field("value")
        mask = zero_code_mask(cfg.w_fmt)
        nonzero = Signal(nt, name="tile_nonzero")
        fresh = Signal(nt, name="tile_fresh", init=(1 << nt) - 1)
        word_nonzero = Signal(name="wr_nonzero")
        m.d.comb += word_nonzero.eq(any_of([
            (self.wr_data[s * word.stride + value.offset:][:value.width] & mask) != 0
            for s in range(word.count)]))
        write = self.wr_en & (self.wr_sel == WrSel.W_DATA)
        if (1 << cfg.wr_bank_bits) > cfg.cols:
            write = write & (self.wr_bank < cfg.cols)
        for tile in range(nt):
            hit = write & (self.wr_addr < (tile + 1) * gmax)
            if tile:
                hit = hit & (self.wr_addr >= tile * gmax)
            with m.If(hit):
                m.d.sync += [nonzero[tile].eq(word_nonzero | (nonzero[tile] & ~fresh[tile])),
                             fresh[tile].eq(0)]
        rc.on_start(fresh.eq((1 << nt) - 1))
        m.d.comb += t.skip.eq(~nonzero.bit_select(t.jt, 1))
        # The drain period without a per-tile wait: a tile's last group waits until R
        # cycles after the previous tile's last group (t.since, saturating at R); every
        # other group issues back to back, and no tile sets t.waiting.
        R = cfg.rows
        m.d.comb += t.issue.eq(rc.busy & ~t.flushing & ~(t.last_g & (t.since < R)))
        with m.If(t.issue & t.last_g):
            m.d.sync += t.since.eq(1)
        with m.Elif(t.since < R):
            m.d.sync += t.since.eq(t.since + 1)

    def _skew(self, m, rc, t, array, a_rd, w_rd, as_rd, ws_rd):
        """Read addresses (and the group control) through register chains: row r and
        column c see them r and c cycles late.  Counts the bank reads: a bank reads
        when its stage is valid, a scale bank when it is also a block's first group."""
        cfg = self._config
        row_stage = data.StructLayout({
            "a_addr": unsigned(len(t.a_base)), "as_addr": unsigned(len(t.as_base)),
            "ctl": control_layout})
        col_stage = data.StructLayout({
            "w_addr": unsigned(len(t.w_base)), "ws_addr": unsigned(len(t.ws_base)),
            "valid": 1, "bfirst": 1})
        row0 = Signal(row_stage, name="row0")
        col0 = Signal(col_stage, name="col0")
        m.d.comb += [
            row0.a_addr.eq(t.a_base + t.g), row0.as_addr.eq(t.as_base + t.b),
            row0.ctl.valid.eq(t.issue), row0.ctl.tfirst.eq(t.g == 0),
            row0.ctl.bfirst.eq(t.gb == 0), row0.ctl.blast.eq(t.block_last),
            row0.ctl.tlast.eq(t.last_g),
            col0.w_addr.eq(t.w_base + t.g), col0.ws_addr.eq(t.ws_base + t.b),
            col0.valid.eq(t.issue), col0.bfirst.eq(t.gb == 0),
        ]
        rows = list(skew_chain(m, row0, cfg.rows, "row_skew"))
        cols = list(skew_chain(m, col0, cfg.cols, "col_skew"))
        rc.count_access("cnt_rd_a", [st.ctl.valid for st in rows])
        rc.count_access("cnt_rd_w", [st.valid for st in cols])
        if cfg.scaled:
            rc.count_access("cnt_rd_as", [st.ctl.valid & st.ctl.bfirst for st in rows])
            rc.count_access("cnt_rd_ws", [st.valid & st.bfirst for st in cols])
        for r, stage in enumerate(rows):
            m.d.comb += a_rd[r].addr.eq(stage.a_addr)
            m.d.comb += array.a[r].eq(a_rd[r].data)
            if cfg.scaled:
                m.d.comb += [as_rd[r].addr.eq(stage.as_addr),
                             array.a_scale[r].eq(as_rd[r].data)]
            # The control waits one cycle for the synchronous buffer read.
            ctl = Signal(control_layout, name=f"row_ctl_{r}")
            m.d.sync += ctl.eq(stage.ctl)
            m.d.comb += array.ctl[r].eq(ctl)
        for c, stage in enumerate(cols):
            m.d.comb += [w_rd[c].addr.eq(stage.w_addr), array.w[c].eq(w_rd[c].data)]
            if cfg.scaled:
                m.d.comb += [ws_rd[c].addr.eq(stage.ws_addr),
                             array.w_scale[c].eq(ws_rd[c].data)]

    def _drain(self, m, rc, t, array):
        """Column 0's chain load starts a write stream of the tile's rows (bottom row
        first), skewed across the C lanes (counted as C writes); returns the last lane's
        stage."""
        cfg = self._config
        R, NTmax = cfg.rows, cfg.n_tiles_max
        em_active = Signal(name="em_active")
        em_row = Signal(range(max(R, 2)), name="em_row")
        em_addr = Signal(len(t.c_base) + 1, name="em_addr")
        em_rv, em_cv = Signal.like(t.rv, name="em_rv"), Signal.like(t.cv, name="em_cv")
        em_last = Signal(name="em_last")
        head = Signal(t.info_layout, name="head")
        m.d.comb += head.eq(t.fifo[t.rd_ptr])
        load = [em_active.eq(1), em_row.eq(R - 1),
                em_addr.eq(head.c_base + (R - 1) * NTmax),
                em_rv.eq(head.rv), em_cv.eq(head.cv), em_last.eq(head.last),
                t.rd_ptr.eq(t.rd_ptr + 1)]
        if cfg.tile_skip:
            em_zero = Signal(name="em_zero")        # the tile was skipped: write zeros
            load.append(em_zero.eq(head.zero))
        with m.If(array.drain_load[0]):
            m.d.sync += load
        with m.Elif(em_active):
            m.d.sync += [em_row.eq(em_row - 1), em_addr.eq(em_addr - NTmax)]
            with m.If(em_row == 0):
                m.d.sync += em_active.eq(0)

        lane = {"we": 1, "addr": unsigned(cfg.rd_addr_bits), "cv": unsigned(len(t.cv)),
                "fin": 1}
        if cfg.tile_skip:
            lane["zero"] = 1
        lane_stage = data.StructLayout(lane)
        lane0 = Signal(lane_stage, name="lane0")
        m.d.comb += [
            lane0.we.eq(em_active & (em_row < em_rv)),
            lane0.addr.eq(em_addr),
            lane0.cv.eq(em_cv),
            lane0.fin.eq(em_active & em_last & (em_row == 0)),
        ]
        if cfg.tile_skip:
            m.d.comb += lane0.zero.eq(em_zero)
        lanes = list(skew_chain(m, lane0, cfg.cols, "lane_skew"))
        we = [stage.we & (stage.cv > c) for c, stage in enumerate(lanes)]
        rc.count_access("cnt_wr_c", we)
        values = [Mux(stage.zero, 0, array.drain_data[c]) if cfg.tile_skip
                  else array.drain_data[c] for c, stage in enumerate(lanes)]
        c_rd = [self.c_lane(m, c, en, stage.addr, values[c])
                for c, (en, stage) in enumerate(zip(we, lanes))]
        m.d.comb += self.rd_data.eq(Cat(*c_rd))
        return lanes[-1]
