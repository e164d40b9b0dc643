"""Run-time modes (issue 16): the mode specs, the unified config, pair sparsity in golden,
the unified word packing, the per-mode cycle model and the shared PE; then timing and
energy per mode, the design-space study of unified engines and the prefill/decode
scenario."""

import numpy as np
import pytest

from golden import Config
from golden.config import Mode, parse_mode
from golden.schedule import OSSchedule
from golden.gemm import EncodedOperands, encode_operands, gemm, gemm_encoded
from golden.pack import data_words, pack_operands, word_layouts
from golden.sparse import compress_nm_pairs, decompress_nm, prune_nm, prune_nm_pairs

THREE = "mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp4_e2m1@4:8p"


def three(**kw):
    return Config(modes=THREE, **kw)


# -- specs and the config ------------------------------------------------------------------


@pytest.mark.parametrize("text, mode", [
    ("mxfp8_e4m3@2:4", Mode("mxfp8_e4m3", "mxfp8_e4m3", (2, 4))),
    (" mxfp4_e2m1@4:8p ", Mode("mxfp4_e2m1", "mxfp4_e2m1", (4, 8), pairs=True)),
    ("mxfp8_e4m3/mxfp8_e5m2@4:4", Mode("mxfp8_e4m3", "mxfp8_e5m2", (4, 4))),
])
def test_parse_mode(text, mode):
    assert parse_mode(text) == mode
    assert parse_mode(mode.spec) == mode


def test_mode_labels():
    assert parse_mode("mxfp4_e2m1@4:8p").label == "mxfp4e2m1_4of8p"
    assert parse_mode("mxfp8_e4m3/mxfp8_e5m2@2:4").label == "wmxfp8e5m2_amxfp8e4m3_2of4"
    assert parse_mode("mxfp8_e4m3/mxfp8_e5m2@2:4").spec == "mxfp8_e4m3/mxfp8_e5m2@2:4"


def test_three_modes():
    c = three()
    assert c.unified and not c.pair_sparse
    assert c.modes == tuple(parse_mode(t) for t in THREE.split(","))
    assert c.name == "nmmx_os_8x8_mxfp8e4m3_2of4_mxfp4e2m1_4of4_mxfp4e2m1_4of8p"
    # The first mode sets the config's own formats and sparsity.
    assert (c.a_format, c.w_format, c.sparsity) == ("mxfp8_e4m3", "mxfp8_e4m3", (2, 4))
    # Two 8-bit-class slots; a 4x4 significand multiplier (E4M3 1.mmm, or two E2M1 1.m).
    assert c.mode_slots == 2 and c.mode_sig_bits == 4
    assert [c.mode_bytes(m) for m in c.modes] == [4, 2, 4]
    assert [c.mode_narrow(m) for m in c.modes] == [False, True, True]
    # Widest words: 4 bytes of A; 2 slots of a byte plus a 2-bit byte index.
    assert (c.a_group_bits, c.w_slot_bits, c.w_group_bits) == (32, 10, 20)
    assert c.mode_index_bits == 2
    # Buffers are deep enough for the modes with the most groups (M = 4: 1024 / 4).
    assert c.groups_max == 256 and c.mode("mxfp4_e2m1@4:8p").groups_max == 128
    # E4M3's products are the finest (2^-18); E2M1's (2^-2) shift 16 bits into them.
    assert c.datapath_mode == c.modes[0] and c.datapath == c.mode(c.modes[0])
    assert [c.mode_product_shift(m) for m in c.modes] == [0, 16, 16]
    assert [c.mode_block_acc_bits(m) for m in c.modes] == [41, 30, 29]
    assert c.datapath.block_acc_bits == 41
    assert [m.name for m in c.mode_enum] == ["MXFP8E4M3_2OF4", "MXFP4E2M1_4OF4",
                                              "MXFP4E2M1_4OF8P"]
    assert c.mode_bits == 2 and c.mode_index("mxfp4_e2m1@4:8p") == 2
    assert c.mode_enum is three(rows=4).mode_enum
    d = c.to_dict()
    assert d["modes"] == THREE.split(",")
    assert Config.from_dict(d) == c


def test_one_mode_configs():
    c = three()
    fp8, fp4, p = (c.mode(m) for m in c.modes)
    # A mode without pairs is exactly the fixed engine of that mode.
    assert fp8 == Config() and fp4 == Config(a_format="mxfp4_e2m1", w_format="mxfp4_e2m1",
                                             sparsity=(4, 4))
    assert not fp8.modes and "modes" not in fp8.to_dict()
    assert Config(modes="mxfp8_e4m3@2:4") == Config()
    # A pair-sparse mode keeps its mode: pruning and storage in pairs.
    assert p.pair_sparse and not p.unified and p.sparsity == (4, 8)
    assert p.name == "nmmx_os_8x8_mxfp4e2m1_4of8p"
    assert Config.from_dict(p.to_dict()) == p
    # A fixed config has one mode, its own.
    assert Config().all_modes == (parse_mode("mxfp8_e4m3@2:4"),)
    fixed = Config()
    assert fixed.mode("mxfp8_e4m3@2:4") is fixed
    assert Config(rows=4).mode("mxfp8_e4m3@2:4") == Config(rows=4)


