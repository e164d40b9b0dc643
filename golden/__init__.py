"""nmmx golden model: the executable specification of what the hardware computes.

Pure numpy.  See ``golden/README.md`` for the numerics contract.
"""

from .formats import Format, FORMATS, get_format, format_names
from .config import Config, parse_sparsity
from .quant import MXTensor, quantize_mx, dequantize_mx
from .sparse import prune_nm, compress_nm, decompress_nm
from .binary32 import round_to_binary32
from .gemm import EncodedOperands, encode_operands, gemm_encoded, gemm
from .skip import weight_tile_mask, gemm_tile_skip

__all__ = ["Format", "FORMATS", "get_format", "format_names", "Config", "parse_sparsity"]
__all__ += ["quantize_mx", "dequantize_mx", "MXTensor", "prune_nm", "compress_nm",
            "decompress_nm"]
__all__ += ["EncodedOperands", "encode_operands", "gemm_encoded", "gemm", "round_to_binary32"]
__all__ += ["weight_tile_mask", "gemm_tile_skip"]
