"""Coarse-grained sparsity (``tile_skip``): the OS controller skips all-zero weight tiles.

The flag and its errors, golden's skip semantics (:mod:`golden.skip`), the skip-aware cycle
model (hand-checked), the RTL in the Amaranth simulator (bit-exact against
``gemm_tile_skip`` and every counter equal to the model, for several masks, partial tiles,
G < R, int8, 1 x 1, special values, and the nonzero bits' life across runs), and one
Verilator regression over every stimulus class of ``python -m sim``.
"""

from dataclasses import replace

import numpy as np
import pytest

from golden import Config
from golden.counters import expected
from golden.formats import FORMATS, get_format
from golden.gemm import EncodedOperands, gemm_encoded
from golden.pack import WrSel
from golden.skip import gemm_tile_skip, skip_tiles, weight_tile_mask, zero_code_mask
from engine_harness import Step, c_lanes, random_encoded, run_steps
from golden.pack import c_read_addresses, unpack_c
from sim.stimulus import ZERO_TILE_PERCENTS, applicable_classes, make_operands

#: 2 x 2 array; K = 20 pads to 24 = G 6 groups (G > R); N = 7 has a partial last tile.
SMALL = Config(rows=2, cols=2, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1",
               sparsity=(2, 4), block_size=8, m_max=5, k_max=24, n_max=7, tile_skip=True)


def _zero_tiles(config, enc, tiles):
    """Set every stored weight value of these column tiles to code 0 (in place)."""
    for t in tiles:
        enc.w_values[:, :, t * config.cols:(t + 1) * config.cols] = 0
    return enc


def _counters(config, enc):
    """Every counter of the run (cycles, issued, stalls, tiles, buffer accesses) as the
    model gives it for the operands' weight-tile mask."""
    return expected(config, enc.m, enc.k, enc.n, weight_tile_mask(config, enc))


def _run(config, steps, seed=0):
    """Run the steps on the RTL; return ``(c, counters)`` of each."""
    out = []
    for step, (words, counters) in zip(steps, run_steps(config, steps, seed=seed)):
        enc = step.enc
        used = [words[a] for a in c_read_addresses(config, enc.m)]
        out.append((unpack_c(config, used, enc.m, enc.n), counters))
    return out


def _bits(c):
    return np.ascontiguousarray(c).view(np.uint32)


# -- the flag ------------------------------------------------------------------------------

def test_flag_in_config():
    c = SMALL
    assert c.name == "nmmx_os_2x2_mxfp4e2m1_2of4_skip"
    assert c.to_dict()["tile_skip"] is True and Config.from_dict(c.to_dict()) == c
    off = replace(c, tile_skip=False)
    assert off.name == "nmmx_os_2x2_mxfp4e2m1_2of4"
    # Off, the dict (manifest, cache and sweep keys) is the one of an engine without it.
    assert "tile_skip" not in off.to_dict() and Config.from_dict(off.to_dict()) == off
    assert "tile_skip" in c.schedule.timing() and "tile_skip" not in off.schedule.timing()


@pytest.mark.parametrize("kw, err, message", [
    ({"tile_skip": 1}, TypeError, r"^tile_skip must be True or False, not 1$"),
    ({"tile_skip": "on"}, TypeError, r"^tile_skip must be True or False, not 'on'$"),
    ({"tile_skip": True, "dataflow": "ws"}, ValueError,
     r"^tile_skip is built only for the output-stationary dataflow, not dataflow=ws$"),
])
def test_bad_config(kw, err, message):
    with pytest.raises(err, match=message):
        Config(**kw)


@pytest.mark.parametrize("cli", ["gen", "sim", "synth", "dse"])
@pytest.mark.parametrize("argv, message", [
    (["--tile-skip", "yes"], r"--tile-skip must be on or off, not 'yes'"),
    (["--tile-skip", ""], r"--tile-skip has an empty item in ''"),
    (["--tile-skip", "on", "--dataflow", "ws"],
     r"tile_skip is built only for the output-stationary dataflow, not dataflow=ws"),
])
def test_bad_flag(cli, argv, message, tmp_path, monkeypatch):
    """Every entry point: exit 2, one pinned sentence, nothing written, no work started."""
    from test_cli_errors import _check, _tree, run_in_process
    if cli == "dse":
        argv = ["-o", str(tmp_path / "out"), *argv]
    code, out, err = run_in_process(cli, argv, monkeypatch, tmp_path)
    _check(code, out, err, message, None, tmp_path)
    assert _tree(tmp_path) == {}