@pytest.mark.parametrize("modes, message", [
    ("mxfp9@2:4,mxfp4_e2m1@4:4",
     r"Mode 'mxfp9@2:4': Unknown element format 'mxfp9'; choose one of .*"),
    ("mxfp8_e4m3",
     r"A mode must be written FORMAT@N:M or A_FORMAT/W_FORMAT@N:M \(p after M for pair "
     r"sparsity\), not 'mxfp8_e4m3'"),
    ("mxfp8_e4m3@2:x",
     r"Mode 'mxfp8_e4m3@2:x': Sparsity must be written N:M with whole numbers, not '2:x'"),
    ("mxfp8_e4m3@5:4,mxfp4_e2m1@4:4",
     r"Mode 'mxfp8_e4m3@5:4': N:M sparsity needs 0 < N <= M, not 5:4"),
    ("mxfp8_e4m3@2:3",
     r"Mode 'mxfp8_e4m3@2:3': N:M sparsity needs M in \{1, 2, 4, 8, 16\}, not 2:3"),
    ("mxfp8_e4m3@2:4p",
     r"Mode 'mxfp8_e4m3@2:4p': pair sparsity \(p\) needs 4-bit formats, not mxfp8_e4m3"),
    ("mxfp4_e2m1@2:2p",
     r"Mode 'mxfp4_e2m1@2:2p': pair sparsity needs an even N below an even M, not 2:2"),
    ("mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp8_e4m3@2:4",
     r"Mode 'mxfp8_e4m3@2:4' is listed twice"),
    ("int8@2:4,mxfp8_e4m3@2:4",
     r"Mode 'int8@2:4': modes are MX formats only, so int8 cannot be one"),
    ("mxfp8_e4m3@2:4,mxfp4_e2m1@2:4",
     r"Mode 'mxfp4_e2m1@2:4': sparse 4-bit modes select whole bytes, so they need pairs "
     r"\(2:4p\), not 2:4"),
    ("mxfp8_e4m3@2:4,mxfp4_e2m1@8:8",
     r"Mode 'mxfp4_e2m1@8:8' fills 4 multiplier slots but mode 'mxfp8_e4m3@2:4' fills 2; "
     r"every mode must fill the same slots"),
    ("mxfp8_e4m3@2:4,mxfp6_e2m3@2:4",
     r"Mode 'mxfp6_e2m3@2:4': the shared PE multiplies 8-bit or 4-bit elements of one "
     r"width, not mxfp6_e2m3 with mxfp6_e2m3"),
    ("mxfp8_e4m3@2:4,mxfp8_e4m3/mxfp4_e2m1@2:4",
     r"Mode 'mxfp8_e4m3/mxfp4_e2m1@2:4': the shared PE multiplies 8-bit or 4-bit elements "
     r"of one width, not mxfp8_e4m3 with mxfp4_e2m1"),
    ("mxfp8_e4m3@1:4,mxfp4_e2m1@1:1",
     r"Mode 'mxfp4_e2m1@1:1': a 4-bit mode fills each multiplier slot with two values, "
     r"so N must be even, not 1"),
])
def test_wrong_modes(modes, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Config(modes=modes)


def test_wrong_mode_combinations():
    with pytest.raises(ValueError, match=r"^An engine with several modes is output "
                                         r"stationary in this release, not dataflow=ws$"):
        Config(modes=THREE, dataflow="ws")
    with pytest.raises(ValueError, match=r"^Mode 'mxfp4_e2m1@4:8p': block_size must be a "
                                         r"multiple of the sparsity group M=8, not 4$"):
        Config(modes=THREE, block_size=4)
    with pytest.raises(ValueError, match=r"^Mode 'mxfp4_e2m1@4:8' is not one of this "
                                         r"engine's modes \(mxfp8_e4m3@2:4, mxfp4_e2m1@4:4, "
                                         r"mxfp4_e2m1@4:8p\)$"):
        three().mode("mxfp4_e2m1@4:8")
    with pytest.raises(TypeError, match=r"^modes must be a list of modes .*, not 3$"):
        Config(modes=3)


# -- pair sparsity in golden -------------------------------------------------------------------


def _prune_pairs_oracle(w, n, m):
    """Per column, per group: rank pairs by |a| + |b| (NaN largest, ties to the lower)."""
    k, cols = w.shape
    out = np.zeros_like(w)
    for j in range(cols):
        for g in range(0, k, m):
            group = w[g:g + m, j]
            scores = []
            for p in range(0, len(group), 2):
                pair = group[p:p + 2]
                s = float(np.sum(np.abs(pair)))
                scores.append((np.inf if np.isnan(s) else s, p))
            keep = sorted(scores, key=lambda t: (-t[0], t[1]))[:n // 2]
            for _, p in keep:
                out[g + p:g + p + 2, j] = group[p:p + 2]
            zeros = group == 0
            out[g:g + m, j][zeros] = group[zeros]
    return out


@pytest.mark.parametrize("n, m", [(4, 8), (2, 4), (2, 8), (8, 16)])
def test_prune_pairs(n, m):
    rng = np.random.default_rng(n * 100 + m)
    w = rng.normal(size=(4 * m + 2, 7)).astype(np.float32)
    w[rng.random(w.shape) < 0.1] = 0
    w[1, 0], w[5, 1] = np.nan, np.inf
    w[0:4, 2] = [1, -1, -1, 1]          # a tie: the lower pair wins
    got = prune_nm_pairs(w, n, m)
    want = _prune_pairs_oracle(w, n, m)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[1, 0]) and got[5, 1] == np.inf
    values, indices = compress_nm_pairs(got, n, m)
    assert (indices[0::2] % 2 == 0).all() and (indices[1::2] == indices[0::2] + 1).all()
    back = decompress_nm(values, indices, n, m, length=w.shape[0])
    np.testing.assert_array_equal(back, got)
    # Pairs are a special case of N:M: the element-wise pruner leaves them alone.
    np.testing.assert_array_equal(prune_nm(got, n, m), got)


def test_pairs_along_axis1_and_errors():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 20)).astype(np.float32)
    got = prune_nm_pairs(w, 4, 8, axis=1)
    np.testing.assert_array_equal(got.T, _prune_pairs_oracle(w.T, 4, 8))
    with pytest.raises(ValueError, match=r"^Pair sparsity needs an even N and M, not 3:8$"):
        prune_nm_pairs(w, 3, 8)
    with pytest.raises(ValueError, match=r"^Group 1 \(positions 8..15 along axis 0\) has 2 "
                                         r"pairs holding nonzeros, more than 2:8p pair "
                                         r"sparsity allows$"):
        compress_nm_pairs(np.array([[1], [0], [0]] + [[0]] * 5 + [[0], [1], [0], [1]]
                                   + [[0]] * 4, np.float32), 2, 8)


def _operands(m, k, n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_t(3, size=(m, k)).astype(np.float32),
            rng.standard_t(3, size=(k, n)).astype(np.float32))


