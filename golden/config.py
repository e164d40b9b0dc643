"""The one configuration object of an nmmx engine.

``hw``, ``golden``, ``sim``, ``synth``, ``dse`` and every command line take a
:class:`Config`.  It is validated once, here; every width, depth and latency that
more than one place needs is a named property on it.
"""

import enum
import functools
from dataclasses import dataclass, fields, asdict, replace
from math import ceil

from .formats import BINARY32, get_format
from .latency import LATENCY, RESOLVE_STAGE_BITS
from .schedule import schedule_of

__all__ = ["Config", "Dataflow", "LATENCY", "SPARSITY_GROUPS", "DATAFLOWS", "MAX_BUFFER_BITS",
           "parse_sparsity", "Mode", "parse_mode", "parse_modes"]

#: Group sizes M of N:M sparsity that the PE supports (log2(M)-bit indices).
SPARSITY_GROUPS = (1, 2, 4, 8, 16)
class Dataflow(enum.StrEnum):
    """The array's dataflow (strings accepted; :class:`Config` stores the enum)."""

    OS = "os"   # output stationary, hw.engine.Engine
    WS = "ws"   # weight stationary, hw.ws.WSEngine


DATAFLOWS = tuple(d.value for d in Dataflow)    #: the dataflows, as command-line strings
#: Array dimensions the generator accepts.
MAX_DIM = 64
#: Upper bound on :attr:`Config.host_buffer_bits`, the on-chip bits that ``m_max``,
#: ``k_max`` and ``n_max`` imply: 2**31 bits (256 MiB).  That is several times the SRAM of
#: the largest single accelerator dies built so far, so no engine an architect would
#: tape out is refused; yet the Verilog memories, the simulator's model of them and the
#: golden model's operand arrays of a GEMM that fills them still fit in a workstation's
#: memory, whereas an unbounded ``k_max`` ends in ``MemoryError`` deep inside generation.
MAX_BUFFER_BITS = 2 ** 31


def parse_sparsity(text):
    """Parse ``"2:4"`` into ``(2, 4)``; raise ``ValueError`` naming the text."""
    if isinstance(text, tuple):
        return text
    if not isinstance(text, str):
        raise TypeError(f"Sparsity must be written N:M, not {text!r}")
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"Sparsity must be written N:M with whole numbers, not {text!r}")
    return int(parts[0]), int(parts[1])


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name} must be {bound}, not {value}")


# -- run-time modes of a unified engine (issue 16) -----------------------------------------


@dataclass(frozen=True)
class Mode:
    """One run-time mode of an engine: an activation and a weight format and an N:M.

    Written ``FORMAT@N:M`` (both operands in one format) or ``A_FORMAT/W_FORMAT@N:M``,
    with ``p`` after M for pair sparsity: 4-bit values kept or dropped in pairs of
    adjacent K positions, so ``mxfp4_e2m1@4:8p`` keeps 2 of every 4 pairs.  :func:`parse_mode`
    reads that text; :attr:`spec` writes it back.

    Members
    -------
    a_format, w_format : str
        Format names.
    sparsity : tuple of (int, int)
        N:M in values (``4:8p`` is 2:4 over pairs).
    pairs : bool
        Pair sparsity.
    """

    a_format: str
    w_format: str
    sparsity: tuple
    pairs: bool = False

    @property
    def spec(self):
        """The mode as written on the command line, e.g. ``mxfp4_e2m1@4:8p``."""
        fmt = self.a_format if self.a_format == self.w_format else (
            f"{self.a_format}/{self.w_format}")
        return f"{fmt}@{self.sparsity[0]}:{self.sparsity[1]}{'p' if self.pairs else ''}"

    @property
    def label(self):
        """The mode in generated names, e.g. ``mxfp4e2m1_4of8p``."""
        a, w = get_format(self.a_format), get_format(self.w_format)
        fmt = a.width_label if a is w else f"w{w.width_label}_a{a.width_label}"
        return f"{fmt}_{self.sparsity[0]}of{self.sparsity[1]}{'p' if self.pairs else ''}"

    def __str__(self):
        return self.spec


_MODE_SYNTAX = "FORMAT@N:M or A_FORMAT/W_FORMAT@N:M (p after M for pair sparsity)"


def parse_mode(text):
    """Parse ``"mxfp4_e2m1@4:8p"`` into a :class:`Mode`; raise ``ValueError`` naming the
    text (format names are checked here, sparsity and widths by :class:`Config`)."""
    if isinstance(text, Mode):
        return text
    if not isinstance(text, str):
        raise TypeError(f"A mode must be written {_MODE_SYNTAX}, not {text!r}")
    body = text.strip()
    parts = body.split("@")
    fmts = parts[0].split("/") if len(parts) == 2 else []
    if len(fmts) not in (1, 2) or not all(f.strip() for f in fmts):
        raise ValueError(f"A mode must be written {_MODE_SYNTAX}, not {text!r}")
    sp = parts[1].strip()
    pairs = sp.endswith("p")
    try:
        for f in fmts:
            get_format(f.strip())
        n_m = parse_sparsity(sp[:-1] if pairs else sp)
    except ValueError as e:
        raise ValueError(f"Mode {body!r}: {e}") from None
    a, w = fmts[0].strip(), fmts[-1].strip()
    return Mode(a_format=a, w_format=w, sparsity=n_m, pairs=pairs)


