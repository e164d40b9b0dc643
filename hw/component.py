"""Base class of every nmmx component built from a :class:`golden.Config`."""

from amaranth.lib import wiring

from golden.config import Config

__all__ = ["ConfigComponent"]


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