def test_pair_mode_golden():
    """4:8p's golden is golden.gemm of the ordinary 4:8 config on pair-pruned weights."""
    a, w = _operands(5, 80, 6)
    p = three(m_max=8, k_max=96, n_max=8).mode("mxfp4_e2m1@4:8p")
    enc = encode_operands(a, w, p)
    idx = enc.w_indices
    assert (idx[:, 0::2] % 2 == 0).all() and (idx[:, 1::2] == idx[:, 0::2] + 1).all()
    got = gemm_encoded(enc, p)
    plain = gemm(a, prune_nm_pairs(w, 4, 8), a_format="mxfp4_e2m1", w_format="mxfp4_e2m1",
                 sparsity="4:8")
    np.testing.assert_array_equal(got.view(np.uint32), plain.view(np.uint32))
    np.testing.assert_array_equal(
        gemm(a, w, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1", sparsity="4:8",
             pairs=True).view(np.uint32), got.view(np.uint32))
    # Element-wise 4:8 of the same weights is a different GEMM.
    assert not np.array_equal(plain, gemm(a, w, a_format="mxfp4_e2m1",
                                          w_format="mxfp4_e2m1", sparsity="4:8"))
    bad = idx.copy()
    bad[0, 1, 0] = bad[0, 0, 0] + 2 if bad[0, 0, 0] < 4 else 1
    with pytest.raises(ValueError, match=r"^Pair-sparse 4:8p weights are stored in pairs, "
                                         r"so EncodedOperands.w_indices must hold 2q, 2q\+1 "
                                         r"in slots 2t, 2t\+1$"):
        EncodedOperands(a_codes=enc.a_codes, a_scales=enc.a_scales, w_values=enc.w_values,
                        w_indices=bad, w_scales=enc.w_scales, m=enc.m, k=enc.k, n=enc.n,
                        config=p)
    with pytest.raises(ValueError, match=r"^Operands of an engine with several modes are "
                                         r"encoded for one of them: use config.mode\(spec\), "
                                         r"one of .*$"):
        encode_operands(a, w, three())


# -- unified words ---------------------------------------------------------------------------


def _unpack(words, count, bits):
    return np.array([[(int(x) >> (i * bits)) & ((1 << bits) - 1) for i in range(count)]
                     for x in np.asarray(words).reshape(-1)]).reshape(np.shape(words) + (count,))


