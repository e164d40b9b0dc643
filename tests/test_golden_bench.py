"""python -m golden.bench: argument errors and one tiny run (figures are not asserted)."""

import re

import pytest

from golden import bench


@pytest.mark.parametrize("argv, message", [
    (["--gemm", "8x8"], r"--gemm must be 3 positive whole numbers joined by 'x', not '8x8'"),
    (["--pairs", "mxfp9"], r"--pairs names the unknown format 'mxfp9'"),
    (["--sparsity", "5:4"], r"--sparsity: N:M sparsity needs 0 < N <= M, not 5:4"),
    (["--quant-formats", "int8"], r"--quant-formats needs MX formats, not 'int8'"),
    (["--only", "gemm,area"], r"--only takes gemm, quant and dse, not 'gemm,area'"),
    (["--microxcaling", "/nonexistent/mx"],
     r"--microxcaling must be a microxcaling checkout directory, not '/nonexistent/mx'"),
    (["--repeat", "0"], r"--repeat must be at least 1, not 0"),
])
def test_bench_errors(argv, message, capsys):
    assert bench.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(rf"^error: {message}\n$", err), err


def test_bench_tiny_run(capsys):
    assert bench.main(["--gemm", "4x64x4", "--pairs", "mxfp4_e2m1,mxfp8_e4m3/mxfp8_e5m2,int8",
                       "--sparsity", "2:4", "--quant-shape", "8x64", "--quant-formats",
                       "mxfp4_e2m1", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^golden\.gemm 4x64x4 .* float32 numpy matmul .* MAC/s$", out, re.M)
    for pair in ("mxfp4_e2m1  mxfp4_e2m1", "mxfp8_e4m3  mxfp8_e5m2", "int8        int8"):
        assert re.search(rf"^{pair} +2:4 +[\d.]+ms +[\d.e+]+ +[\d.]+$", out, re.M), pair
    assert "microxcaling comparison skipped: no --microxcaling DIR given" in out
    assert re.search(r"^  mxfp4_e2m1  golden +[\d.]+ ms   float64 formulation", out, re.M)


def test_bench_dse_numerics_section(capsys, tmp_path):
    """The sweep's numerical-error part over a two-point sweep file (the README's
    figure comes from the same section on dse/example_sweep.toml)."""
    sweep = tmp_path / "tiny.toml"
    sweep.write_text('format = "mxfp4_e2m1"\nsparsity = ["2:4", "4:4"]\nrows = 2\n'
                     'cols = 2\nm_max = 8\nk_max = 64\nn_max = 8\ngemm = "8x64x8"\n'
                     'eval_shape = "8x64x8"\n')
    assert bench.main(["--only", "dse", "--dse-numerics", str(sweep), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^dse numerics \(.*tiny\.toml: 2 points, eval_shape 8x64x8\): "
                     r"[\d.]+ s \(\d+ ms per point\)$", out, re.M), out
