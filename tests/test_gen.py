"""``python -m gen``: generation, manifest, determinism, bad input, speed and lint."""

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gen.__main__ import main
from nmmx.flags import run_cli
from gen.generate import generate
from golden import Config
from golden.pack import WR_SEL
from hw.lint import VERILATOR_WAIVERS, lint_verilog

ROOT = Path(__file__).resolve().parent.parent

# Small buffers keep elaboration quick; the array shape and numerics are what vary.
SMALL = dict(m_max=8, k_max=64, n_max=8)


def _cfg(rows, cols, fmt, sparsity, **kw):
    a, w = (fmt, fmt) if isinstance(fmt, str) else fmt
    n, m = sparsity
    args = dict(SMALL, rows=rows, cols=cols, a_format=a, w_format=w, sparsity=(n, m),
                block_size=max(32, m))
    args.update(kw)
    return Config(**args)


SPREAD = [
    _cfg(1, 1, "int8", (1, 1)),
    _cfg(1, 1, "mxfp8_e5m2", (2, 2)),
    _cfg(3, 5, "mxfp4_e2m1", (2, 8)),
    _cfg(3, 5, ("mxfp6_e2m3", "mxint4"), (1, 2)),
    _cfg(8, 8, "mxfp8_e4m3", (1, 16), k_max=256),
    _cfg(16, 4, ("mxint8", "mxfp6_e3m2"), (4, 8)),
    _cfg(16, 4, "int8", (1, 4)),
    _cfg(2, 3, "mxint2", (4, 4), block_size=4),
]

# Derived widths worked by hand (k_max=64 unless named).  int8: |code| <= 128, so a
# product needs 15 bits + sign; no blocks, so K pads to the group (here 1).  mxfp4_e2m1:
# 6.0 = 12 units of 0.5, a product 144 (8 bits + sign), 32/8*2 = 8 slots per block sum
# to 1152 (11 bits + sign); 8 codes of 4 bits, slots of 4 + 3 index bits.  mxfp8_e4m3:
# 448 = 229376 units of 2**-9, a product < 2**36, 2 slots per block < 2**37; 16 codes
# of 8 bits, one slot of 8 + 4 index bits; k_max=256 is 16 groups, 8 blocks.
DERIVED = {
    "nmmx_os_1x1_int8_1of1": dict(product_bits=16, block_acc_bits=32, index_bits=0,
                                  a_group_bits=8, w_slot_bits=8, w_group_bits=8,
                                  groups_max=64, blocks_max=64),
    "nmmx_os_3x5_mxfp4e2m1_2of8": dict(product_bits=9, block_acc_bits=12, index_bits=3,
                                       a_group_bits=32, w_slot_bits=7, w_group_bits=14,
                                       groups_max=8, blocks_max=2),
    "nmmx_os_8x8_mxfp8e4m3_1of16": dict(product_bits=37, block_acc_bits=38, index_bits=4,
                                        a_group_bits=128, w_slot_bits=12, w_group_bits=12,
                                        groups_max=16, blocks_max=8),
}

SIZES = [(1, 1), (3, 5), (8, 8), (16, 4)]
FORMATS = ["int8", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4_e2m1",
           "mxint8", "mxint4", "mxint2"]
SPARSITIES = [(1, 1), (2, 2), (4, 4), (1, 2), (2, 4), (1, 4), (2, 8), (4, 8), (1, 16)]


def _check_outputs(config, v_path, j_path, name):
    assert v_path == v_path.parent / f"{name}.v"
    assert j_path == j_path.parent / f"{name}.json"
    text = v_path.read_text()
    info = json.loads(j_path.read_text())
    assert re.search(rf"^module {name}\(", text, re.M)
    assert re.search(rf"^module {name}_pe\(", text, re.M)
    # The PE is emitted once and instantiated R x C times.
    assert len(re.findall(rf"^\s*{name}_pe pe \(", text, re.M)) == config.rows * config.cols
    assert info["top"] == name and info["pe_module"] == f"{name}_pe"
    assert Config.from_dict({**info["config"]}) == config
    d = info["derived"]
    if config.name in DERIVED:
        assert {key: d[key] for key in DERIVED[config.name]} == DERIVED[config.name]
    # Every port in the manifest is a port of the Verilog top with that width.
    header = re.search(rf"^module {name}\((.*?)\);", text, re.M | re.S).group(1)
    verilog_ports = {p.strip() for p in header.split(",")}
    ports = {p["name"]: p for p in info["ports"]}
    assert set(ports) == verilog_ports
    for p in info["ports"]:
        decl = re.search(rf"^\s*{p['dir']}put (?:\[(\d+):0\] )?{p['name']};", text, re.M)
        assert decl, p
        assert (int(decl.group(1)) + 1 if decl.group(1) else 1) == p["width"]
    assert ports["wr_data"]["width"] == max(config.a_group_bits, config.w_group_bits,
                                           config.scale_bits)
    assert ports["rd_data"]["width"] == 32 * config.cols
    # Word layouts: fields lie inside the word, never overlap, and fill it exactly.
    for layout in info["word_layouts"].values():
        bits = sorted((f["lsb"], f["msb"]) for f in layout["fields"])
        assert bits[0][0] == 0 and bits[-1][1] == layout["width"] - 1
        assert all(hi + 1 == lo for (_, hi), (lo, _) in zip(bits, bits[1:]))
    bufs = info["buffers"]
    assert bufs["a_data"]["depth"] == config.m_tiles_max * config.groups_max
    assert bufs["c"]["depth"] == config.m_max * config.n_tiles_max
    assert ("a_scale" in bufs) == config.scaled
    assert {k: v["wr_sel"] for k, v in bufs.items() if "wr_sel" in v} == {
        k: v for k, v in WR_SEL.items() if k in bufs}
    t = info["timing"]
    assert t["pe_latency"] == config.pe_latency
    assert t["drain_latency"] == config.rows + config.cols - 1