def test_flag_parses_everywhere():
    import argparse
    from nmmx.flags import add_config_flags, configs_from_args
    p = argparse.ArgumentParser()
    add_config_flags(p)
    assert configs_from_args(p.parse_args(["--tile-skip", "ON"]))[0].tile_skip is True
    assert configs_from_args(p.parse_args(["--tile-skip", "off"]))[0].tile_skip is False
    q = argparse.ArgumentParser()
    add_config_flags(q, multi=True)
    got = configs_from_args(q.parse_args(["--tile-skip", "off,on"]), multi=True)
    assert [c.tile_skip for c in got] == [False, True]


# -- golden --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FORMATS))
def test_zero_code_mask_finds_exactly_the_zero_codes(name):
    fmt = get_format(name)
    codes = np.arange(1 << fmt.bits)
    zero = (codes & zero_code_mask(fmt)) == 0
    table = fmt.decode_table()
    assert np.array_equal(zero, table == 0)


def test_mask_and_skipped_result():
    rng = np.random.default_rng(3)
    enc = random_encoded(SMALL, 5, 20, 7, rng)
    enc.w_values[enc.w_values == 0] = 1          # no zero value anywhere
    enc.w_values[:, :, 6] = 0                    # the partial last tile (column 6 only)
    enc.w_values[:, :, 2:4] = 0x8                # tile 1: -0 codes only (E2M1 sign bit)
    enc.w_values[0, 0, 0] = 0                    # tile 0 keeps nonzero values
    assert weight_tile_mask(SMALL, enc).tolist() == [False, True, False, True]
    full = gemm_encoded(enc, SMALL)
    got = gemm_tile_skip(enc, SMALL)
    assert np.array_equal(_bits(got[:, [0, 1, 4, 5]]), _bits(full[:, [0, 1, 4, 5]]))
    assert (_bits(got[:, [2, 3, 6]]) == 0).all()
    assert np.array_equal(_bits(skip_tiles(SMALL, enc, full)), _bits(got))
    # Off, the engine's result is the full computation.
    off = replace(SMALL, tile_skip=False)
    assert np.array_equal(_bits(gemm_tile_skip(enc, off)), _bits(full))


def test_skip_differs_from_full_only_at_specials():
    """Zero weights against a NaN scale or an Inf activation give NaN when computed, +0
    when skipped; with finite operands the two agree bit for bit."""
    cfg = replace(SMALL, a_format="mxfp8_e5m2")
    rng = np.random.default_rng(4)
    enc = _zero_tiles(cfg, random_encoded(cfg, 5, 20, 7, rng), [0])
    enc.a_codes[:] &= 0xBF                       # E5M2 exponents below 11111: finite
    assert np.array_equal(_bits(gemm_tile_skip(enc, cfg)), _bits(gemm_encoded(enc, cfg)))
    enc.a_codes[1, 0:4] = 0x7C                   # +Inf in E5M2, a whole group
    enc.a_scales[3, 1] = 0xFF                    # NaN scale
    full, skip = gemm_encoded(enc, cfg), gemm_tile_skip(enc, cfg)
    assert np.isnan(full[[1, 3], 0:2]).all()
    assert (_bits(skip[:, 0:2]) == 0).all()
    assert np.array_equal(_bits(skip[:, 2:]), _bits(full[:, 2:]))


# -- the cycle model -----------------------------------------------------------------------

def test_model_hand_checked():
    """SMALL, 5 x 20 x 7: 3 tile rows x 4 tile columns, G = 6 > R = 2, so P = 6; the
    issue span is G_0 + the periods of the other 11 tiles (R for a skipped one)."""
    s, c = SMALL.schedule, SMALL
    tail = c.buffer_read_latency + c.rows - 1 + c.pe_latency + s.drain_latency
    head = c.issue_latency - 1
    assert s.cycles(5, 20, 7) == head + 6 + 11 * 6 + tail
    assert s.cycles(5, 20, 7, [False] * 4) == s.cycles(5, 20, 7)
    # Tile column 1 skipped: per tile row 6 + 2 + 6 + 6 = 20, three rows, first tile 6.
    assert s.cycles(5, 20, 7, [False, True, False, False]) == head + 3 * 20 + tail
    # First and last tile columns skipped: rows of 2 + 6 + 6 + 2; the first tile is one group.
    assert s.cycles(5, 20, 7, [True, False, False, True]) == head + 1 + (3 * 16 - 2) + tail
    # Everything skipped: R cycles per tile after a first one-group tile.
    assert s.cycles(5, 20, 7, [True] * 4) == head + 1 + 11 * 2 + tail
    assert s.issued(5, 20, 7, [True, False, False, True]) == 6 * 2 * 5 * 4
    assert s.issued(5, 20, 7, [False, False, False, True]) == 6 * 2 * 5 * 6
    assert s.stall(5, 20, 7, [True] * 4) == s.cycles(5, 20, 7, [True] * 4)
    assert s.tiles(5, 20, 7, [True] * 4) == 12
    # G = 2 < R = 4: periods are R either way; only a skipped first tile saves G_0 - 1.
    wide = replace(SMALL, rows=4, m_max=9, block_size=8)
    w = wide.schedule
    assert w.cycles(9, 8, 7, [True, False, False, False]) == w.cycles(9, 8, 7) - 1
    assert w.cycles(9, 8, 7, [False, True, True, True]) == w.cycles(9, 8, 7)


