"""Speed of the golden model: ``python -m golden.bench`` (figures, never asserted by a test).

Prints, for one GEMM shape, the time and dense-equivalent MAC/s of :func:`golden.gemm`
for every format pair next to a float32 numpy matmul of the same shape measured in the
same run (and their ratio); the time of :func:`golden.quantize_mx` on one tensor next to
the previous float64 formulation (:func:`golden.quant.quantize_mx_float64`) and, given
``--microxcaling DIR`` (a checkout of github.com/microsoft/microxcaling; needs torch),
microxcaling's ``_quantize_mx`` on torch CPU with ``round="even"``; and with
``--dse-numerics`` the time the design-space sweep spends in
:func:`dse.sweep.evaluate_numerics` for every point of a sweep file.

Every figure is the best of ``--repeat`` runs.  Also runs as a plain script
(``python golden/bench.py``) with ``PYTHONPATH`` pointing at an older checkout, to time
that checkout's golden model with the same code.
"""

import argparse
import os
import tempfile
import sys
import time

import numpy as np

from golden.config import Config, parse_sparsity
from golden.formats import FORMATS
from golden.gemm import gemm
from golden.quant import quantize_mx

#: The mixed pair of the README's design-space study (W mxfp4_e2m1, A mxfp8_e4m3).
MIXED_PAIRS = (("mxfp8_e4m3", "mxfp4_e2m1"),)


class UsageError(Exception):
    pass


def _shape(text, dims, flag):
    parts = text.lower().split("x")
    if len(parts) != dims or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"{flag} must be {dims} positive whole numbers joined by 'x', "
                         f"not {text!r}")
    return tuple(int(p) for p in parts)


