"""What both engines share: the host interface (ports, buffers, write-port decode, C
read, counters) of :class:`EngineBase` and the run-control skeleton :class:`RunControl`
(start/busy/done, counter clear, completion).  The output-stationary engine is
:class:`hw.engine.Engine`, the weight-stationary one :class:`hw.ws.WSEngine`.
"""

from amaranth import Const, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden import counters as counter_table
from golden.latency import LATENCY
from golden.pack import WrSel
from .chain import register_chain
from .component import ConfigComponent

__all__ = ["EngineBase", "RunControl", "engine_signature", "host_buffers", "skew_chain",
           "popcount"]


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
    members.update({name: Out(config.counter_bits) for name in counter_table.names(config)})
    return wiring.Signature(members)


def popcount(bits):
    """The number of high bits among the 1-bit values ``bits``, as a balanced adder tree
    (0 for none)."""
    vals = list(bits)
    if not vals:
        return Const(0, 1)
    while len(vals) > 1:
        vals = [vals[i] + vals[i + 1] if i + 1 < len(vals) else vals[i]
                for i in range(0, len(vals), 2)]
    return vals[0]


def host_buffers(config):
    """The buffers the host writes (and C, which it reads): name -> (banks, depth, word
    bits), in the order the engines build them; :attr:`golden.Config.host_buffers`."""
    return config.host_buffers


def skew_chain(m, first, count, name):
    """Yield ``first`` and then ``count - 1`` registered copies of it, each one cycle later
    than the one before (named ``<name>_1`` ...): the stage of array row or column i
    (:func:`hw.chain.register_chain`)."""
    return register_chain(m, first, count, name)


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

    #: Cycles from a buffer read address to its data (``LATENCY["buffer_read"]``).
    buffer_read_latency = LATENCY["buffer_read"]

    def __init__(self, config, *, pe_module=None):
        self._pe_module = pe_module
        super().__init__(config, engine_signature(config))

    @classmethod
    def buffers_of(cls, config):
        """The on-chip buffers of this engine class for ``config``: name -> (banks, depth,
        word bits); a class method, so area and energy models need not build an engine."""
        return host_buffers(config)

    def buffers(self):
        """Describe the on-chip buffers: :meth:`buffers_of` this engine's config."""
        return self.buffers_of(self.config)

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
                assert ports[name][-1].domain == "sync" and self.buffer_read_latency == 1
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
        """Add the performance counters of :func:`golden.counters.names`: cycles and
        stalls (busy without ``issue``) count here; the caller counts issued slots,
        tiles and buffer accesses.  Return name -> register, in port order; the caller
        clears them on ``start``."""
        regs = {name: Signal(self.config.counter_bits, name=name)
                for name in counter_table.names(self.config)}
        m.d.comb += [getattr(self, name).eq(reg) for name, reg in regs.items()]
        with m.If(busy):
            m.d.sync += regs["cnt_cycles"].eq(regs["cnt_cycles"] + 1)
            with m.If(~issue):
                m.d.sync += regs["cnt_stall"].eq(regs["cnt_stall"] + 1)
        return regs

    def run_control(self, m):
        """The :class:`RunControl` of this engine in ``m``."""
        return RunControl(self, m)


class RunControl:
    """The run-control skeleton both engines share: the ``busy`` and ``done`` registers,
    the performance counters (cleared on ``start``) and completion.

    Build order (later assignments win): construct it, then :meth:`count` once the
    engine knows when it issues, the engine's controller, :meth:`on_start` (a start
    overrides the controller) and, last, :meth:`complete` (completion overrides all).

    Parameters
    ----------
    engine : EngineBase
    m : Module

    Members
    -------
    busy, done : Signal
        The registers behind the ports of the same name.
    cnt : dict
        Counter name (:func:`golden.counters.names`) -> register, after :meth:`count`;
        the engine counts issued slots and tiles itself, and each buffer's accesses
        through :meth:`count_access`.
    """

    #: Cycles from the edge that samples ``start`` to the first issue: the shape is
    #: registered first (``LATENCY["issue"]``).
    latency = LATENCY["issue"]

    def __init__(self, engine, m):
        self._engine, self._m = engine, m
        self.busy, self.done = engine.status(m)
        self.cnt = None
        self._starting = Signal(name="starting")
        m.d.comb += self._starting.eq(engine.start & ~self.busy)
        self._accessed = set()

    def count(self, issue):
        """Add the counters: cycles and stalls (busy without ``issue``) count here."""
        self.cnt = self._engine.counters(self._m, self.busy, issue)
        return self.cnt

    def count_access(self, name, enables):
        """Count buffer accesses into counter ``name`` (one of
        :func:`golden.counters.access_names`): every cycle, add how many of the 1-bit
        ``enables`` (one per bank port) are high; cleared on ``start``.  Independent of
        the build order (nothing else assigns the register); call it once per counter."""
        assert name in counter_table.access_names(self._engine.config), name
        assert name not in self._accessed, name
        self._accessed.add(name)
        reg = self.cnt[name]
        with self._m.If(self._starting):
            self._m.d.sync += reg.eq(0)
        with self._m.Else():
            self._m.d.sync += reg.eq(reg + popcount(enables))

    def on_start(self, *stmts):
        """On ``start`` while idle: become busy, clear ``done`` and the run counters,
        and apply the engine's own ``stmts`` (register the shape, reset the controller)."""
        with self._m.If(self._starting):
            self._m.d.sync += [self.busy.eq(1), self.done.eq(0), *stmts,
                               *(self.cnt[name].eq(0) for name in counter_table.RUN_COUNTERS)]

    def complete(self, when, *stmts):
        """When ``when`` (the last C write): clear ``busy``, set ``done``, apply ``stmts``.
        Every buffer-access counter must have been added (:meth:`count_access`)."""
        missing = set(counter_table.access_names(self._engine.config)) - self._accessed
        assert not missing, f"buffer-access counters never counted: {sorted(missing)}"
        with self._m.If(when):
            self._m.d.sync += [self.busy.eq(0), self.done.eq(1), *stmts]
