"""nmmx golden model: the executable specification of what the hardware computes.

Pure numpy.  See ``golden/README.md`` for the numerics contract.
"""

from .formats import Format, FORMATS, get_format, format_names
from .config import Config, parse_sparsity

__all__ = ["Format", "FORMATS", "get_format", "format_names", "Config", "parse_sparsity"]