def test_model_mask_errors():
    s = SMALL.schedule
    with pytest.raises(ValueError, match=r"^A weight-tile mask of N=7 needs 4 entries "
                                         r"\(one per column tile\), not 3$"):
        s.cycles(5, 20, 7, [True] * 3)
    off = replace(SMALL, tile_skip=False)
    with pytest.raises(ValueError, match=r"^A weight-tile mask needs an engine with "
                                         r"tile_skip, not nmmx_os_2x2_mxfp4e2m1_2of4$"):
        off.schedule.cycles(5, 20, 7, [True] * 4)


def test_speedup_is_the_skipped_fraction_within_fill_and_drain():
    """64 x 1024 x 64 on 8 x 8: cycles fall with the skipped tiles' share, up to R cycles
    per skipped tile and the fixed fill and drain."""
    cfg = Config(tile_skip=True)
    s = cfg.schedule
    full = s.cycles(64, 1024, 64)
    g, r = cfg.groups(1024), cfg.rows
    for zero in range(9):
        skip = [t < zero for t in range(8)]
        first = zero > 0          # the first tile is then one group instead of G
        later = 8 * zero - first   # skipped tiles after the first: P - R = G - R each
        assert s.cycles(64, 1024, 64, skip) == full - later * (g - r) - first * (g - 1)


# -- the RTL (Amaranth simulator) --------------------------------------------------------------

