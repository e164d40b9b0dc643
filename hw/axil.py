"""The AXI4-Lite slave of the SoC wrapper (:mod:`hw.soc`): a register table of
:func:`golden.regmap.register_map` behind the five AXI4-Lite channels."""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.regmap import DATA_BITS, addr_bits

__all__ = ["AxiLiteRegisters", "axil_signature", "OKAY", "SLVERR"]

#: AXI response codes.
OKAY, SLVERR = 0, 2


def axil_signature(addr_width):
    """AXI4-Lite slave signals (flow as seen by the slave), without ``prot``."""
    return wiring.Signature({
        "awaddr": In(addr_width), "awvalid": In(1), "awready": Out(1),
        "wdata": In(DATA_BITS), "wstrb": In(DATA_BITS // 8), "wvalid": In(1),
        "wready": Out(1),
        "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
        "araddr": In(addr_width), "arvalid": In(1), "arready": Out(1),
        "rdata": Out(DATA_BITS), "rresp": Out(2), "rvalid": Out(1), "rready": In(1),
    })


def _port_name(reg):
    return reg.name.lower()


class AxiLiteRegisters(wiring.Component):
    """AXI4-Lite slave over a register table (:func:`golden.regmap.register_map`).

    One write (AW and W together) and one read are in flight at a time; each gets its
    response in the cycle after the handshake.  WSTRB masks the bytes of a write.

    Parameters
    ----------
    regs : tuple of golden.regmap.Register

    Members
    -------
    bus : In(axil_signature(addr_bits(regs)))
    <name> : Out(32)
        Value of each ``RW`` and ``W1C`` register.
    r_<name> : In(32)
        Hardware value of each ``RO`` register that is not constant (``capture`` pairs:
        the ``_HI`` value is sampled when ``_LO`` is read).
    set_<name> : In(32)
        Bits to set in each ``W1C`` register (setting wins over a clear).
    w_<name> : Out(32), stb_<name> : Out(1)
        Data and one-cycle strobe of a write to each ``WO`` register.
    bad_access : Out(1)
        One-cycle pulse per SLVERR response.
    """

    def __init__(self, regs):
        self._regs = tuple(regs)
        self._addr_bits = addr_bits(self._regs)
        offsets = [r.offset for r in self._regs]
        assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 for o in offsets)
        members = {"bus": In(axil_signature(self._addr_bits))}
        for r in self._regs:
            n = _port_name(r)
            if r.access == "RO" and not r.const:
                members[f"r_{n}"] = In(DATA_BITS)
            elif r.access == "RW":
                members[n] = Out(DATA_BITS)
            elif r.access == "W1C":
                members[n] = Out(DATA_BITS)
                members[f"set_{n}"] = In(DATA_BITS)
            elif r.access == "WO":
                members[f"w_{n}"] = Out(DATA_BITS)
                members[f"stb_{n}"] = Out(1)
        members["bad_access"] = Out(1)
        super().__init__(members)

    @property
    def regs(self):
        return self._regs

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        # -- write channel: AW and W together, response the cycle after ---------------
        w_fire = Signal()
        m.d.comb += [w_fire.eq(bus.awvalid & bus.wvalid & ~bus.bvalid),
                     bus.awready.eq(w_fire), bus.wready.eq(w_fire)]
        waddr = bus.awaddr[2:]
        bytes_ = Cat(*(bus.wstrb[i].replicate(8) for i in range(DATA_BITS // 8)))
        hit = {r.name: waddr == r.offset // 4 for r in self._regs}
        writable = [hit[r.name] for r in self._regs if r.access != "RO"]
        w_ok = Signal()
        m.d.comb += w_ok.eq(Cat(*writable).any() if writable else 0)
        bvalid, bresp = Signal(), Signal(2)
        m.d.comb += [bus.bvalid.eq(bvalid), bus.bresp.eq(bresp)]
        with m.If(w_fire):
            m.d.sync += [bvalid.eq(1), bresp.eq(Mux(w_ok, OKAY, SLVERR))]
        with m.Elif(bus.bready):
            m.d.sync += bvalid.eq(0)

        store = {}
        for r in self._regs:
            n = _port_name(r)
            wmask = bytes_ & r.mask
            write = w_fire & hit[r.name]
            if r.access == "RW":
                reg = Signal(DATA_BITS, init=r.reset, name=f"reg_{n}")
                with m.If(write):
                    m.d.sync += reg.eq((reg & ~wmask) | (bus.wdata & wmask))
                m.d.comb += getattr(self, n).eq(reg)
                store[r.name] = reg
            elif r.access == "W1C":
                reg = Signal(DATA_BITS, init=r.reset, name=f"reg_{n}")
                clear = Mux(write, bus.wdata & wmask, 0)
                m.d.sync += reg.eq((reg & ~clear) | (getattr(self, f"set_{n}") & r.mask))
                m.d.comb += getattr(self, n).eq(reg)
                store[r.name] = reg
            elif r.access == "WO":
                m.d.comb += [getattr(self, f"w_{n}").eq(bus.wdata & wmask),
                             getattr(self, f"stb_{n}").eq(write)]

        # -- read channel ----------------------------------------------------------------
        r_fire = Signal()
        m.d.comb += [r_fire.eq(bus.arvalid & ~bus.rvalid), bus.arready.eq(~bus.rvalid)]
        raddr = bus.araddr[2:]
        rvalid, rresp, rdata = Signal(), Signal(2), Signal(DATA_BITS)
        m.d.comb += [bus.rvalid.eq(rvalid), bus.rresp.eq(rresp), bus.rdata.eq(rdata)]
        shadows = {}
        for r in self._regs:
            if r.capture:
                shadows[r.name] = Signal(DATA_BITS, name=f"shadow_{_port_name(r)}")
        with m.If(r_fire):
            m.d.sync += [rvalid.eq(1), rdata.eq(0), rresp.eq(SLVERR)]
            # An if chain, not a Switch: Yosys writes a Switch as a casez without a
            # default, which Verilator's CASEINCOMPLETE flags.
            for r in self._regs:
                n = _port_name(r)
                if r.name in shadows:
                    value = shadows[r.name]
                elif r.access == "RO":
                    value = Const(r.reset, DATA_BITS) if r.const else \
                        getattr(self, f"r_{n}") & r.mask
                elif r.access == "WO":
                    value = Const(0, DATA_BITS)
                else:
                    value = store[r.name]
                with m.If(raddr == r.offset // 4):
                    m.d.sync += [rdata.eq(value), rresp.eq(OKAY)]
                    for hi in self._regs:
                        if hi.capture == r.name:
                            m.d.sync += shadows[hi.name].eq(
                                getattr(self, f"r_{_port_name(hi)}") & hi.mask)
        with m.Elif(bus.rready):
            m.d.sync += rvalid.eq(0)
        r_ok = Signal()
        m.d.comb += r_ok.eq(Cat(*(raddr == r.offset // 4 for r in self._regs)).any())
        m.d.comb += self.bad_access.eq((w_fire & ~w_ok) | (r_fire & ~r_ok))
        return m
