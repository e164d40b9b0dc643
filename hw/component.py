"""Base class of every nmmx component built from a :class:`golden.Config`, and the area
categories that hardware declares for the synthesis breakdown.

A unit declares its category as a class attribute (``area_category = "multipliers"``);
a register declares its own with :func:`category_signal` (a ``Signal`` with the
``nmmx_area`` attribute, which reaches the Verilog, the RTLIL and Yosys's JSON netlist).
``synth.attribution`` reads both; an undeclared register is a pipeline register.
"""

from amaranth import Signal, Value
from amaranth.lib import wiring

from golden.config import Config

__all__ = ["ConfigComponent", "AREA_ATTR", "AREA_CATEGORIES", "WORD_CATEGORY",
           "category_signal", "categorize", "unit_categories"]

#: The netlist attribute that carries a register's area category.
AREA_ATTR = "nmmx_area"

#: The PE breakdown's categories (``synth.attribution.pe_breakdown`` keys).
AREA_CATEGORIES = ("multipliers", "sparse_select", "scale_and_convert", "accumulators",
                   "pipeline_registers", "other")

#: Category of a register that holds a whole W data word (a weight link): its index
#: fields are metadata (sparse select), the rest pipeline (``golden.pack.word_layouts``).
WORD_CATEGORY = "w_data"


def _check_category(category):
    if category not in AREA_CATEGORIES + (WORD_CATEGORY,):
        raise ValueError(f"Area category must be one of {', '.join(AREA_CATEGORIES)} or "
                         f"{WORD_CATEGORY}, not {category!r}")
    return category


def category_signal(category, shape=None, *, src_loc_at=0, attrs=None, **kwargs):
    """A ``Signal`` whose area counts as ``category`` (an :data:`AREA_CATEGORIES` name,
    or :data:`WORD_CATEGORY`); other arguments as ``Signal``'s (its name is taken from
    the caller's variable, as ``Signal`` does).  Pipeline registers, the default of
    an undeclared register, get no attribute."""
    attrs = dict(attrs or {})
    if _check_category(category) != "pipeline_registers":
        attrs[AREA_ATTR] = category
    return Signal(shape, attrs=attrs, src_loc_at=1 + src_loc_at, **kwargs)


def categorize(value, category):
    """Declare the area category of an existing signal (a port that is a register);
    return it."""
    Value.cast(value).attrs[AREA_ATTR] = _check_category(category)
    return value


def unit_categories():
    """Component class name -> ``area_category`` of every ``hw`` unit that declares one."""
    from . import units, ws_pe   # noqa: F401  (import every unit class)
    out, stack = {}, [wiring.Component]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        category = cls.__dict__.get("area_category")
        if category is not None and cls.__module__.startswith("hw."):
            out[cls.__name__] = _check_category(category)
    return dict(sorted(out.items()))


class ConfigComponent(wiring.Component):
    """Base of the components built from a :class:`golden.Config`.

    The constructor arguments are checked (:meth:`validate`) in ``__new__``, before
    Amaranth's unused-elaboratable bookkeeping exists, so that a rejected component
    leaves no object behind to warn about at garbage collection.

    Parameters
    ----------
    config : golden.Config
    signature : wiring.Signature or dict
        The component's ports, built from ``config`` by the subclass.

    Members
    -------
    config : golden.Config
        The configuration the component was built from.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config` (the message names the subclass).
    """

    def __new__(cls, config, *args, src_loc_at=0, **kwargs):
        cls.validate(config, *args, **kwargs)
        # One frame up: an unused-component warning points at the caller, not here.
        return super().__new__(cls, config, *args, src_loc_at=1 + src_loc_at, **kwargs)

    @classmethod
    def validate(cls, config, *args, **kwargs):
        """Raise unless the constructor arguments can build this component (called with
        them before the object exists; subclasses extend it)."""
        if not isinstance(config, Config):
            raise TypeError(f"{cls.__name__} needs a golden.Config, not {config!r}")

    def __init__(self, config, signature):
        self._config = config
        super().__init__(signature)

    @property
    def config(self):
        return self._config