@pytest.mark.parametrize("config", SPREAD, ids=lambda c: c.name)
def test_generate_spread(tmp_path, config):
    v_path, j_path = generate(config, tmp_path)
    _check_outputs(config, v_path, j_path, config.name)


@pytest.mark.slow
@pytest.mark.parametrize("size,fmt,sparsity",
                         list(itertools.product(SIZES, FORMATS, SPARSITIES)),
                         ids=lambda x: "x".join(map(str, x)) if isinstance(x, tuple) else x)
def test_generate_cross_product(tmp_path, size, fmt, sparsity):
    config = _cfg(*size, fmt, sparsity)
    v_path, j_path = generate(config, tmp_path)
    _check_outputs(config, v_path, j_path, config.name)


def test_cli_success(tmp_path, capsys):
    out = tmp_path / "new" / "dir"
    argv = ["--rows", "3", "--cols", "5", "--format", "mxfp4_e2m1", "--sparsity", "2:8",
            "--m-max", "6", "--k-max", "64", "--n-max", "10", "-o", str(out),
            "--name", "my_top"]
    assert run_cli(main, argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["my_top.json", "my_top.v"]
    config = Config(rows=3, cols=5, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1",
                    sparsity=(2, 8), m_max=6, k_max=64, n_max=10)
    _check_outputs(config, out / "my_top.v", out / "my_top.json", "my_top")
    assert "my_top.v" in capsys.readouterr().out


def test_cli_default_name_and_help(tmp_path, capsys):
    assert run_cli(main, ["--rows", "1", "--cols", "1", "--format", "int8",
                          "--sparsity", "1:2", "--m-max", "2", "--k-max", "8",
                          "--n-max", "2", "-o", str(tmp_path), "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "nmmx_os_1x1_int8_1of2.json", "nmmx_os_1x1_int8_1of2.v"]
    assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    assert "[default: build]" in help_text and "[default: 2:4]" in help_text


def test_cli_list_formats(capsys):
    assert run_cli(main, ["--list-formats"]) == 0
    listed = capsys.readouterr().out
    for fmt in FORMATS:
        assert re.search(rf"^{fmt}\s", listed, re.M)


def test_cli_subprocess_exit_codes(tmp_path):
    """The real entry point: exit 0 on success, 2 with one stderr line on bad input."""
    ok = subprocess.run([sys.executable, "-m", "gen", "--rows", "1", "--cols", "1",
                         "--format", "int8", "--sparsity", "1:1", "--m-max", "1",
                         "--k-max", "4", "--n-max", "1", "-o", str(tmp_path / "ok")],
                        cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "gen", "--sparsity", "5:4",
                          "-o", str(tmp_path / "bad")],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr == "error: N:M sparsity needs 0 < N <= M, not 5:4\n"
    assert not (tmp_path / "bad").exists()


BAD = [
    (["--sparsity", "5:4"], r"N:M sparsity needs 0 < N <= M, not 5:4"),
    (["--sparsity", "2:3"], r"N:M sparsity needs M in \{1, 2, 4, 8, 16\}, not 2:3"),
    (["--sparsity", "two:4"], r"Sparsity must be written N:M with whole numbers, not 'two:4'"),
    (["--sparsity", "2:8", "--block-size", "12"],
     r"block_size must be a multiple of the sparsity group M=8, not 12"),
    (["--format", "mxfp9"], r"Unknown element format 'mxfp9'; choose one of .*"),
    (["--a-format", "int8", "--w-format", "mxint8"],
     r"int8 only pairs with int8, not a_format=int8 with w_format=mxint8"),
    (["--rows", "0"], r"rows must be between 1 and 64, not 0"),
    (["--cols", "-3"], r"cols must be between 1 and 64, not -3"),
    (["--k-max", "0"], r"k_max must be at least 1, not 0"),
    (["--m-max", "-1"], r"m_max must be at least 1, not -1"),
    (["--rows", "2.5"], r"--rows must be a whole number, not '2.5'"),
    (["--n-max", "ten"], r"--n-max must be a whole number, not 'ten'"),
    (["--name", "9top"], r"Top-level name must be a Verilog identifier \(letters, digits, "
                         r"underscores, not starting with a digit\), not '9top'"),
    (["--name", "a-b"], r"Top-level name must be a Verilog identifier .*, not 'a-b'"),
    (["--dataflow", "is"], r"dataflow must be one of os, ws, not 'is'"),
    (["--bogus"], r"unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_cli_bad_input(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert run_cli(main, argv + ["-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.match(rf"^error: {message}\n$", err), err
    assert not out.exists()


def test_cli_output_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert run_cli(main, ["--rows", "1", "--cols", "1", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert re.match(rf"^error: The output directory {re.escape(repr(str(target)))} exists "
                    rf"and is not a directory\n$", err), err
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    with pytest.raises(ValueError, match=r"^The output directory .* exists and is not a "
                                         r"directory$"):
        generate(Config(rows=1, cols=1), target)


def test_generate_wrong_arguments(tmp_path):
    with pytest.raises(TypeError, match=r"^generate needs a golden.Config, not 3$"):
        generate(3, tmp_path)
    with pytest.raises(ValueError, match=r"^Top-level name must be a Verilog identifier"):
        generate(Config(rows=1, cols=1), tmp_path, name="top.v")
    assert list(tmp_path.iterdir()) == []


def test_deterministic(tmp_path):
    config = _cfg(3, 5, "mxfp6_e3m2", (2, 4))
    first = generate(config, tmp_path / "a")
    second = generate(config, tmp_path / "b")
    for p, q in zip(first, second):
        assert p.read_bytes() == q.read_bytes()
    text = first[0].read_text()
    # No source locations, absolute paths or temporary directories leak into the output.
    assert "src =" not in text and str(ROOT) not in text and str(tmp_path) not in text
    assert "nmmx_gen_" not in text
    assert str(tmp_path) not in first[1].read_text()


def test_generation_8x8(tmp_path):
    # The defaults: mxfp8_e4m3 2:4, full-size buffers.  Its wall time is a figure of
    # ``python -m sim.bench`` (--gen-target), not a timed assertion here.
    config = Config(rows=8, cols=8)
    v, j = generate(config, tmp_path)
    assert v.stat().st_size > 0 and json.loads(j.read_text())["config"]["rows"] == 8


def test_waivers_are_documented():
    source = (ROOT / "hw" / "lint.py").read_text()
    for w in VERILATOR_WAIVERS:
        assert re.fullmatch(r"[A-Z]+", w)
        # Each waiver sits under a comment that says why.
        assert re.search(rf"#[^\n]*\n(?:\s*#[^\n]*\n)*\s*\"{w}\"", source), w


LINT = [SPREAD[0], SPREAD[2], SPREAD[3], SPREAD[5], SPREAD[6], SPREAD[7]]


@pytest.mark.parametrize("config", LINT, ids=lambda c: c.name)
def test_lint(tmp_path, config):
    v_path, _ = generate(config, tmp_path)
    ok, log = lint_verilog(v_path, config.name)
    assert ok, log


def test_lint_catches_problems(tmp_path):
    """The lint helper is not a rubber stamp: an undriven output fails it."""
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input wire a, output wire [1:0] y);\n"
                   "  assign y[0] = a;\nendmodule\n")
    ok, log = lint_verilog(bad, "bad")
    assert not ok and "UNDRIVEN" in log


def test_deterministic_across_processes(tmp_path):
    """Separate interpreters with different hash seeds write byte-identical files."""
    import os
    argv = [sys.executable, "-m", "gen", "--rows", "2", "--cols", "3", "--format",
            "mxfp8_e5m2", "--sparsity", "1:4", "--m-max", "4", "--k-max", "64",
            "--n-max", "6", "-q"]
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run(argv + ["-o", str(out)], cwd=ROOT, env=env, check=True)
        outs.append(out)
    for name in ("nmmx_os_2x3_mxfp8e5m2_1of4.v", "nmmx_os_2x3_mxfp8e5m2_1of4.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
