"""The SoC interface of an engine: register map, stream table and bus cycle model.

One table, built from a :class:`golden.Config`, is the source of everything the AXI
wrapper (:class:`hw.soc.SocEngine`) exposes:

* :func:`register_map`: the AXI4-Lite registers (name, byte offset, access, fields with
  reset values).  The wrapper builds its decoder from it; the generator turns it into
  the manifest's ``regmap`` entry, a C header and a Markdown table (:mod:`gen.regmap`).
* :func:`streams`: the AXI4-Stream ports (name, direction, engine buffer, TDATA width),
  whose word formats :mod:`golden.pack` implements (:func:`golden.pack.stream_words`).
* the cycle model of the buses (:func:`load_cycles`, :func:`result_cycles`,
  :func:`soc_cycles`): with no backpressure each stream moves one word per cycle, and
  the loads share the engine's single write port.

Accesses: ``RO`` read only (a write returns SLVERR), ``RW`` read/write, ``W1C`` read,
write 1 to clear, ``WO`` write only (reads return 0; a written 1 is a one-cycle pulse).
A 64-bit counter is two registers ``NAME_LO``/``NAME_HI``: reading ``_LO`` captures the
whole value, so ``_HI`` read next belongs to the same sample (amaranth-soc's multi-chunk
CSR rule).
"""

import hashlib
import json
from dataclasses import dataclass

from . import counters as counter_table
from .config import Config
from .formats import FORMATS

__all__ = ["Field", "Register", "Stream", "register_map", "streams", "register",
           "config_hash", "ID_MAGIC", "MAP_REVISION", "ACCESSES", "DATA_BITS",
           "addr_bits", "load_words", "load_cycles", "result_words", "result_cycles",
           "soc_cycles", "START_LATENCY", "RESULT_LATENCY", "counter_regs",
           "RUN_COUNTER_BASE", "ACCESS_COUNTER_BASE", "format_code"]

#: ``ID`` register value: ASCII "NMMX".
ID_MAGIC = 0x4E4D4D58
#: Revision of the register map layout (``VERSION.MAP``); bump when an offset moves or
#: registers are added.  2: the buffer-access counters at :data:`ACCESS_COUNTER_BASE`.
MAP_REVISION = 2
#: AXI4-Lite data width.
DATA_BITS = 32
#: Register access kinds (see the module docstring).
ACCESSES = ("RO", "RW", "W1C", "WO")

#: Byte offset of the first run counter pair (:data:`golden.counters.RUN_COUNTERS`).
RUN_COUNTER_BASE = 0x80
#: Byte offset of the first buffer-access counter pair
#: (:func:`golden.counters.access_names`; after ``GEMMS`` and ``BAD_ACCESS``, so that
#: adding them moved no older register).
ACCESS_COUNTER_BASE = 0xC0


def counter_regs(config):
    """The engine's counters as 64-bit register pairs: register stem -> (byte offset of
    ``_LO``, engine counter port), for every counter of :func:`golden.counters.names`."""
    out = {}
    for base, ports in ((RUN_COUNTER_BASE, tuple(counter_table.RUN_COUNTERS)),
                        (ACCESS_COUNTER_BASE, counter_table.access_names(config))):
        for i, port in enumerate(ports):
            out[counter_table.register_stem(port)] = (base + 8 * i, port)
    return out

#: Cycles from the AXI4-Lite write handshake of ``START.GO`` to the engine's ``start``
#: pulse (the wrapper registers the write, then pulses ``start``).
START_LATENCY = 2
#: Cycles from the engine's ``done`` to the first C word on the result stream: the
#: completion edge is registered, the first C read issues, its data (one cycle later)
#: enters the two-word output FIFO, whose output is registered.
RESULT_LATENCY = 3


