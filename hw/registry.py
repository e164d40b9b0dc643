"""Which hardware classes build an engine of each dataflow: the one registry that the
generator, the synthesis flow, the simulator harness and the tests read.

>>> hardware(Config(dataflow="ws")).engine
<class 'hw.ws.WSEngine'>
"""

from dataclasses import dataclass

from golden.config import Config, Dataflow
from .array import Array
from .engine import Engine
from .multi_pe import MultiPE, MultiPEInstance
from .pe import PE, PEInstance
from .ws import WSArray, WSEngine, WSPE, WSPEInstance

__all__ = ["Hardware", "HARDWARE", "UNIFIED", "hardware", "pe_module_name"]


@dataclass(frozen=True)
class Hardware:
    """The component classes of one dataflow.

    Members
    -------
    pe : type
        The processing element (emitted once as its own module).
    pe_reference : type
        The :class:`hw.pe.ModuleReference` subclass that instantiates that module.
    array : type
        The array of PEs (constructor takes ``pe_module=``).
    engine : type
        The generated top (constructor takes ``pe_module=``).
    """

    pe: type
    pe_reference: type
    array: type
    engine: type


#: Dataflow -> its hardware classes.
HARDWARE = {
    Dataflow.OS: Hardware(pe=PE, pe_reference=PEInstance, array=Array, engine=Engine),
    Dataflow.WS: Hardware(pe=WSPE, pe_reference=WSPEInstance, array=WSArray, engine=WSEngine),
}


#: The unified engine (``config.unified``, output stationary): shared PEs.
UNIFIED = Hardware(pe=MultiPE, pe_reference=MultiPEInstance, array=Array, engine=Engine)


def hardware(config):
    """The :class:`Hardware` of ``config.dataflow`` (:data:`UNIFIED` for a config with
    several modes)."""
    if not isinstance(config, Config):
        raise TypeError(f"hardware needs a golden.Config, not {config!r}")
    if config.unified:
        return UNIFIED
    return HARDWARE[config.dataflow]


def pe_module_name(top):
    """Name of the separately emitted PE module of the top module ``top``."""
    return f"{top}_pe"
