"""``python -m gen``: generate one nmmx engine (Verilog + JSON manifest).

Example::

    python -m gen --rows 8 --cols 8 --format mxfp4_e2m1 --sparsity 2:4 -o build/

writes ``build/nmmx_os_8x8_mxfp4e2m1_2of4.v`` and ``.json``.  Bad input prints one
sentence on stderr, exits with status 2 and writes nothing.
"""

import sys
import time

from nmmx.flags import (ArgumentParser, UsageError, add_bus_flag, add_config_flags,
                       cli_main, config_from_args)
from gen.generate import generate


def build_parser():
    parser = ArgumentParser(
        prog="python -m gen",
        description="Generate an N:M-sparse MX systolic GEMM engine as Verilog (TOP.v) "
                    "and its JSON manifest (TOP.json).",
        examples=["python -m gen --rows 8 --cols 8 --format mxfp4_e2m1 --sparsity 2:4 -o build",
                  "    writes build/nmmx_os_8x8_mxfp4e2m1_2of4.v and .json",
                  "python -m gen --rows 4 --cols 4 --bus axi -o build",
                  "    writes the AXI-wrapped engine nmmx_os_4x4_mxfp8e4m3_2of4_axi.v, "
                  ".json, .h and _regs.md",
                  "python -m gen --list-formats"])
    add_config_flags(parser)
    parser.add_argument("-o", "--out", default="build", metavar="DIR",
                        help="output directory, created if missing [default: build]")
    parser.add_argument("--name", default=None, metavar="TOP",
                        help="top-level module and file name [default: the config's name, "
                             "e.g. nmmx_os_8x8_mxfp8e4m3_2of4]")
    add_bus_flag(parser, "; axi also writes TOP.h and TOP_regs.md")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="do not print the written paths")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    t0 = time.monotonic()
    try:
        # generate() checks the name and the output path before it writes anything.
        # args.out stays a string: Path("") would quietly mean the current directory.
        paths = generate(config, args.out, args.name, bus=args.bus)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not args.quiet:
        names = ", ".join(str(p) for p in paths[:-1]) + f" and {paths[-1]}"
        print(f"wrote {names} in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main, interrupted="nothing was written; run the same command again"))