@dataclass(frozen=True)
class Field:
    """A bit field of a register: bits ``[lsb, lsb + width)``, reset value, meaning."""

    name: str
    lsb: int
    width: int
    reset: int = 0
    doc: str = ""

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """One 32-bit AXI4-Lite register.

    Members
    -------
    name : str
    offset : int
        Byte offset (a multiple of 4).
    access : str
        One of :data:`ACCESSES`.
    fields : tuple of Field
    doc : str
    capture : str or None
        For ``NAME_HI`` of a 64-bit pair: the ``NAME_LO`` register whose read captures
        this one's value.
    const : bool
        A read-only constant of the build (its reset value is what it reads).
    """

    name: str
    offset: int
    access: str
    fields: tuple
    doc: str
    capture: str = None
    const: bool = False

    @property
    def reset(self):
        """Reset (or, for a constant, fixed) value of the whole register."""
        return sum(f.reset << f.lsb for f in self.fields)

    @property
    def mask(self):
        """Bits that exist (the union of the fields)."""
        return sum(f.mask for f in self.fields)

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"Register {self.name} has no field {name!r}")

    def to_dict(self):
        d = {"name": self.name, "offset": self.offset, "access": self.access,
             "reset": self.reset, "doc": self.doc,
             "fields": [{"name": f.name, "lsb": f.lsb, "width": f.width, "reset": f.reset,
                         "mask": f.mask, "doc": f.doc} for f in self.fields]}
        if self.capture:
            d["capture"] = self.capture
        if self.const:
            d["const"] = True
        return d