@pytest.mark.parametrize("spec", THREE.split(","))
def test_unified_words(spec):
    """Unpack the unified words byte by byte and rebuild every mode's dense operands."""
    c = three(m_max=8, k_max=64, n_max=8)
    one = c.mode(spec)
    a, w = _operands(3, 40, 5, seed=7)
    enc = encode_operands(a, w, one)
    a_words, w_words = data_words(c, enc, spec)
    lay = word_layouts(c)
    assert (lay["a_data"].count, lay["a_data"].stride) == (4, 8)
    assert [(f.name, f.offset, f.width) for f in lay["w_data"].fields] == [
        ("value", 0, 8), ("index", 8, 2)]
    nbytes = c.mode_bytes(spec)
    a_bytes = _unpack(a_words, 4, 8)                     # [m, G, 4]
    assert (a_bytes[..., nbytes:] == 0).all()
    bits = one.a_fmt.bits
    codes = _unpack(a_words, one.m_group, bits).reshape(3, -1)
    np.testing.assert_array_equal(codes, enc.a_codes)
    slots = _unpack(w_words, 2, 10)                      # [n, G, slot]
    value, index = slots & 0xFF, slots >> 8
    # Rebuild the dense weight codes of each column from the slots.
    G = enc.w_values.shape[0]
    dense = np.zeros((5, G, one.m_group), np.int64)
    for s in range(2):
        for part in range(8 // bits):
            code = (value[:, :, s] >> (part * bits)) & ((1 << bits) - 1)
            if one.dense:
                assert (index == 0).all()
                pos = np.full_like(code, s * (8 // bits) + part)
            else:
                pos = index[:, :, s] * (8 // bits) + part
            np.put_along_axis(dense, pos[..., None], code[..., None], axis=2)
    want = np.zeros((5, G, one.m_group), np.int64)
    for t in range(one.n_keep):
        np.put_along_axis(want, enc.w_indices[:, t, :].T[..., None].astype(np.int64),
                          enc.w_values[:, t, :].T[..., None].astype(np.int64), axis=2)
    np.testing.assert_array_equal(dense, want)
    writes = pack_operands(c, enc, spec)
    assert len(writes) == 3 * G + 5 * G + 2 * (3 + 5)
    with pytest.raises(ValueError, match=r"^pack_operands needs the mode of an engine with "
                                         r"several modes, one of .*$"):
        pack_operands(c, enc)


# -- the cycle model per mode ----------------------------------------------------------------


def test_schedule_per_mode():
    c = three(m_max=64, k_max=512, n_max=64)
    s = c.schedule
    fixed = {"mxfp8_e4m3@2:4": Config(m_max=64, k_max=512, n_max=64),
             "mxfp4_e2m1@4:4": Config(a_format="mxfp4_e2m1", w_format="mxfp4_e2m1",
                                      sparsity=(4, 4), m_max=64, k_max=512, n_max=64),
             "mxfp4_e2m1@4:8p": Config(a_format="mxfp4_e2m1", w_format="mxfp4_e2m1",
                                       sparsity=(4, 8), m_max=64, k_max=512, n_max=64)}
    for spec, f in fixed.items():
        for shape in [(64, 512, 64), (1, 32, 8), (9, 100, 17)]:
            # The shared PE's adder fits the mode with the shortest blocks, so its
            # latency may be below the fixed engine's: the model is the fixed engine's
            # with the unified latency.
            fs = OSSchedule(f, pe_latency=c.pe_latency)
            assert s.cycles(*shape, spec) == fs.cycles(*shape)
            assert s.issued(*shape, spec) == fs.issued(*shape)
            assert s.stall(*shape, spec) == fs.stall(*shape)
            assert s.cycles(*shape, spec) - f.schedule.cycles(*shape) == \
                c.pe_latency - f.pe_latency
        assert s.utilization(64, 512, 64, spec) >= 0.99
    fp8, fp4, p = (s.mode(m) for m in c.modes)
    # One PE serves every mode: one latency in every mode's model.
    assert fp8.pe_latency == fp4.pe_latency == p.pe_latency == c.pe_latency
    assert (fp8.k_per_cycle, fp4.k_per_cycle, p.k_per_cycle) == (4, 4, 8)
    assert (fp8.groups_per_block, fp4.groups_per_block, p.groups_per_block) == (8, 8, 4)
    assert (fp8.slots_per_pe, fp4.slots_per_pe, p.slots_per_pe) == (2, 4, 4)
    # G = 128 groups of 4 (FP8 2:4, FP4 dense) or 64 of 8 (4:8p) per 8x8 tile at K = 512,
    # 64 tiles, P = G: (T-1)*G + G issue cycles, then the fill and drain every GEMM pays.
    drain = (c.issue_latency + c.buffer_read_latency + c.rows - 1 + c.pe_latency
             + c.rows + c.cols - 1)
    assert s.drain_cycles("mxfp4_e2m1@4:4") == drain
    for spec, g in [("mxfp8_e4m3@2:4", 128), ("mxfp4_e2m1@4:4", 128), ("mxfp4_e2m1@4:8p", 64)]:
        assert s.cycles(64, 512, 64, spec) == 64 * g - 1 + drain
    # Pair-sparse FP4 covers 8 K positions per cycle: twice dense FP4's MACs per cycle.
    assert s.cycles(64, 512, 64, "mxfp4_e2m1@4:8p") - drain == (
        s.cycles(64, 512, 64, "mxfp4_e2m1@4:4") - drain + 1) // 2 - 1
    runs = [("mxfp8_e4m3@2:4", 8, 64, 8), ("mxfp4_e2m1@4:8p", 1, 64, 8),
            ("mxfp4_e2m1@4:4", 16, 32, 16), ("mxfp8_e4m3@2:4", 8, 64, 8)]
    assert s.sequence_cycles(runs) == sum(
        OSSchedule(fixed[r[0]], pe_latency=c.pe_latency).cycles(*r[1:]) for r in runs)
    assert s.switch_cost == 0
    timing = s.timing()
    assert list(timing["modes"]) == THREE.split(",")


# -- the shared PE in Amaranth simulation ------------------------------------------------------

from amaranth.sim import Simulator

from hw.multi_pe import MultiPE, SplitMultiplier
from sim.stimulus import applicable_classes, make_operands


def _pe_tiles(c, jobs):
    """Per-cycle PE inputs of back-to-back tiles ``[(mode, enc, i, j), ...]`` (numpy
    packing by golden.pack.data_words), and the expected result bits of each tile."""
    inputs, expected = [], []
    for mode, enc, i, j in jobs:
        one = c.mode(mode)
        a_words, w_words = data_words(c, enc, mode)
        groups, gpb = a_words.shape[1], one.groups_per_block
        for g in range(groups):
            inputs.append({
                "a": int(a_words[i, g]), "w": int(w_words[j, g]),
                "a_scale": int(enc.a_scales[i, g // gpb]),
                "w_scale": int(enc.w_scales[g // gpb, j]), "mode": c.mode_index(mode),
                "ctl": {"valid": 1, "tfirst": g == 0, "bfirst": g % gpb == 0,
                        "blast": g % gpb == gpb - 1, "tlast": g == groups - 1}})
        expected.append((len(inputs) - 1 + c.pe_latency,
                         int(gemm_encoded(enc, one).view(np.uint32)[i, j])))
    return inputs, expected


def _run_pe(c, jobs):
    dut = MultiPE(c)
    inputs, expected = _pe_tiles(c, jobs)
    seen = []

    async def bench(ctx):
        mode_of = list(c.mode_enum)
        for cycle, x in enumerate(inputs + [None] * (c.pe_latency + 1)):
            if x is None:
                ctx.set(dut.ctl, {"valid": 0, "tfirst": 0, "bfirst": 0, "blast": 0,
                                  "tlast": 0})
            else:
                ctx.set(dut.a.as_value(), x["a"])
                ctx.set(dut.w.as_value(), x["w"])
                ctx.set(dut.a_scale, x["a_scale"])
                ctx.set(dut.w_scale, x["w_scale"])
                ctx.set(dut.mode, mode_of[x["mode"]])
                ctx.set(dut.ctl, x["ctl"])
            await ctx.tick()
            if ctx.get(dut.result_valid):
                seen.append((cycle + 1, ctx.get(dut.result)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen, expected


def _pe_jobs(c, classes, seed, tiles=2):
    """Tiles of every mode and class, the modes interleaved (a switch between tiles)."""
    jobs = []
    for data in classes:
        for mode in c.modes:
            one = c.mode(mode)
            if data not in applicable_classes(one):
                continue
            enc = make_operands(one, 2, 64, 2, data=data, seed=seed)
            jobs += [(mode, enc, t % 2, (t // 2) % 2) for t in range(tiles)]
    return jobs


def test_multi_pe_modes():
    """Every stimulus class in every mode, bit for bit, with a mode switch between tiles
    (including tiles of different lengths: 16 groups in 4-position modes, 8 in 4:8p)."""
    c = three(m_max=2, k_max=64, n_max=2)
    classes = sorted({d for mode in c.modes for d in applicable_classes(c.mode(mode))})
    seed = 11
    print(f"seed={seed}")
    jobs = _pe_jobs(c, classes, seed)
    assert len({j[0] for j in jobs}) == 3
    seen, expected = _run_pe(c, jobs)
    assert [t for t, _ in seen] == [t for t, _ in expected]
    bad = [(jobs[n][0], hex(got), hex(want)) for n, ((_, got), (_, want))
           in enumerate(zip(seen, expected)) if got != want]
    assert not bad, bad[:5]


@pytest.mark.parametrize("modes", [
    "mxfp8_e5m2@2:4,mxfp4_e2m1@4:8p",                  # Inf products
    "mxfp8_e4m3/mxfp8_e5m2@2:8,mxfp4_e2m1@4:16p,mxfp8_e4m3@2:2",
])
def test_multi_pe_other_sets(modes):
    c = Config(modes=modes, m_max=2, k_max=64, n_max=2)
    jobs = _pe_jobs(c, ["gaussian", "specials", "saturate"], seed=3, tiles=1)
    seen, expected = _run_pe(c, jobs)
    assert seen == expected


def test_split_multiplier_exhaustive():
    c = three()
    dut = SplitMultiplier(c)
    w, h = c.mode_sig_bits, c.mode_sig_bits // 2
    xs, ys = np.meshgrid(np.arange(1 << w), np.arange(1 << w))
    xs, ys = xs.reshape(-1).tolist(), ys.reshape(-1).tolist()
    got = {0: [], 1: []}

    async def bench(ctx):
        for split in (0, 1):
            ctx.set(dut.split, split)
            for x, y in zip(xs, ys):
                ctx.set(dut.x, x)
                ctx.set(dut.y, y)
                await ctx.delay(1e-9)
                got[split].append(ctx.get(dut.product))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    x, y = np.array(xs), np.array(ys)
    mask = (1 << h) - 1
    np.testing.assert_array_equal(got[0], x * y)
    np.testing.assert_array_equal(got[1], ((x >> h) * (y >> h) << 2 * h) + (x & mask) * (y & mask))



@pytest.mark.parametrize("modes", [THREE, "mxfp8_e5m2@2:4,mxfp4_e2m1@4:8p"])
def test_multi_slot_terms_add_to_the_exact_products(modes):
    """MultiSlot's sign-magnitude terms: ``+-big +-small`` (signs ``big_neg``,
    ``small_neg``) is the slot's exact result (one product, or the sum of two nibble
    products) in the datapath's units, in every mode, for random bytes and corners."""
    from golden.formats import decode_fields
    from hw.multi_pe import MultiSlot
    c = Config(modes=modes)
    seed = 5
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    a = np.concatenate([rng.integers(0, 256, 400), [0, 255, 0x7F, 0x80, 0xF7, 0x77]])
    w = np.concatenate([rng.integers(0, 256, 400), [255, 0, 0x80, 0x7F, 0x7F, 0xFF]])
    expected = {}
    for mode in c.modes:
        one = c.mode(mode)
        parts = ([(a & 15, w & 15), (a >> 4, w >> 4)] if c.mode_narrow(mode)
                 else [(a, w)])
        total = np.zeros(a.shape, dtype=np.int64)
        for pa, pw in parts:
            na, sa, ha, _, _ = decode_fields(one.a_fmt, pa)
            nw, sw, hw_, _, _ = decode_fields(one.w_fmt, pw)
            mag = (sa * sw) << (ha + hw_ + c.mode_product_shift(mode))
            total += np.where(na ^ nw, -mag, mag)
        expected[mode] = total
    dut = MultiSlot(c)
    got = {mode: [] for mode in c.modes}
    enum = list(c.mode_enum)

    async def bench(ctx):
        for mode in c.modes:
            ctx.set(dut.mode, enum[c.mode_index(mode)])
            for x, y in zip(a.tolist(), w.tolist()):
                ctx.set(dut.a, x)
                ctx.set(dut.w, y)
                await ctx.delay(1e-9)
                got[mode].append(sum((-1) ** ctx.get(getattr(dut, f"{p}_neg"))
                                     * ctx.get(getattr(dut, p)) for p in ("big", "small")))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    for mode in c.modes:
        np.testing.assert_array_equal(got[mode], expected[mode], err_msg=str(mode))

# -- the unified engine in Amaranth simulation ---------------------------------------------------

from engine_harness import Step, check_result, run_steps
from golden.pack import WrSel, c_read_addresses, unpack_c


def test_engine_mode_switches():
    """Back-to-back GEMMs that switch modes (no reset); the fourth reuses the scales the
    third loaded and writes only the data buffers; restarts with another mode on the
    inputs while busy are ignored.  Bit-exact, counters equal to each mode's model."""
    c = three(rows=2, cols=3, m_max=5, k_max=96, n_max=7)
    specs = [m.spec for m in c.modes]
    plan = [(specs[0], (5, 96, 7), "gaussian"), (specs[2], (3, 70, 4), "specials"),
            (specs[1], (5, 40, 7), "heavy"), (specs[0], (5, 40, 7), "saturate"),
            (specs[2], (1, 96, 7), "indices")]
    encs = [make_operands(c.mode(s), *shape, data=d, seed=5) for s, shape, d in plan]
    # GEMM 4 keeps GEMM 3's scales (same shape): only its data is written.
    from dataclasses import replace as dc_replace
    encs[3] = dc_replace(encs[3], a_scales=encs[2].a_scales, w_scales=encs[2].w_scales)
    steps = [Step(e, mode=s, restarts=(i == 1)) for i, (e, (s, _, _)) in
             enumerate(zip(encs, plan))]
    steps[3].sels = {int(WrSel.A_DATA), int(WrSel.W_DATA)}
    results = run_steps(c, steps, seed=2)
    for (spec, _, _), enc, (words, counters) in zip(plan, encs, results):
        one = c.mode(spec)
        got = unpack_c(c, [words[a] for a in c_read_addresses(c, enc.m)], enc.m, enc.n)
        assert check_result(one, enc, got, counters, c.schedule.mode(spec)) > 0


# -- python -m sim --modes on Verilator ----------------------------------------------------------

import json

from nmmx.flags import run_cli
import sim.__main__ as sim_cli
from sim.run import Case, _savez_replay, load_replay


def test_sim_cli_modes(tmp_path, capsys):
    """Each mode in turn, then the switching sequence, in one Verilator run: bit-exact,
    cycles equal to each mode's model, one JSON entry per mode under ``modes``."""
    out = tmp_path / "r.json"
    argv = ["--rows", "2", "--cols", "2", "--modes", THREE, "--m-max", "4", "--k-max", "64",
            "--n-max", "4", "--gemm", "3x64x4", "--data", "specials", "--json", str(out)]
    assert run_cli(sim_cli.main, argv) == 0
    text = capsys.readouterr().out
    assert text.count("PASS") == 4 and "switching sequence" in text
    r = json.loads(out.read_text())
    c = Config(rows=2, cols=2, modes=THREE, m_max=4, k_max=64, n_max=4)
    assert r["passed"] and list(r["modes"]) == [m.spec for m in c.modes]
    for spec, entry in r["modes"].items():
        one = c.mode(spec)
        assert entry["passed"] and entry["mismatches"] == 0 and entry["mode"] == spec
        assert entry["cycles"] == entry["model_cycles"] == c.schedule.cycles(3, 64, 4, spec)
        assert entry["peak_macs_per_cycle"] == one.peak_macs_per_cycle
        assert entry["issued_macs"] == one.schedule.issued(3, 64, 4)
    seq = r["switching"]
    assert seq["passed"] and seq["switch_cost"] == 0
    modes = [x["mode"] for x in seq["runs"]]
    assert len(modes) == 6 and all(a != b for a, b in zip([THREE.split(",")[-1]] + modes,
                                                           modes))
    assert seq["cycles"] == seq["model_cycles"] == c.schedule.sequence_cycles(
        [(x["mode"], *x["gemm"]) for x in seq["runs"]])
    # --mode runs one mode only.
    assert run_cli(sim_cli.main, argv + ["--mode", "mxfp4_e2m1@4:8p"]) == 0
    r = json.loads(out.read_text())
    assert list(r["modes"]) == ["mxfp4_e2m1@4:8p"] and "switching" not in r


def test_replay_keeps_the_mode(tmp_path):
    c = three(rows=2, cols=2, m_max=4, k_max=64, n_max=4)
    spec = "mxfp4_e2m1@4:8p"
    enc = make_operands(c.mode(spec), 2, 64, 3, data="indices", seed=4)
    path = tmp_path / "replay.npz"
    with open(path, "wb") as f:
        _savez_replay(f, c, Case(2, 64, 3, data="indices", seed=4, mode=spec), enc)
    config, case = load_replay(path)
    assert config == c and case.mode == parse_mode(spec)
    np.testing.assert_array_equal(case.enc.w_indices, enc.w_indices)
    with open(path, "wb") as f:
        np.savez(f, config=json.dumps(c.to_dict()), data="indices", seed=4,
                 shape=np.array([2, 64, 3]), a_codes=enc.a_codes, a_scales=enc.a_scales,
                 w_values=enc.w_values, w_indices=enc.w_indices, w_scales=enc.w_scales)
    with pytest.raises(ValueError, match=r"^Replay file '.*' has an engine with several "
                                         r"modes but no valid mode of the GEMM \(no mode "
                                         r"entry\)$"):
        load_replay(path)


# -- generation ---------------------------------------------------------------------------------

from gen.generate import generate
from hw.lint import lint_verilog


def test_gen_unified_lints_and_manifest(tmp_path):
    c = three(rows=2, cols=3, m_max=4, k_max=64, n_max=4)
    v, j = generate(c, tmp_path / "a")
    ok, log = lint_verilog(v, c.name)
    assert ok, log
    text = v.read_text()
    assert f"module {c.name}_pe" in text and "mode" in text
    man = json.loads(j.read_text())
    assert man["config"]["modes"] == THREE.split(",")
    ports = {p["name"]: p["width"] for p in man["ports"]}
    assert ports["mode"] == c.mode_bits and ports["wr_data"] == c.wr_data_bits == 32
    assert man["word_layouts"]["a_data"]["width"] == 32
    assert man["word_layouts"]["w_data"]["width"] == 20
    shared, modes = man["modes"]["shared"], man["modes"]["list"]
    assert shared["datapath_mode"] == "mxfp8_e4m3@2:4" and shared["block_acc_bits"] == 41
    assert [m["spec"] for m in modes] == THREE.split(",")
    assert [m["m_group"] for m in modes] == [4, 4, 8]
    assert [m["product_shift"] for m in modes] == [0, 16, 16]
    assert list(man["timing"]["modes"]) == THREE.split(",")
    # Deterministic: the same config gives the same bytes.
    v2, j2 = generate(c, tmp_path / "b")
    assert v2.read_bytes() == v.read_bytes() and j2.read_bytes() == j.read_bytes()


def test_sim_every_class_every_mode():
    """Every stimulus class of every mode on Verilator, back to back in one simulator run
    (the modes interleaved, so consecutive GEMMs switch), on the engine of
    test_sim_cli_modes (its build is reused)."""
    from sim.run import simulate_cases
    c = Config(rows=2, cols=2, modes=THREE, m_max=4, k_max=64, n_max=4)
    classes = sorted({d for m in c.modes for d in applicable_classes(c.mode(m))})
    cases = [Case(3, 64, 4, data=d, seed=9, mode=m) for d in classes for m in c.modes
             if d in applicable_classes(c.mode(m))]
    assert len({(x.mode, x.data) for x in cases}) == len(cases) == 11 + 9 + 10
    reports = simulate_cases(c, cases)
    bad = [(r["mode"], r["data"], r["mismatches"], r["cycles"], r["model_cycles"])
           for r in reports if not r["passed"]]
    assert not bad, bad
    assert all(r["cycles"] == c.schedule.cycles(3, 64, 4, r["mode"]) for r in reports)


# -- phase 2: timing and energy per mode, the design-space study, the scenario -----------

import csv
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_energy_stream_holds_the_mode():
    """synth.energy's stimulus of a unified PE in each mode: the mode input held at the
    mode's value, the mode's groups per tile issued, the words packed for that mode."""
    from synth.energy import pe_stream
    c = three(rows=2, cols=2, m_max=4, k_max=128, n_max=4)
    from sim.stimulus import make_operands
    streams = {}
    for mode in c.modes:
        one = c.mode(mode)
        s, valid = pe_stream(c, 4, 128, 4, mode=mode, cycles=10_000)
        assert set(s["mode"]) == {c.mode_index(mode)}
        # PE (0, 0) sees 2 x 2 tiles of G groups each.
        assert valid == 4 * one.groups(128)
        enc = make_operands(one, 4, 128, 4, data="gaussian", seed=0)
        a_words, _ = data_words(c, enc, mode)
        g = one.groups(128)
        assert [int(x) for x in s["a"][:g]] == [int(x) for x in a_words[0][:g]]
        streams[mode.spec] = s
    assert len({tuple(int(x) for x in s["a"][:32]) for s in streams.values()}) == 3


def test_timing_modules_of_the_unified_pe():
    from synth.timing import module_designs
    assert list(module_designs(three())) == ["MultiPE", "MultiSlot", "ByteSelect",
                                             "BlockConverter", "Float32Adder"]


def _fake_timing(config, library, clock_ps=None, **kw):
    path = 1000.0 + 10 * config.mode_slots * (3 if config.unified else 1) + config.m_group
    return {"library": "lib", "clock_ps": 500.0, "label": "pre-layout",
            "critical_path_ps": path, "critical_path_fo4": path / 10,
            "fmax_mhz": 1e6 / path, "area_um2": 100.0 * config.m_group, "config": {}}


def test_synth_liberty_and_energy_per_mode(monkeypatch, tmp_path, capsys):
    """``python -m synth --modes --liberty --energy``: one timing for the unified PE, each
    mode's fixed PE beside it, and per mode the replay in that mode against the fixed
    engine (the flow's steps replaced by stand-ins that depend on config and mode)."""
    import json
    import synth.__main__ as synth_cli
    from synth import energy, energy_report, timing
    calls = []
    monkeypatch.setattr(timing, "timing_report", _fake_timing)
    monkeypatch.setattr(energy_report, "fmax_period", lambda c, *a, **k: 2000.0)

    def fake_pe_energy(config, library, clock_ps, *, mode=None, **kw):
        calls.append((config.name, None if mode is None else mode.spec, kw["period_ps"]))
        one = config.mode(mode) if config.unified else config
        fj = 1000.0 * one.m_group * (2 if config.unified else 1)
        cats = dict.fromkeys(energy.ENERGY_CATEGORIES, 0.0)
        cats.update(multipliers=fj, clock=fj)
        return {"logic_fj": cats, "macs": 100.0 * one.m_group, "cycles": 100,
                "valid_cycles": 100, "sim_seconds": 0.0}
    monkeypatch.setattr(energy, "pe_energy", fake_pe_energy)
    monkeypatch.setattr(energy_report, "pe_energy", fake_pe_energy)
    out = tmp_path / "m.json"
    argv = ["--rows", "2", "--cols", "2", "--m-max", "8", "--k-max", "128", "--n-max", "8",
            "--modes", THREE, "--liberty", "osu018", "--energy", "--json", str(out)]
    assert run_cli(synth_cli.main, argv) == 0
    text = capsys.readouterr().out
    assert "one netlist for every mode" in text and text.count("mxfp4_e2m1@4:8p") == 2
    r = json.loads(out.read_text())
    c = three(rows=2, cols=2, m_max=8, k_max=128, n_max=8)
    uni = _fake_timing(c, None)["critical_path_ps"]
    for mode in c.modes:
        row = r["timing"]["modes"][mode.spec]
        fixed = _fake_timing(c.mode(mode), None)["critical_path_ps"]
        assert row["fixed_config"] == c.mode(mode).name
        assert row["path_ratio"] == round(uni / fixed, 4)
        e = r["energy"]["modes"][mode.spec]
        # stand-in: 2 x 1000 x M fJ (unified, x2) over 100 x M MACs = 0.04 pJ/MAC logic
        assert e["logic_pj_per_mac"] == 0.04 and e["fixed_logic_pj_per_mac"] == 0.02
        assert e["logic_ratio"] == 2.0
    # every mode replayed on the unified PE at the unified PE's clock, plus the fixed ones
    assert [m for n, m, _ in calls if n == c.name] == [m.spec for m in c.modes]
    assert {p for *_, p in calls} <= {2000.0}


def test_pair_sparse_error_study_prunes_pairs():
    """The sweep's error study of a pair-sparse mode prunes pairs, as the engine does."""
    from dse import sweep
    c = Config(modes="mxfp4_e2m1@4:8p")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 64)).astype(np.float32)
    w = rng.standard_normal((64, 8)).astype(np.float32)
    got = sweep._engine_gemm(a, w, c)
    kw = dict(a_format="mxfp4_e2m1", w_format="mxfp4_e2m1", sparsity=(4, 8))
    assert np.array_equal(got, np.asarray(gemm(a, prune_nm_pairs(w, 4, 8, axis=0), **kw),
                                          dtype=np.float64))
    assert not np.array_equal(got, np.asarray(gemm(a, w, **kw), dtype=np.float64))
    s = sweep.Settings(eval_shape=(8, 64, 8))
    assert sweep.evaluate_numerics(c, s)["err_rel_fro"] != sweep.evaluate_numerics(
        Config(a_format="mxfp4_e2m1", w_format="mxfp4_e2m1", sparsity=(4, 8)), s)[
        "err_rel_fro"]


def _dse(argv, capsys):
    from dse.__main__ import main as dse_main
    from tests.test_dse import fake_area
    code = run_cli(lambda a: dse_main(a, area_fn=fake_area), argv)
    return code, capsys.readouterr().err


def test_dse_sweeps_unified_beside_fixed(tmp_path, capsys):
    from tests.test_dse import fake_area
    out = tmp_path / "o"
    argv = ["--format", "mxfp4_e2m1", "--sparsity", "2:4", "--rows", "2", "--cols", "2",
            "--modes", THREE, "--eval-shape", "8x64x8", "--gemm", "8x64x8,16x128x16",
            "--no-progress", "--no-plots", "-o", str(out)]
    code, err = _dse(argv, capsys)
    assert code == 0, err
    fixed = {r["name"]: r for r in csv.DictReader((out / "results.csv").open())}
    rows = list(csv.DictReader((out / "modes.csv").open()))
    c = three(rows=2, cols=2)
    # The fixed engine of every mode joined the sweep beside the 2:4 MXFP4 point.
    assert set(fixed) == {Config(rows=2, cols=2, a_format="mxfp4_e2m1", w_format="mxfp4_e2m1",
                                 sparsity=(2, 4)).name,
                          *(c.mode(m).name for m in c.modes)}
    assert [r["mode"] for r in rows] == [m.spec for m in c.modes]
    logic = fake_area(c)["logic_ge"]
    fixed_logic = [fake_area(c.mode(m))["logic_ge"] for m in c.modes]
    for r, mode in zip(rows, c.modes):
        one, f = c.mode(mode), fixed[c.mode(mode).name]
        for shape in ((8, 64, 8), (16, 128, 16)):
            lab = "x".join(map(str, shape))
            # The unified PE has one latency for every mode (Config.acc_add_stages, the
            # minimum over the modes); the fixed engine has its own.
            assert int(r[f"cycles@{lab}"]) == c.schedule.cycles(*shape, mode) == \
                OSSchedule(one, pe_latency=c.pe_latency).cycles(*shape)
            assert int(f[f"cycles@{lab}"]) == one.schedule.cycles(*shape)
        assert float(r["err_rel_fro"]) == float(f["err_rel_fro"])
        assert float(r["logic_vs_largest"]) == pytest.approx(logic / max(fixed_logic))
        assert float(r["logic_vs_sum"]) == pytest.approx(logic / sum(fixed_logic))
    assert float(rows[2]["macs_per_cycle"]) > 1.5 * float(rows[1]["macs_per_cycle"])
    assert "## `nmmx_os_2x2_mxfp8e4m3_2of4" in (out / "modes.md").read_text()


@pytest.mark.parametrize("text, message", [
    ('modes = "mxfp8_e4m3@2:4"\n',
     r"--modes 'mxfp8_e4m3@2:4' names one mode; a unified engine needs two or more "
     r"\(a fixed one is a --format/--sparsity point\)"),
    ('modes = ["mxfp8_e4m3@2:4,mxfp4_e2m1@2:4"]\n',
     r"Mode 'mxfp4_e2m1@2:4': sparse 4-bit modes select whole bytes, so they need pairs "
     r"\(2:4p\), not 2:4"),
    ("modes = 3\n",
     r"Key 'modes' in sweep file '.*' must be a mode list such as "
     r"'mxfp8_e4m3@2:4,mxfp4_e2m1@4:4' or a list of them, not 3"),
    ('[[extra]]\nmodes = "mxfp8_e4m3@2:4,mxfp4_e2m1@4:4"\n',
     r"Key 'modes' in \[\[extra\]\] table 1 of sweep file '.*' belongs at the top level "
     r"\(each mode list is one unified engine\)"),
])
def test_dse_modes_errors(tmp_path, capsys, text, message):
    f = tmp_path / "s.toml"
    f.write_text('format = "mxfp4_e2m1"\n' + text if not text.startswith("[[")
                 else 'format = "mxfp4_e2m1"\n' + text)
    out = tmp_path / "o"
    code, err = _dse(["--sweep", str(f), "-o", str(out), "--no-progress"], capsys)
    assert code == 2 and re.match("^error: " + message + "$", err.strip()), err
    assert not out.exists()


def test_dse_modes_key_in_sweep_file(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(f'modes = ["{THREE}", "mxfp8_e4m3@2:4,mxfp4_e2m1@4:8p"]\nrows = 2\ncols = 2\n'
                 'gemm = "8x64x8"\neval_shape = "8x64x8"\n')
    out = tmp_path / "o"
    code, err = _dse(["--sweep", str(f), "-o", str(out), "--no-progress", "--no-plots"],
                     capsys)
    assert code == 0, err
    rows = list(csv.DictReader((out / "modes.csv").open()))
    assert [r["mode"] for r in rows] == THREE.split(",") + ["mxfp8_e4m3@2:4",
                                                           "mxfp4_e2m1@4:8p"]


def test_scenario_on_tiny_bert(tmp_path, capsys):
    """Prefill in one mode, decode in another: cycles from each mode's model, summed over
    every linear layer's tiles; accuracy per mode on the tiny BERT."""
    import json
    from dse import scenario
    from tests.model_fixtures import TINY, make_tiny_bert
    make_tiny_bert(tmp_path / "m")
    geo = ["--rows", "2", "--cols", "2", "--m-max", "8", "--k-max", "128", "--n-max", "8",
           "--modes", THREE]
    argv = geo + ["--model", str(tmp_path / "m"), "--prefill", "mxfp4_e2m1@4:4",
                  "--decode", "mxfp4_e2m1@4:8p", "--seq", "12", "--tokens", "3",
                  "--sentences", "4", "-o", str(tmp_path / "s.md"),
                  "--json", str(tmp_path / "s.json")]
    assert run_cli(scenario.main, argv) == 0
    r = json.loads((tmp_path / "s.json").read_text())
    c = three(rows=2, cols=2, m_max=8, k_max=128, n_max=8)
    h, f, nl = TINY["hidden_size"], TINY["intermediate_size"], TINY["num_hidden_layers"]
    shapes = [(h, h)] * 4 + [(h, f), (f, h)]

    def cycles(mode, m, steps=1, unified=False):
        # The unified PE's latency is one for every mode (its own pe_latency).
        one = (OSSchedule(c.mode(mode), pe_latency=c.pe_latency) if unified
               else c.mode(mode).schedule)
        return steps * nl * sum(one.cycles(min(8, m - i), k, min(8, n - j))
                                for k, n in shapes for i in range(0, m, 8)
                                for j in range(0, n, 8))
    uni, *fixed = r["rows"]
    assert uni["prefill_cycles"] == cycles("mxfp4_e2m1@4:4", 12, unified=True)
    assert uni["decode_cycles"] == cycles("mxfp4_e2m1@4:8p", 1, 3, unified=True)
    for row, mode in zip(fixed, c.modes):
        assert row["cycles"] == cycles(mode, 12) + cycles(mode, 1, 3)
    assert r["prefill_macs"] == nl * 12 * sum(k * n for k, n in shapes)
    cos = r["emb_cos_mean"]
    assert set(cos) == set(THREE.split(",")) and all(0 < v <= 1 for v in cos.values())
    assert len(set(cos.values())) == 3
    assert uni["prefill_emb_cos"] == cos["mxfp4_e2m1@4:4"]
    assert uni["decode_emb_cos"] == cos["mxfp4_e2m1@4:8p"]
    assert "| unified |" in (tmp_path / "s.md").read_text()
    capsys.readouterr()
    # K beyond the buffers: refused before any work, nothing written.
    bad = [x if x != "128" else "64" for x in argv]
    (tmp_path / "s.md").unlink()
    assert run_cli(scenario.main, bad) == 2
    assert re.match(r"^error: Layer 0 ffn_out has K = 128 but --k-max is 64; give --k-max "
                    r"128 or more$", capsys.readouterr().err.strip())
    assert not (tmp_path / "s.md").exists()


@pytest.mark.parametrize("extra, message", [
    (["--prefill", "mxfp4_e2m1@2:4p"], r"Mode 'mxfp4_e2m1@2:4p' is not one of this "
     r"engine's modes \(mxfp8_e4m3@2:4, mxfp4_e2m1@4:4, mxfp4_e2m1@4:8p\)"),
    (["--tokens", "0"], r"--tokens must be at least 1, not 0"),
    (["--energy"], r"--energy needs --liberty \(the generic cells.lib has no power data\)"),
])
def test_scenario_errors(tmp_path, capsys, extra, message):
    from dse import scenario
    argv = ["--modes", THREE, "--prefill", "mxfp4_e2m1@4:4", "--decode", "mxfp8_e4m3@2:4",
            "-o", str(tmp_path / "s.md"), *extra]
    assert run_cli(scenario.main, argv) == 2
    assert re.match("^error: " + message + "$", capsys.readouterr().err.strip())
    assert not (tmp_path / "s.md").exists()


def test_readme_modes_table_is_the_committed_table():
    """docs/modes/table.md is what ``python -m dse.modes_table`` makes of the committed
    measurements, and the README shows it, rows in order."""
    from dse.modes_table import modes_table
    d = ROOT / "docs" / "modes"
    import json
    text = modes_table(list(csv.DictReader((d / "sweep" / "modes.csv").open())),
                       list(csv.DictReader((d / "sweep" / "results.csv").open())),
                       json.loads((d / "osu018.json").read_text()),
                       json.loads((d / "scenario.json").read_text()), (64, 512, 64))
    assert (d / "table.md").read_text() == text
    rows = text.splitlines()
    assert len(rows) == 2 + 6 and sum(x.startswith("| unified") for x in rows) == 3
    lines = (ROOT / "README.md").read_text().splitlines()
    assert all(x in lines for x in rows), [x for x in rows if x not in lines]
    at = [lines.index(x) for x in rows]
    assert at == list(range(at[0], at[0] + len(rows)))