def _best(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _pairs(text):
    if text == "all":
        return [(f, f) for f in FORMATS] + list(MIXED_PAIRS)
    pairs = []
    for part in text.split(","):
        a, _, w = part.partition("/")
        w = w or a
        for f in (a, w):
            if f not in FORMATS:
                raise UsageError(f"--pairs names the unknown format {f!r}")
        pairs.append((a, w))
    return pairs


def _operands(a_fmt, shape, rng):
    m, k, n = shape
    if not FORMATS[a_fmt].scaled:
        return rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    return (rng.standard_normal((m, k)).astype(np.float32),
            rng.standard_normal((k, n)).astype(np.float32))


def bench_gemm(shape, pairs, sparsities, repeat, out=print):
    """Time ``golden.gemm`` per pair and sparsity next to a float32 matmul."""
    rng = np.random.default_rng(0)
    m, k, n = shape
    a32 = rng.standard_normal((m, k)).astype(np.float32)
    w32 = rng.standard_normal((k, n)).astype(np.float32)
    t_f32 = _best(lambda: a32 @ w32, max(repeat, 5))
    macs = m * k * n
    out(f"golden.gemm {m}x{k}x{n} (dense-equivalent MACs {macs:.3g}); float32 numpy matmul "
        f"{t_f32 * 1e3:.2f} ms = {macs / t_f32:.3g} MAC/s")
    out(f"{'a_format':<11} {'w_format':<11} {'N:M':>5} {'time':>9} {'MAC/s':>9} "
        f"{'x f32 time':>10}")
    rows = []
    for a_fmt, w_fmt in pairs:
        a, w = _operands(a_fmt, shape, rng)
        for sp in sparsities:
            t = _best(lambda: gemm(a, w, a_format=a_fmt, w_format=w_fmt, sparsity=sp),
                      repeat)
            rows.append((a_fmt, w_fmt, sp, t, macs / t, t / t_f32))
            out(f"{a_fmt:<11} {w_fmt:<11} {sp[0]:>2}:{sp[1]:<2} {t * 1e3:7.1f}ms "
                f"{macs / t:9.3g} {t / t_f32:10.1f}")
    return t_f32, rows


def _microxcaling(path):
    """microxcaling's ``_quantize_mx`` and torch, or a note saying why not."""
    if path is None:
        return None, "microxcaling comparison skipped: no --microxcaling DIR given"
    try:
        import torch
    except ImportError:
        return None, ("microxcaling comparison skipped: torch is not installed "
                      "(pip install 'nmmx[bench]')")
    sys.path.insert(0, os.path.abspath(path))
    try:
        from mx.mx_ops import _quantize_mx
    except ImportError as e:
        return None, f"microxcaling comparison skipped: cannot import mx.mx_ops ({e})"
    finally:
        sys.path.pop(0)
    return (torch, _quantize_mx), None


#: nmmx format name -> microxcaling element format name.
_MX_NAMES = {"mxfp8_e4m3": "fp8_e4m3", "mxfp8_e5m2": "fp8_e5m2", "mxfp6_e2m3": "fp6_e2m3",
             "mxfp6_e3m2": "fp6_e3m2", "mxfp4_e2m1": "fp4_e2m1", "mxint8": "int8"}


def bench_quant(shape, formats, repeat, mx_dir, out=print):
    """Time ``quantize_mx`` against the float64 formulation and microxcaling."""
    from golden.quant import quantize_mx_float64
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    mx, note = _microxcaling(mx_dir)
    label = "x".join(map(str, shape))
    out(f"quantize_mx on a {label} float32 tensor, blocks of 32 along the last axis "
        f"(torch threads: {mx[0].get_num_threads() if mx else '-'})")
    if note:
        out(f"  note: {note}")
    rows = []
    for f in formats:
        t_new = _best(lambda: quantize_mx(x, f, 32, axis=-1), repeat)
        t_old = _best(lambda: quantize_mx_float64(x, f, 32, axis=-1), repeat)
        line = (f"  {f:<11} golden {t_new * 1e3:7.1f} ms   float64 formulation "
                f"{t_old * 1e3:7.1f} ms ({t_old / t_new:.1f}x)")
        t_mx = None
        if mx and f in _MX_NAMES:
            torch, qmx = mx
            xt = torch.from_numpy(x)
            t_mx = _best(lambda: qmx(xt, 8, _MX_NAMES[f], shared_exp_method="max",
                                     axes=[-1], block_size=32, round="even"), repeat)
            line += f"   microxcaling {t_mx * 1e3:7.1f} ms ({t_mx / t_new:.1f}x)"
        rows.append((f, t_new, t_old, t_mx))
        out(line)
    return rows


def bench_dse_numerics(sweep, repeat, out=print):
    """Time ``dse.sweep.evaluate_numerics`` over every point of a sweep file."""
    from dse.__main__ import prepare
    from dse import sweep as _sweep
    # prepare() only checks the output location; nothing is written there.
    out_dir = os.path.join(tempfile.gettempdir(), "nmmx-bench-unused")
    configs, settings, _ = prepare(["--sweep", sweep, "-o", out_dir])

    def run():
        _sweep.clear_numerics_cache()     # every timed pass evaluates the whole sweep
        for c in configs:
            _sweep.evaluate_numerics(c, settings)

    run()   # weights and activations cached, as in a sweep after its first point
    t = _best(run, repeat)
    out(f"dse numerics ({sweep}: {len(configs)} points, eval_shape "
        f"{'x'.join(map(str, settings.eval_shape))}): {t:.2f} s "
        f"({t / len(configs) * 1e3:.0f} ms per point)")
    return t


def build_parser():
    p = argparse.ArgumentParser(prog="python -m golden.bench", description=__doc__.split(
        "\n")[0])
    p.add_argument("--gemm", default="512x512x512", help="GEMM shape MxKxN (512x512x512)")
    p.add_argument("--pairs", default="all",
                   help="'all' or a comma list of A/W format pairs, e.g. mxfp8_e4m3/mxfp4_e2m1")
    p.add_argument("--sparsity", default="2:4,4:4", help="comma list of N:M (2:4,4:4)")
    p.add_argument("--quant-shape", default="4096x4096", help="quantize_mx tensor (4096x4096)")
    p.add_argument("--quant-formats", default="mxfp8_e4m3,mxfp4_e2m1")
    p.add_argument("--microxcaling", metavar="DIR", default=None,
                   help="checkout of microsoft/microxcaling to compare against")
    p.add_argument("--dse-numerics", metavar="SWEEP", nargs="?", const="dse/example_sweep.toml",
                   default=None, help="also time the sweep's numerical-error part")
    p.add_argument("--only", default="gemm,quant",
                   help="sections to run: comma list of gemm, quant, dse")
    p.add_argument("--repeat", type=int, default=3)
    return p


def _parse(argv):
    args = build_parser().parse_args(argv)
    shape = _shape(args.gemm, 3, "--gemm")
    qshape = _shape(args.quant_shape, 2, "--quant-shape")
    pairs = _pairs(args.pairs)
    try:
        sparsities = [parse_sparsity(s) for s in args.sparsity.split(",")]
        for sp in sparsities:
            Config(sparsity=sp)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--sparsity: {e}") from None
    qformats = args.quant_formats.split(",")
    for f in qformats:
        if f not in FORMATS or not FORMATS[f].scaled:
            raise UsageError(f"--quant-formats needs MX formats, not {f!r}")
    sections = set(args.only.split(","))
    if args.dse_numerics:
        sections.add("dse")
    if not sections <= {"gemm", "quant", "dse"}:
        raise UsageError(f"--only takes gemm, quant and dse, not {args.only!r}")
    if args.microxcaling is not None and not os.path.isdir(args.microxcaling):
        raise UsageError(f"--microxcaling must be a microxcaling checkout directory, not "
                         f"{args.microxcaling!r}")
    if "dse" in sections and not os.path.isfile(args.dse_numerics or "dse/example_sweep.toml"):
        raise UsageError(f"--dse-numerics needs a sweep file, not {args.dse_numerics!r}")
    if args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, not {args.repeat}")
    return args, shape, qshape, pairs, sparsities, qformats, sections


def main(argv=None):
    try:
        args, shape, qshape, pairs, sparsities, qformats, sections = _parse(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}, "
          f"{os.cpu_count()} cpus, numpy {np.__version__}")
    if "gemm" in sections:
        bench_gemm(shape, pairs, sparsities, args.repeat)
    if "quant" in sections:
        bench_quant(qshape, qformats, args.repeat, args.microxcaling)
    if "dse" in sections:
        bench_dse_numerics(args.dse_numerics or "dse/example_sweep.toml", args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