CONFIGS = [
    SMALL,
    # G = 2 < R = 4: the drain period, not the K loop, sets the pace.
    replace(SMALL, rows=4, cols=3, m_max=9, k_max=8, n_max=8),
    Config(rows=3, cols=2, a_format="int8", w_format="int8", sparsity=(1, 4), m_max=7,
           k_max=24, n_max=9, tile_skip=True),
    Config(rows=1, cols=1, a_format="mxfp8_e5m2", w_format="mxfp8_e4m3", sparsity=(2, 4),
           m_max=3, k_max=64, n_max=3, tile_skip=True),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_rtl_masks(config):
    """None, some (incl. the partial last tile and the first tile) and all tiles skipped,
    with random codes (NaN/Inf and NaN scales included): bit-exact against
    gemm_tile_skip and every counter equal to the model."""
    rng = np.random.default_rng(7)
    m, k, n = config.m_max, config.k_max - 3, config.n_max
    assert config.name != CONFIGS[1].name or config.groups(k) < config.rows
    tiles = -(-n // config.cols)
    masks = [[], [0], [tiles - 1], list(range(0, tiles, 2)), list(range(tiles))]
    runs = [_zero_tiles(config, random_encoded(config, m, k, n, rng, specials=True), zero)
            for zero in masks]
    runs.append(_zero_tiles(config, random_encoded(config, 2, 5, max(1, n - 2), rng), [0]))
    skipped = 0
    for enc, (c, counters) in zip(runs, _run(config, [Step(e) for e in runs])):
        assert np.array_equal(_bits(c), _bits(gemm_tile_skip(enc, config)))
        assert counters == _counters(config, enc)
        skipped += int(weight_tile_mask(config, enc).sum())
    assert skipped == sum(len(z) for z in masks) + 1


def test_nonzero_bits_follow_the_writes():
    """A tile the host does not rewrite keeps its bit (A-only rewrites, idle cycles with
    noise on the write inputs); a rewritten tile takes the bit of its new words."""
    cfg = SMALL
    rng = np.random.default_rng(9)
    first = _zero_tiles(cfg, random_encoded(cfg, 5, 20, 7, rng), [1])
    a_only = replace(random_encoded(cfg, 5, 20, 7, rng), w_values=first.w_values,
                     w_indices=first.w_indices, w_scales=first.w_scales)
    flipped = _zero_tiles(cfg, random_encoded(cfg, 5, 20, 7, rng), [0, 3])
    steps = [Step(first, idle=0.3), Step(a_only, sels={WrSel.A_DATA, WrSel.A_SCALE}),
             Step(flipped, idle=0.2), Step(flipped, sels=set())]
    for step, (c, counters) in zip(steps, _run(cfg, steps, seed=2)):
        assert np.array_equal(_bits(c), _bits(gemm_tile_skip(step.enc, cfg)))
        assert counters == _counters(cfg, step.enc)
    assert weight_tile_mask(cfg, a_only).tolist() == [False, True, False, False]
    assert weight_tile_mask(cfg, flipped).tolist() == [True, False, False, True]


def test_off_is_the_engine_without_it():
    """tile_skip off: zero tiles are computed (NaN where specials meet them), in the
    cycles of the model without a mask."""
    cfg = replace(SMALL, tile_skip=False, a_format="mxfp8_e5m2")
    rng = np.random.default_rng(5)
    enc = _zero_tiles(cfg, random_encoded(cfg, 5, 20, 7, rng, specials=True), [0, 1, 2, 3])
    (c, counters), = _run(cfg, [Step(enc)])
    assert np.array_equal(_bits(c), _bits(gemm_encoded(enc, cfg)))
    assert counters["cnt_cycles"] == cfg.schedule.cycles(5, 20, 7)


# -- stimulus and the Verilator regression -----------------------------------------------------

def test_zerotiles_classes():
    cfg = replace(SMALL, n_max=5)            # runs of 5 columns: tiles of 2, 2 and 1
    assert set(applicable_classes(cfg)) >= {f"zerotiles{p}" for p in ZERO_TILE_PERCENTS}
    assert not any(d.startswith("zerotiles")
                   for d in applicable_classes(replace(cfg, tile_skip=False)))
    for p in ZERO_TILE_PERCENTS:
        enc = make_operands(cfg, 4, 20, 13, f"zerotiles{p}", seed=1)
        for j0 in range(0, 13, 5):
            j1 = min(13, j0 + 5)
            sub = EncodedOperands(a_codes=enc.a_codes, a_scales=enc.a_scales,
                                  w_values=enc.w_values[:, :, j0:j1].copy(),
                                  w_indices=enc.w_indices[:, :, j0:j1].copy(),
                                  w_scales=enc.w_scales[:, j0:j1].copy(),
                                  m=enc.m, k=enc.k, n=j1 - j0)
            tiles = -(-(j1 - j0) // cfg.cols)
            assert weight_tile_mask(cfg, sub).sum() == round(p / 100 * tiles), (p, j0)


def test_verilator_regression_every_class():
    """python -m sim's path: every applicable stimulus class (zerotiles25..100 among
    them) on a 3 x 2 engine with partial tiles, bit-exact and cycles equal to the model
    given each run's mask."""
    from sim.run import Case, simulate_cases
    cfg = Config(rows=3, cols=2, a_format="mxfp8_e5m2", w_format="mxfp8_e4m3",
                 sparsity=(2, 4), m_max=7, k_max=96, n_max=5, tile_skip=True)
    classes = applicable_classes(cfg)
    shapes = [(7, 96, 5), (4, 61, 3), (9, 40, 11), (1, 1, 1)]
    cases = [Case(*shapes[t % len(shapes)], data=d, seed=t) for t, d in enumerate(classes)]
    reports = simulate_cases(cfg, cases)
    skipped = 0
    for r in reports:
        assert r["passed"] and r["mismatches"] == 0, (r["data"], r["gemm"])
        assert r["cycles"] == r["model_cycles"], r["data"]
        assert r["counters_match_model"], r["data"]
        for run in r["runs"]:           # every counter of every run, given its mask
            assert run["counters"] == expected(cfg, *run["shape"], run["skip"])
        skipped += r["skipped_tiles"]
    zt = {r["data"]: r for r in reports if r["data"].startswith("zerotiles")}
    assert zt["zerotiles100"]["skipped_tiles"] == zt["zerotiles100"]["tiles"]
    assert 0 < zt["zerotiles50"]["skipped_tiles"] < zt["zerotiles50"]["tiles"]
    assert skipped > 0


def test_sweep_file_takes_the_flag(tmp_path):
    """A dse sweep file lists tile_skip like the flag (on/off words, not numbers)."""
    from dse.__main__ import prepare
    f = tmp_path / "s.toml"
    f.write_text('tile_skip = ["off", "on"]\nrows = [2, 4]\nout = "o"\n')
    configs, _settings, _opt = prepare(["--sweep", str(f)])
    assert sorted((c.rows, c.tile_skip) for c in configs) == [
        (2, False), (2, True), (4, False), (4, True)]