def parse_modes(value):
    """A comma-separated string, or a sequence of strings and :class:`Mode` objects,
    as a tuple of :class:`Mode`."""
    if isinstance(value, str):
        value = [] if not value.strip() else value.split(",")
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"modes must be a list of modes ({_MODE_SYNTAX}), not {value!r}")
    return tuple(parse_mode(v) for v in value)


@functools.lru_cache(maxsize=None)
def _mode_enum(labels):
    """The ``IntEnum`` of a mode list (cached, so one list gives one class)."""
    return enum.IntEnum("EngineMode", [(label.upper(), i) for i, label in enumerate(labels)])


@functools.lru_cache(maxsize=256)
def _one_mode(config, mode):
    return replace(config, modes=(mode,))


@dataclass(frozen=True, kw_only=True)
class Config:
    """Parameters of one generated GEMM engine.

    Parameters
    ----------
    rows, cols : int
        Systolic array size R x C (1..64 each; need not be square).
    a_format, w_format : str
        Element formats of activations and weights (names from
        :data:`golden.formats.FORMATS`).  ``int8`` pairs only with ``int8``.
    sparsity : tuple of (int, int)
        N:M structured sparsity of the weights along K: N stored slots per group of M.
        Dense is N:N.  M must be one of 1, 2, 4, 8, 16.
    block_size : int
        MX block length along K (a positive multiple of M).  int8 has no blocks: its
        engine pads K only to whole sparsity groups, so for int8 the value is checked
        to be a whole number and then stored as M (the block is one group).
    dataflow : Dataflow or str
        ``"os"`` (output stationary, :class:`hw.engine.Engine`) or ``"ws"`` (weight
        stationary, :class:`hw.ws.WSEngine`); stored as a :class:`Dataflow`.
    m_max, k_max, n_max : int
        Largest GEMM the engine's buffers hold (C[M x N] = A[M x K] W[K x N]).
    tile_skip : bool
        The controller skips weight tiles whose every stored value is zero and writes
        their outputs as zero (:mod:`golden.skip`; ``docs/architecture.md``, "Tile
        skipping").  Output stationary only.  Off, the engine is the one without the
        feature, bit for bit, and :meth:`to_dict` leaves the key out.
    modes : tuple of Mode or str
        Run-time modes (:class:`Mode`, :func:`parse_modes`; a comma-separated string is
        accepted).  Empty (the default): a fixed engine of ``a_format``, ``w_format`` and
        ``sparsity``.  Given, those three fields are set from the first mode; one mode
        without pairs is stored as that fixed engine (``modes == ()``), one pair-sparse
        mode keeps ``modes`` (:attr:`pair_sparse`), and two or more make a unified
        engine (:attr:`unified`, ``hw.multi_pe``) whose word layouts are the widest of
        its modes.  :meth:`mode` gives the one-mode config of each.

    Raises
    ------
    TypeError
        A parameter has the wrong type.
    ValueError
        A parameter is out of range, or two parameters do not fit together.
    """

    rows: int = 8
    cols: int = 8
    a_format: str = "mxfp8_e4m3"
    w_format: str = "mxfp8_e4m3"
    sparsity: tuple = (2, 4)
    block_size: int = 32
    dataflow: Dataflow = Dataflow.OS
    m_max: int = 64
    k_max: int = 1024
    n_max: int = 64
    tile_skip: bool = False
    modes: tuple = ()

    def __post_init__(self):
        self._set_modes()
        _check_int("rows", self.rows, 1, MAX_DIM)
        _check_int("cols", self.cols, 1, MAX_DIM)
        a, w = get_format(self.a_format), get_format(self.w_format)
        # Format objects are accepted and stored by name, so the config stays plain text.
        object.__setattr__(self, "a_format", a.name)
        object.__setattr__(self, "w_format", w.name)
        if a.scaled != w.scaled:
            raise ValueError(f"int8 only pairs with int8, not a_format={a.name} with "
                             f"w_format={w.name}")
        sp = parse_sparsity(self.sparsity)
        if isinstance(self.sparsity, list) or sp != self.sparsity:
            object.__setattr__(self, "sparsity", tuple(sp))
        n, m = self.sparsity
        for v in (n, m):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"Sparsity must be two whole numbers N:M, not {n!r}:{m!r}")
        if m not in SPARSITY_GROUPS:
            groups = ", ".join(map(str, SPARSITY_GROUPS))
            raise ValueError(f"N:M sparsity needs M in {{{groups}}}, not {n}:{m}")
        if not 0 < n <= m:
            raise ValueError(f"N:M sparsity needs 0 < N <= M, not {n}:{m}")
        _check_int("block_size", self.block_size, 1)
        if not a.scaled:
            # The one place where block_size meets int8: no scales, no blocks, so K is
            # padded to whole groups only (padded_k, groups, buffer depths follow).
            object.__setattr__(self, "block_size", m)
        if self.block_size % m:
            raise ValueError(f"block_size must be a multiple of the sparsity group M={m}, "
                             f"not {self.block_size}")
        if self.dataflow not in DATAFLOWS:    # a Dataflow equals its string
            raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, "
                             f"not {self.dataflow!r}")
        object.__setattr__(self, "dataflow", Dataflow(self.dataflow))
        _check_int("m_max", self.m_max, 1)
        _check_int("k_max", self.k_max, 1)
        _check_int("n_max", self.n_max, 1)
        # Tile skipping: a switch of the OS controller (golden.skip, OSSchedule).
        if not isinstance(self.tile_skip, bool):
            raise TypeError(f"tile_skip must be True or False, not {self.tile_skip!r}")
        if self.tile_skip and self.dataflow is not Dataflow.OS:
            raise ValueError(f"tile_skip is built only for the output-stationary dataflow, "
                             f"not dataflow={self.dataflow.value}")
        self._check_modes()
        if self.tile_skip and self.modes:
            raise ValueError("tile_skip is not built for a unified engine of several modes "
                             "yet; generate it without --tile-skip")
        bits = self.host_buffer_bits
        if bits > MAX_BUFFER_BITS:
            raise ValueError(f"m_max={self.m_max}, k_max={self.k_max} and n_max={self.n_max} "
                             f"need {bits} buffer bits, more than the limit of "
                             f"{MAX_BUFFER_BITS} (2**31)")

    # -- identity ----------------------------------------------------------------------

    @property
    def name(self):
        """Default top-level name, e.g. ``nmmx_os_8x8_mxfp4e2m1_2of4``."""
        a, w = self.a_fmt, self.w_fmt
        fmt = a.width_label if a is w else f"w{w.width_label}_a{a.width_label}"
        skip = "_skip" if self.tile_skip else ""
        if self.modes:
            fmt = "_".join(mode.label for mode in self.modes)
            return f"nmmx_{self.dataflow.value}_{self.rows}x{self.cols}_{fmt}{skip}"
        return (f"nmmx_{self.dataflow.value}_{self.rows}x{self.cols}_{fmt}_"
                f"{self.n_keep}of{self.m_group}{skip}")

    def to_dict(self):
        """The fields as plain JSON values.  ``tile_skip`` appears only when on, so the
        manifests, cache keys and sweep keys of engines without it stay what they were."""
        d = asdict(self)
        d["sparsity"] = f"{self.n_keep}:{self.m_group}"
        d["dataflow"] = self.dataflow.value
        if not self.tile_skip:
            del d["tile_skip"]
        if self.modes:    # a fixed engine's dict (and so its manifest) has no modes key
            d["modes"] = [mode.spec for mode in self.modes]
        else:
            del d["modes"]
        return d

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    # -- formats and sparsity -------------------------------------------------------------

    @property
    def a_fmt(self):
        return get_format(self.a_format)

    @property
    def w_fmt(self):
        return get_format(self.w_format)

    @property
    def scaled(self):
        """MX engine (E8M0 block scales, binary32 output) rather than plain int8."""
        return self.a_fmt.scaled

    @property
    def n_keep(self):
        return self.sparsity[0]

    @property
    def m_group(self):
        return self.sparsity[1]

    @property
    def dense(self):
        """N == M: every position is stored, indices are implicit, no select muxes."""
        return self.n_keep == self.m_group

    @property
    def index_bits(self):
        """Width of one stored metadata index (0 when dense: the index is implicit)."""
        return 0 if self.dense else (self.m_group - 1).bit_length()

    @property
    def log2_m_group(self):
        """log2(M): shifting a K index right by it gives the group (M is a power of two)."""
        return self.m_group.bit_length() - 1

    @property
    def scale_bits(self):
        return 8 if self.scaled else 0

    @property
    def block_exp_bits(self):
        """Signed width of ``a_scale + w_scale + product_lsb_exp - 2*bias`` (MX): two
        codes sum in scale_bits + 1 bits, plus a sign, plus one for the offset."""
        return self.scale_bits + 3

    @property
    def groups_per_block(self):
        return self.block_size // self.m_group

    @property
    def slots_per_block(self):
        """Stored weight values per MX block: ``block_size * N / M``."""
        return self.groups_per_block * self.n_keep

    # -- datapath widths -----------------------------------------------------------------

    @property
    def product_lsb_exp(self):
        """Exponent of one unit of the exact product (and of the block accumulator)."""
        return self.a_fmt.lsb_exp + self.w_fmt.lsb_exp

    @property
    def product_bits(self):
        """Signed width of one exact product in units of ``2**product_lsb_exp``."""
        return (self.a_fmt.max_int * self.w_fmt.max_int).bit_length() + 1

    @property
    def product_has_inf(self):
        """Some element format of this config encodes +-Inf, so a product can be +-Inf."""
        return self.a_fmt.inf or self.w_fmt.inf

    @property
    def product_has_nan(self):
        """A product can be NaN: a format encodes NaN, or Inf x 0 is possible."""
        return self.a_fmt.nan != "none" or self.w_fmt.nan != "none" or self.product_has_inf

    @property
    def block_acc_bits(self):
        """Signed width of the exact block accumulator: no block sum ever rounds or wraps."""
        if not self.scaled:
            return 32
        return (self.a_fmt.max_int * self.w_fmt.max_int * self.slots_per_block).bit_length() + 1

    @property
    def acc_bits(self):
        """Output word width: binary32 for MX engines, int32 for int8."""
        return BINARY32.bits

    # -- packed words (manifest word layouts are built from these) ---------------------------

    @property
    def a_group_bits(self):
        """One activation group: M element codes, element k at bits [k*bits, (k+1)*bits)
        (unified engine: :attr:`mode_a_bytes` bytes, the widest mode's group)."""
        if self.unified:
            return 8 * self.mode_a_bytes
        return self.m_group * self.a_fmt.bits

    @property
    def w_slot_bits(self):
        """One stored weight slot: value code in the low bits, then its index (unified
        engine: a byte, then a byte index of :attr:`mode_index_bits`)."""
        if self.unified:
            return 8 + self.mode_index_bits
        return self.w_fmt.bits + self.index_bits

    @property
    def w_group_bits(self):
        return (self.mode_slots if self.unified else self.n_keep) * self.w_slot_bits

    # -- buffer geometry ---------------------------------------------------------------------

    @property
    def kp_max(self):
        """``k_max`` rounded up to whole MX blocks (the engine pads K with zeros)."""
        return self.padded_k(self.k_max)

    @property
    def groups_max(self):
        """Groups of the longest K (unified engine: of the mode with the most groups)."""
        if self.unified:
            return max(self.mode(mode).groups_max for mode in self.modes)
        return self.groups(self.k_max)

    @property
    def blocks_max(self):
        return self.kp_max // self.block_size

    @property
    def m_tiles_max(self):
        return ceil(self.m_max / self.rows)

    @property
    def n_tiles_max(self):
        return ceil(self.n_max / self.cols)

    def padded_k(self, k):
        """K rounded up to whole MX blocks (int8: whole sparsity groups, since int8's
        ``block_size`` is the group)."""
        return ceil(k / self.block_size) * self.block_size

    def k_groups(self, k):
        """Sparsity groups that cover K without block padding: ``ceil(K / m_group)``
        (the K extent of the GEMM as an array that takes one group per PE per cycle)."""
        return ceil(k / self.m_group)

    def check_gemm(self, m, k, n):
        """Raise ``ValueError`` if an M x K x N GEMM does not fit the engine's buffers."""
        for name, v, hi in (("M", m, self.m_max), ("K", k, self.k_max), ("N", n, self.n_max)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"GEMM {name} must be a whole number, not {v!r}")
            if not 1 <= v <= hi:
                raise ValueError(f"GEMM {name}={v} does not fit this engine "
                                 f"({name.lower()}_max={hi})")

    # -- latencies and the schedule ----------------------------------------------------------
    # The latencies come from golden.latency.LATENCY; the cycle model of each dataflow is
    # golden.schedule (config.schedule); the sim regressions assert its counters every run.

    @property
    def issue_latency(self):
        """Cycles from the clock edge that samples ``start`` to the first group's buffer
        read address (the controller registers the shape first)."""
        return LATENCY["issue"]

    @property
    def buffer_read_latency(self):
        """Synchronous buffer read: data reaches the array one cycle after its address."""
        return LATENCY["buffer_read"]

    @property
    def pe_latency(self):
        """Cycles from a PE seeing a tile's last group to its result register holding the
        tile's output (MX: products, block accumulator, converter, binary32 adder; int8:
        products, int32 accumulator)."""
        if not self.scaled:
            return LATENCY["pe_int8"] + self.front_stages
        return LATENCY["pe_mx"] + self.front_stages + self.resolve_stages + \
            self.convert_stages + self.acc_add_stages

    @property
    def resolve_stages(self):
        """Register stages that add the output-stationary block accumulator's two
        carry-save rows (``hw.pe.PE``, ``hw.adder.CarrySelectAdder``): one prefix adder
        up to ``RESOLVE_STAGE_BITS`` bits of ``block_acc_bits``, else two (a
        carry-select adder); a unified engine's are its datapath mode's."""
        if not self.scaled:
            return 0
        bits = (self.datapath if self.unified else self).block_acc_bits
        return 1 if bits <= RESOLVE_STAGE_BITS else 2

    @property
    def front_stages(self):
        """Register stages of the PE front end (``hw.pe.sparse_products``, both
        dataflows): after the sparse select (``LATENCY["select"]``, sparse configs only:
        a dense select is wires) and after the multipliers (``LATENCY["multiply"]``).
        The product sum follows in the PE's own first stage."""
        return (LATENCY["select"] if self.selects else 0) + LATENCY["multiply"]

    @property
    def selects(self):
        """The PE front end has a select stage: a sparse fixed config, or a unified
        engine with a sparse mode (its ``hw.multi_pe.ByteSelect`` reads an index; when
        every mode is dense the select is wires)."""
        if self.unified:
            return bool(self.mode_index_bits)
        return not self.dense

    @property
    def ws_pe_latency(self):
        """Cycles from a weight-stationary PE seeing an activation group to its
        ``psum_out`` holding the group's products added to ``psum_in``: the front
        end's stages, then the registered psum adder (``LATENCY["ws_pe"]``).  The
        ``psum_in`` to ``psum_out`` delay is always one cycle."""
        return self.front_stages + LATENCY["ws_pe"]

    @property
    def convert_stages(self):
        """Register stages inside the block converter (``LATENCY["block_convert"]``)."""
        return LATENCY["block_convert"] if self.scaled else 0

    @property
    def acc_add_stages(self):
        """Register stages inside the output-stationary PE's binary32 accumulator adder:
        ``LATENCY["f32_add"]``, but at most ``groups_per_block - 1`` so that a block's
        sum is back in the accumulator before the next block's term arrives (a loop of
        ``acc_add_stages + 1`` cycles at one block per ``groups_per_block`` cycles).

        The rule when the loop cannot be hidden (``groups_per_block`` below
        ``LATENCY["f32_add"] + 1``, e.g. block 4 at M = 4: 0 stages, M = 16 at block 32:
        1): the PE keeps one group per cycle and never stalls, and the adder gets
        fewer, longer stages; that path is then the PE's critical path and the timing
        report shows it (docs/architecture.md, "Pipelining and the accumulator loop").
        The binary32 sum stays in K order, block by block, as golden defines it.  A
        unified engine's is the minimum over its modes (one PE, one latency)."""
        if not self.scaled:
            return 0
        if self.unified:
            # One PE serves every mode, so its adder fits the mode with the shortest
            # blocks (in groups): one latency for every mode.
            return min(self.mode(mode).acc_add_stages for mode in self.modes)
        return min(LATENCY["f32_add"], self.groups_per_block - 1)

    @property
    def tile_fifo_depth(self):
        """Tiles whose drain is pending while later tiles issue (a tile is drained
        ``buffer_read_latency + rows - 1 + pe_latency`` cycles after its last group, and
        tiles start at least ``rows`` cycles apart)."""
        lag = self.buffer_read_latency + self.rows - 1 + self.pe_latency
        return 1 << (ceil(lag / self.rows) + 1).bit_length()

    def groups(self, k):
        """Groups G streamed per tile for a run-time K (K padded to whole blocks)."""
        return self.padded_k(k) // self.m_group

    @property
    def schedule(self):
        """The exact cycle model of this config's engine: a
        :class:`golden.schedule.OSSchedule` or :class:`golden.schedule.WSSchedule`
        (``cycles``, ``issued``, ``stall``, ``tiles``, utilization, SCALE-Sim, formulas);
        a unified config's is a :class:`golden.schedule.ModesSchedule` (one per mode)."""
        return schedule_of(self)

    @property
    def pes(self):
        """Processing elements in the array: R x C."""
        return self.rows * self.cols

    @property
    def multiplier_slots(self):
        """Multipliers in the array, R x C x N: the denominator of utilization."""
        return self.pes * self.n_keep

    @property
    def peak_macs_per_cycle(self):
        """Dense-equivalent MACs per cycle at full utilization, R x C x M: each PE covers
        M K-positions per cycle with its N multipliers."""
        return self.pes * self.m_group

    # -- weight-stationary array geometry (hw.ws.WSEngine; its timing is WSSchedule) --------
    # A weight pass holds ws_fold_groups K-groups of one column tile in the PEs; block-end
    # units sit below the rows where MX blocks end.

    @property
    def ws_fold_groups(self):
        """K-groups per weight pass (array rows in use).  MX: a whole number of blocks
        (``rows // groups_per_block`` blocks) when a block fits the rows, otherwise the
        largest divisor of ``groups_per_block`` that fits, so that block ends always sit
        at the same rows; int8: ``rows``."""
        gpb = self.groups_per_block
        if not self.scaled:
            return self.rows
        if self.rows >= gpb:
            return self.rows // gpb * gpb
        return max(d for d in range(1, self.rows + 1) if gpb % d == 0)

    @property
    def ws_carry_exact(self):
        """A block spans several passes (``ws_fold_groups < groups_per_block``), so the
        exact partial block sum and its special flags are carried from pass to pass in
        the accumulator memory beside the binary32 partial."""
        return self.scaled and self.ws_fold_groups < self.groups_per_block

    @property
    def ws_block_end_rows(self):
        """Rows below which a block-end unit (converter + binary32 adder) sits."""
        if not self.scaled:
            return ()
        f, gpb = self.ws_fold_groups, self.groups_per_block
        if self.ws_carry_exact:
            return (f - 1,)
        return tuple(r for r in range(f) if (r + 1) % gpb == 0)

    @property
    def ws_block_end_latency(self):
        """Pipeline stages of a block-end unit: the converter's, the term register, the
        adder's and the output register (feed-forward, so the adder is never shortened)."""
        if not self.scaled:
            return 0
        return LATENCY["ws_block_end"] + LATENCY["block_convert"] + LATENCY["f32_add"]

    @property
    def ws_join_stages(self):
        """Register stages of the join below ``ws_inject_row`` where a column adds the
        state carried from the previous pass (``LATENCY["ws_join"]``: the int8 sum, or
        the MX exact partial block when ``ws_carry_exact``; 0 when nothing exact is
        carried).  The join is then never in series with a PE's psum adder or a
        block-end unit's converter.  It sits below the bottom row (those configs
        inject at the bottom), so it delays only the bottom and the bottom block-end
        unit."""
        if self.scaled and not self.ws_carry_exact:
            return 0
        return LATENCY["ws_join"]

    @property
    def ws_inject_row(self):
        """Row below which a column's state from the previous pass joins the new partial
        sums: the first block-end row (MX: the binary32 partial starts there, and a
        carried exact partial joins the bottom block-end unit), or the bottom (int8)."""
        if self.scaled:
            return self.ws_block_end_rows[0]
        return self.ws_fold_groups - 1

    @property
    def ws_acc_depth(self):
        """Words per column of the weight-stationary accumulator memory (one per row)."""
        return self.m_max

    # -- engine buffers and ports (hw.engine.Engine and the manifest read these) -------------

    @property
    def a_data_depth(self):
        """Words per A data bank: ``m_tiles_max * groups_max`` (one group per word)."""
        return self.m_tiles_max * self.groups_max

    @property
    def a_scale_depth(self):
        """Words per A scale bank (MX only): ``m_tiles_max * blocks_max``."""
        return self.m_tiles_max * self.blocks_max if self.scaled else 0

    @property
    def w_data_depth(self):
        """Words per W data bank: ``n_tiles_max * groups_max``."""
        return self.n_tiles_max * self.groups_max

    @property
    def w_scale_depth(self):
        """Words per W scale bank (MX only): ``n_tiles_max * blocks_max``."""
        return self.n_tiles_max * self.blocks_max if self.scaled else 0

    @property
    def c_depth(self):
        """Words of the C buffer: ``m_max * n_tiles_max``, each C lanes of 32 bits."""
        return self.m_max * self.n_tiles_max

    @property
    def host_buffers(self):
        """The buffers the host writes (and C, which it reads): name -> ``(banks, depth,
        word bits)``, in the order the engines build them (:func:`hw.engine.host_buffers`)."""
        out = {"a_data": (self.rows, self.a_data_depth, self.a_group_bits),
               "w_data": (self.cols, self.w_data_depth, self.w_group_bits)}
        if self.scaled:
            out["a_scale"] = (self.rows, self.a_scale_depth, self.scale_bits)
            out["w_scale"] = (self.cols, self.w_scale_depth, self.scale_bits)
        out["c"] = (self.cols, self.c_depth, self.acc_bits)
        return out

    @property
    def host_buffer_bits(self):
        """Total bits of :attr:`host_buffers`; bounded by :data:`MAX_BUFFER_BITS`."""
        return sum(banks * depth * width for banks, depth, width in self.host_buffers.values())

    @property
    def wr_bank_bits(self):
        return max(1, (max(self.rows, self.cols) - 1).bit_length())

    @property
    def wr_addr_bits(self):
        deepest = max(self.a_data_depth, self.a_scale_depth, self.w_data_depth,
                      self.w_scale_depth)
        return max(1, (deepest - 1).bit_length())

    @property
    def wr_data_bits(self):
        return max(self.a_group_bits, self.w_group_bits, self.scale_bits)

    @property
    def rd_addr_bits(self):
        return max(1, (self.c_depth - 1).bit_length())

    @property
    def c_word_bits(self):
        return self.acc_bits * self.cols

    @property
    def m_bits(self):
        return self.m_max.bit_length()

    @property
    def k_bits(self):
        return self.k_max.bit_length()

    @property
    def n_bits(self):
        return self.n_max.bit_length()

    @property
    def counter_bits(self):
        """Width of the performance counters."""
        return 48

    # -- run-time modes (issue 16): the unified engine and the one-mode configs ------------
    # Validation lives in _set_modes and _check_modes (called by __post_init__); a unified
    # engine's shared datapath is described by the properties below.

    def _set_modes(self):
        """Parse ``modes``; refuse duplicates; take the formats and sparsity of the first
        mode; store one mode without pairs as the fixed engine (``modes == ()``)."""
        modes = parse_modes(self.modes)
        for i, mode in enumerate(modes):
            if mode in modes[:i]:
                raise ValueError(f"Mode {mode.spec!r} is listed twice")
        for mode in modes:
            # The mode on its own (formats, N:M), before the config takes mode 0's fields.
            a, w = get_format(mode.a_format), get_format(mode.w_format)
            if not (a.scaled and w.scaled):
                raise ValueError(f"Mode {mode.spec!r}: modes are MX formats only, so int8 "
                                 f"cannot be one")
            try:
                Config(a_format=a.name, w_format=w.name, sparsity=mode.sparsity)
            except ValueError as e:
                raise ValueError(f"Mode {mode.spec!r}: {e}") from None
        if modes:
            object.__setattr__(self, "a_format", modes[0].a_format)
            object.__setattr__(self, "w_format", modes[0].w_format)
            object.__setattr__(self, "sparsity", modes[0].sparsity)
        if len(modes) == 1 and not modes[0].pairs:
            modes = ()
        object.__setattr__(self, "modes", modes)

    def _check_modes(self):
        """Every mode must make a valid fixed config with this engine's other fields
        (block size, buffer bits); pairs need
        4-bit formats; two or more modes must fit one shared datapath."""
        for mode in self.modes:
            spec = mode.spec
            a, w = get_format(mode.a_format), get_format(mode.w_format)
            try:
                one = replace(self, modes=(), a_format=a.name, w_format=w.name,
                              sparsity=mode.sparsity)
            except ValueError as e:
                raise ValueError(f"Mode {spec!r}: {e}") from None
            n, m = mode.sparsity
            if mode.pairs and not a.bits == w.bits == 4:
                bad = a.name if a.bits != 4 else w.name
                raise ValueError(f"Mode {spec!r}: pair sparsity (p) needs 4-bit formats, "
                                 f"not {bad}")
            if mode.pairs and (n % 2 or m % 2 or n == m):
                raise ValueError(f"Mode {spec!r}: pair sparsity needs an even N below an "
                                 f"even M, not {n}:{m}")
            if not self.unified:
                continue
            if self.dataflow != Dataflow.OS:
                raise ValueError(f"An engine with several modes is output stationary in "
                                 f"this release, not dataflow={self.dataflow.value}")
            if not (a.bits == w.bits and a.bits in (4, 8)):
                raise ValueError(f"Mode {spec!r}: the shared PE multiplies 8-bit or 4-bit "
                                 f"elements of one width, not {a.name} with {w.name}")
            if a.bits == 4 and not (one.dense or mode.pairs):
                raise ValueError(f"Mode {spec!r}: sparse 4-bit modes select whole bytes, "
                                 f"so they need pairs ({n}:{m}p), not {n}:{m}")
            if a.bits == 4 and n % 2:
                raise ValueError(f"Mode {spec!r}: a 4-bit mode fills each multiplier slot "
                                 f"with two values, so N must be even, not {n}")
            first = self.modes[0]
            if self.mode_slots_of(mode) != self.mode_slots_of(first):
                raise ValueError(f"Mode {spec!r} fills {self.mode_slots_of(mode)} multiplier "
                                 f"slots but mode {first.spec!r} fills "
                                 f"{self.mode_slots_of(first)}; every mode must fill the "
                                 f"same slots")
        if self.unified:
            dp = self.datapath
            for mode in self.modes:
                one = self.mode(mode)
                need = self.mode_block_acc_bits(mode)
                if need > dp.block_acc_bits:
                    raise ValueError(f"Mode {mode.spec!r} needs a {need}-bit block "
                                     f"accumulator in the units of mode "
                                     f"{self.datapath_mode.spec!r}, which has "
                                     f"{dp.block_acc_bits}; such mode sets are not "
                                     f"supported yet")
                for flag in ("nan", "inf"):
                    has = {"nan": Config.product_has_nan, "inf": Config.product_has_inf}[flag]
                    if has.fget(one) and not has.fget(dp):
                        raise ValueError(f"Mode {mode.spec!r} has {flag} products but mode "
                                         f"{self.datapath_mode.spec!r}, whose units the "
                                         f"shared accumulator uses, has none; such mode "
                                         f"sets are not supported yet")

    @property
    def unified(self):
        """Two or more run-time modes: ``hw.multi_pe.MultiPE`` in every PE, a ``mode``
        input registered with ``start``, word layouts the widest of the modes."""
        return len(self.modes) >= 2

    @property
    def pair_sparse(self):
        """A one-mode config whose weights are pruned and stored in pairs (``4:8p``)."""
        return len(self.modes) == 1

    @property
    def all_modes(self):
        """The engine's modes; a fixed engine has one, its own."""
        if self.modes:
            return self.modes
        return (Mode(self.a_format, self.w_format, self.sparsity),)

    def mode(self, spec):
        """The one-mode config of mode ``spec`` (a :class:`Mode` or its text): the fixed
        engine whose ``golden.gemm`` output the unified engine matches bit for bit in
        that mode.  A fixed config returns itself for its own mode.

        Raises
        ------
        ValueError
            ``spec`` is not one of :attr:`all_modes`.
        """
        mode = parse_mode(spec)
        if mode not in self.all_modes:
            raise ValueError(f"Mode {mode.spec!r} is not one of this engine's modes "
                             f"({', '.join(x.spec for x in self.all_modes)})")
        if not self.modes:
            return self
        return _one_mode(self, mode)

    def mode_index(self, spec):
        """Position of mode ``spec`` in :attr:`all_modes`: the value of the ``mode``
        input that selects it."""
        mode = parse_mode(spec)
        self.mode(mode)
        return self.all_modes.index(mode)

    @property
    def mode_enum(self):
        """``IntEnum`` of :attr:`all_modes` (member names from :attr:`Mode.label`): the
        shape of the unified engine's ``mode`` input."""
        return _mode_enum(tuple(mode.label for mode in self.all_modes))

    @property
    def mode_bits(self):
        """Width of the ``mode`` input."""
        return max(1, (len(self.all_modes) - 1).bit_length())

    def mode_narrow(self, spec):
        """The mode multiplies 4-bit elements, two per multiplier slot."""
        return self.mode(spec).a_fmt.bits == 4

    def mode_slots_of(self, spec):
        """8-bit-class multiplier slots a mode fills each cycle: N (8-bit), N/2 (4-bit)."""
        one = self.mode(spec) if self.modes else self
        return one.n_keep // 2 if one.a_fmt.bits == 4 else one.n_keep

    @property
    def mode_slots(self):
        """Multiplier slots of the shared PE (every mode fills all of them)."""
        return self.mode_slots_of(self.all_modes[0])

    def mode_bytes(self, spec):
        """Bytes of one activation group of a mode (``m_group * bits / 8``)."""
        one = self.mode(spec)
        return one.m_group * one.a_fmt.bits // 8

    def mode_sparse(self, spec):
        """The mode's slots carry a byte index (it is not dense)."""
        return not self.mode(spec).dense

    @property
    def mode_a_bytes(self):
        """Bytes of the unified A data word: the widest mode's group."""
        return max(self.mode_bytes(mode) for mode in self.all_modes)

    @property
    def mode_index_bits(self):
        """Width of a slot's byte index in the unified W word (0 if every mode is dense)."""
        return max([(self.mode_bytes(mode) - 1).bit_length() for mode in self.all_modes
                    if self.mode_sparse(mode)] or [0])

    @property
    def mode_sig_bits(self):
        """Operand width of a slot's significand multiplier: an 8-bit element's
        significand, or two 4-bit ones side by side (even, so it splits in halves)."""
        widest = 0
        for mode in self.all_modes:
            one = self.mode(mode)
            sig = max(one.a_fmt.sig_bits, one.w_fmt.sig_bits)
            widest = max(widest, 2 * sig if one.a_fmt.bits == 4 else sig)
        return widest + widest % 2

    @property
    def datapath_mode(self):
        """The mode whose product unit is the finest: the shared block accumulator,
        converter and flags are built for it and the other modes' sums shift into it."""
        return min(self.all_modes, key=lambda mode: self.mode(mode).product_lsb_exp)

    @property
    def datapath(self):
        """One-mode config of :attr:`datapath_mode` (``block_acc_bits``, ``product_lsb_exp``,
        the flags and the converter of the shared PE)."""
        return self.mode(self.datapath_mode)

    def mode_product_shift(self, spec):
        """Left shift of a mode's products into the units of :attr:`datapath`."""
        return self.mode(spec).product_lsb_exp - self.datapath.product_lsb_exp

    @property
    def mode_slot_bits(self):
        """Signed width of one slot's exact result in the units of :attr:`datapath`: one
        8-bit product, or the sum of two 4-bit ones, shifted by
        :meth:`mode_product_shift` (the widest over the modes)."""
        widest = 0
        for mode in self.all_modes:
            one = self.mode(mode)
            top = one.a_fmt.max_int * one.w_fmt.max_int * (2 if self.mode_narrow(mode) else 1)
            widest = max(widest, (top << self.mode_product_shift(mode)).bit_length() + 1)
        return widest

    def mode_block_acc_bits(self, spec):
        """Signed width a mode's exact block sum needs in the units of :attr:`datapath`."""
        one = self.mode(spec)
        top = one.a_fmt.max_int * one.w_fmt.max_int * one.slots_per_block
        return (top << self.mode_product_shift(spec)).bit_length() + 1