def config_hash(config):
    """32-bit identification hash of ``config`` (first 4 bytes of the SHA-256 of its
    sorted JSON): what ``CONFIG_HASH`` reads."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def format_code(name):
    """The code of an element format in ``FORMATS.A_FORMAT``/``W_FORMAT``: its index in
    :data:`golden.formats.FORMATS`."""
    return list(FORMATS).index(name)


def _whole(name, width, doc, reset=0):
    return (Field(name, 0, width, reset, doc),)


def register_map(config, version=(0, 0, 0)):
    """The wrapper's registers, in offset order.

    Parameters
    ----------
    config : Config
    version : (int, int, int)
        nmmx version (major, minor, patch) that ``VERSION`` reads.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`Config`.
    ValueError
        ``version`` is not three whole numbers in 0..255.
    """
    if not isinstance(config, Config):
        raise TypeError(f"register_map needs a golden.Config, not {config!r}")
    if (not isinstance(version, tuple) or len(version) != 3
            or not all(isinstance(v, int) and 0 <= v <= 255 for v in version)):
        raise ValueError(f"version must be three whole numbers in 0..255, not {version!r}")
    c = config
    regs = []

    def add(name, offset, access, fields, doc, capture=None, const=False):
        regs.append(Register(name, offset, access, tuple(fields), doc, capture, const))

    def ident(name, offset, fields, doc):
        add(name, offset, "RO", fields, doc, const=True)

    # -- identification (read only, constants of the build) -------------------------------
    ident("ID", 0x00, _whole("MAGIC", 32, 'ASCII "NMMX"', ID_MAGIC),
        "identification magic")
    major, minor, patch = version
    ident("VERSION", 0x04, [Field("PATCH", 0, 8, patch), Field("MINOR", 8, 8, minor),
                                Field("MAJOR", 16, 8, major),
                                Field("MAP", 24, 8, MAP_REVISION, "register map revision")],
        "nmmx version of the generator")
    ident("CONFIG_HASH", 0x08, _whole("HASH", 32, "SHA-256 of the config JSON, "
                                          "first 4 bytes", config_hash(c)),
        "identifies the configuration")
    ident("GEOMETRY", 0x0C, [Field("ROWS", 0, 8, c.rows), Field("COLS", 8, 8, c.cols),
                                 Field("SPARSITY_N", 16, 8, c.n_keep),
                                 Field("SPARSITY_M", 24, 8, c.m_group)],
        "array size and N:M sparsity")
    ident("FORMATS", 0x10,
        [Field("A_FORMAT", 0, 8, format_code(c.a_format), "index in golden.FORMATS"),
         Field("W_FORMAT", 8, 8, format_code(c.w_format), "index in golden.FORMATS"),
         Field("DATAFLOW", 16, 1, int(c.dataflow == "ws"), "0 = os, 1 = ws"),
         Field("SCALED", 17, 1, int(c.scaled), "1 = MX (scale streams exist)")],
        "element formats and dataflow")
    ident("BLOCK_SIZE", 0x14, _whole("VALUE", 16, "MX block length", c.block_size),
        "MX block length along K")
    for off, key in ((0x18, "m_max"), (0x1C, "k_max"), (0x20, "n_max")):
        ident(key.upper(), off, _whole("VALUE", 32, f"largest GEMM {key[0].upper()}",
                                           getattr(c, key)),
            f"buffer limit {key}")
    # -- control and status -------------------------------------------------------------
    add("CTRL", 0x40, "RW", [Field("IRQ_EN", 0, 1, 0, "drive irq while IRQ.DONE is set")],
        "control")
    add("START", 0x44, "WO", [Field("GO", 0, 1, 0, "write 1: run the GEMM of M, K, N")],
        "start a GEMM (ignored while STATUS.BUSY, see ERROR.START_BUSY)")
    add("STATUS", 0x48, "RO",
        [Field("BUSY", 0, 1, 0, "a GEMM runs or its result streams out"),
         Field("DONE", 1, 1, 0, "the last GEMM's result has been streamed out"),
         Field("RESULT", 2, 1, 0, "the result stream is active")]
        + [Field(f"{s.name.upper()}_LOADED", 8 + i, 1, 0,
                 f"a {s.name} load ended with TLAST since reset")
           for i, s in enumerate(streams(c)) if s.direction == "in"],
        "status")
    add("ERROR", 0x4C, "W1C",
        [Field("START_BUSY", 0, 1, 0, "START while busy (ignored)"),
         Field("SHAPE", 1, 1, 0, "START or a load with M, K or N outside 1..max "
                                 "(nothing started or written)"),
         Field("LOAD_LENGTH", 2, 1, 0, "a load's TLAST did not match its shape")],
        "sticky errors, write 1 to clear")
    add("IRQ", 0x50, "W1C", [Field("DONE", 0, 1, 0, "a GEMM completed (result streamed)")],
        "interrupt status, write 1 to clear")
    add("M", 0x60, "RW", _whole("VALUE", c.m_bits, "GEMM M", 1), "GEMM rows of A and C")
    add("K", 0x64, "RW", _whole("VALUE", c.k_bits, "GEMM K", 1), "GEMM inner dimension")
    add("N", 0x68, "RW", _whole("VALUE", c.n_bits, "GEMM N", 1), "GEMM columns of W and C")
    # -- counters ------------------------------------------------------------------------
    hi_bits = c.counter_bits - 32

    def counter_pair(stem, off, port):
        what = port
        if port in counter_table.ACCESS_COUNTERS:
            what += " ({} word {})".format(*counter_table.ACCESS_COUNTERS[port])
        add(f"{stem}_LO", off, "RO", _whole("VALUE", 32, f"{port} bits 31..0"),
            f"engine counter {what}, low word (a read captures the high word)")
        add(f"{stem}_HI", off + 4, "RO",
            _whole("VALUE", hi_bits, f"{port} bits {c.counter_bits - 1}..32"),
            f"engine counter {port}, high word as captured by {stem}_LO",
            capture=f"{stem}_LO")

    pairs = counter_regs(c)
    for stem, (off, port) in pairs.items():
        if port in counter_table.RUN_COUNTERS:
            counter_pair(stem, off, port)
    add("GEMMS", 0xA0, "RO", _whole("VALUE", 32, "completed GEMMs"), "GEMMs completed")
    add("BAD_ACCESS", 0xA4, "RO", _whole("VALUE", 32, "SLVERR responses"),
        "writes to read-only registers and accesses to unmapped addresses")
    for stem, (off, port) in pairs.items():
        if port not in counter_table.RUN_COUNTERS:
            counter_pair(stem, off, port)
    return tuple(regs)


def register(regs, name):
    """The register called ``name`` in ``regs``."""
    for r in regs:
        if r.name == name:
            return r
    raise KeyError(f"No register named {name!r}")


def addr_bits(regs):
    """AXI4-Lite address width of the map: enough for the highest offset, at least 8."""
    top = max(r.offset for r in regs) + 4
    return max(8, (top - 1).bit_length())


# -- streams ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """An AXI4-Stream port of the wrapper.

    Members
    -------
    name : str
        Port prefix is ``s_axis_<name>`` (in) or ``m_axis_<name>`` (out).
    direction : str
        ``"in"`` (a sink loading ``buffer``) or ``"out"`` (the C source).
    buffer : str
        Engine buffer (a :attr:`Config.host_buffers` key).
    word_bits : int
        Bits of one stream word, right-aligned in TDATA: one buffer word (C: all
        ``cols`` lanes of a C word).
    tdata_bits : int
        ``word_bits`` rounded up to whole bytes.
    order : str
        Which word comes when.
    """

    name: str
    direction: str
    buffer: str
    word_bits: int
    order: str

    @property
    def tdata_bits(self):
        return -(-self.word_bits // 8) * 8

    @property
    def prefix(self):
        return ("s_axis_" if self.direction == "in" else "m_axis_") + self.name

    def to_dict(self):
        return {"name": self.name, "prefix": self.prefix, "direction": self.direction,
                "buffer": self.buffer, "word_bits": self.word_bits,
                "tdata_bits": self.tdata_bits, "order": self.order}


def streams(config):
    """The wrapper's streams: the sinks (A, W, and for MX the A and W scales) and the C
    source, in port order."""
    if not isinstance(config, Config):
        raise TypeError(f"streams needs a golden.Config, not {config!r}")
    bufs = config.host_buffers
    out = [Stream("a", "in", "a_data", bufs["a_data"][2],
                  "row i = 0..M-1, then group g = 0..G-1: one word per (i, g)"),
           Stream("w", "in", "w_data", bufs["w_data"][2],
                  "column j = 0..N-1, then group g = 0..G-1: one word per (j, g)")]
    if config.scaled:
        out += [Stream("a_scale", "in", "a_scale", bufs["a_scale"][2],
                       "row i, then block b = 0..B-1: one E8M0 code per (i, b)"),
                Stream("w_scale", "in", "w_scale", bufs["w_scale"][2],
                       "column j, then block b = 0..B-1: one E8M0 code per (j, b)")]
    out.append(Stream("c", "out", "c", config.c_word_bits,
                      "row i = 0..M-1, then column tile t = 0..ceil(N/C)-1: lanes "
                      "j = t*C + lane; lanes with j >= N read 0"))
    return tuple(out)


# -- cycle model of the buses -------------------------------------------------------------


def load_words(config, m, k, n):
    """Stream words that load an M x K x N GEMM: stream name -> count (TLAST on the
    last of each)."""
    config.check_gemm(m, k, n)
    g = config.groups(k)
    b = config.padded_k(k) // config.block_size
    out = {"a": m * g, "w": n * g}
    if config.scaled:
        out.update({"a_scale": m * b, "w_scale": n * b})
    return out


def load_cycles(config, m, k, n):
    """Cycles to load the buffers with every sink offered a word in every cycle: the
    sinks share the engine's one write port (one word per cycle), so the sum of
    :func:`load_words`."""
    return sum(load_words(config, m, k, n).values())


def result_words(config, m, n):
    """C stream words of an M x N result: ``m * ceil(n / cols)``."""
    return m * -(-n // config.cols)


def result_cycles(config, m, n):
    """Cycles from the engine's ``done`` to the last C word's handshake with TREADY
    always high: :data:`RESULT_LATENCY`, then one word per cycle."""
    return RESULT_LATENCY + result_words(config, m, n) - 1


def soc_cycles(config, m, k, n, skip=None):
    """Cycles from the ``START.GO`` write handshake to the last C word's handshake
    with TREADY always high: :data:`START_LATENCY` + the engine's
    :meth:`Config.cycles` (given the run's weight-tile mask ``skip`` when the engine has
    ``tile_skip``, :func:`golden.skip.weight_tile_mask`) + :func:`result_cycles`."""
    return (START_LATENCY + config.schedule.cycles(m, k, n, skip)
            + result_cycles(config, m, n))
