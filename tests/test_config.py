"""The config object: derived properties for two configurations, one exact message per
wrong value, and the shared command-line flags."""

import pytest

from golden import Config, get_format
from nmmx.flags import (ArgumentParser, UsageError, add_config_flags, configs_from_args,
                       config_from_args)


def test_init_default():
    c = Config()
    assert (c.rows, c.cols, c.n_keep, c.m_group) == (8, 8, 2, 4)
    assert c.name == "nmmx_os_8x8_mxfp8e4m3_2of4"
    assert c.scaled and not c.dense
    assert c.index_bits == 2
    assert c.scale_bits == 8
    assert c.log2_m_group == 2
    assert c.block_exp_bits == 11
    assert c.acc_bits == 32
    assert c.groups_per_block == 8
    assert c.slots_per_block == 16
    # E4M3: 4-bit significand, shifts 0..14, lsb 2^-9 per operand.
    assert c.product_lsb_exp == -18
    # 448 * 2^9 = 229376 per operand; the product needs 36 bits plus a sign.
    assert c.product_bits == 37
    # 16 products of up to 229376^2 each: 40 bits plus a sign.
    assert c.block_acc_bits == 41
    assert c.a_group_bits == 32
    assert c.w_slot_bits == 10
    assert c.w_group_bits == 20
    assert c.kp_max == 1024 and c.groups_max == 256 and c.blocks_max == 32
    assert c.m_tiles_max == 8 and c.n_tiles_max == 8
    assert (c.pes, c.multiplier_slots, c.peak_macs_per_cycle) == (64, 128, 256)


def test_init_mixed_dense_odd():
    c = Config(rows=3, cols=5, a_format="mxfp8_e4m3", w_format="mxfp4_e2m1",
               sparsity="4:4", block_size=16, m_max=10, k_max=40, n_max=7)
    assert c.sparsity == (4, 4)
    assert c.name == "nmmx_os_3x5_wmxfp4e2m1_amxfp8e4m3_4of4"
    assert c.dense and c.index_bits == 0
    assert c.w_slot_bits == 4
    # E2M1's smallest subnormal is 0.5, so its integer unit is 2^-1 and 6.0 is 12 units.
    assert c.product_lsb_exp == -9 - 1
    assert c.product_bits == (229376 * 12).bit_length() + 1
    assert c.block_acc_bits == (229376 * 12 * 16).bit_length() + 1
    assert c.kp_max == 48 and c.groups_max == 12 and c.blocks_max == 3
    assert c.m_tiles_max == 4 and c.n_tiles_max == 2
    assert c.padded_k(17) == 32
    assert (c.pes, c.multiplier_slots, c.peak_macs_per_cycle) == (15, 60, 60)


def test_int8():
    c = Config(a_format="int8", w_format="int8", sparsity=(1, 1))
    assert not c.scaled and c.scale_bits == 0
    assert c.block_acc_bits == 32
    assert c.product_bits == 16  # (-128)^2 = 16384 needs 15 bits plus a sign


def test_e5m2_block_acc_exceeds_int64():
    c = Config(a_format="mxfp8_e5m2", w_format="mxfp8_e5m2")
    assert get_format("mxfp8_e5m2").max_int == 57344 * 2 ** 16
    assert c.block_acc_bits == (c.a_fmt.max_int ** 2 * 16).bit_length() + 1 == 69


def test_round_trip_dict():
    c = Config(rows=2, cols=3, sparsity=(1, 2))
    assert Config.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(sparsity=(5, 4)), ValueError, r"N:M sparsity needs 0 < N <= M, not 5:4"),
    (dict(sparsity=(0, 4)), ValueError, r"N:M sparsity needs 0 < N <= M, not 0:4"),
    (dict(sparsity=(2, 3)), ValueError, r"N:M sparsity needs M in \{1, 2, 4, 8, 16\}, not 2:3"),
    (dict(sparsity="2-4"), ValueError, r"Sparsity must be written N:M with whole numbers, not '2-4'"),
    (dict(block_size=30), ValueError, r"block_size must be a multiple of the sparsity group M=4, not 30"),
    (dict(block_size=0), ValueError, r"block_size must be at least 1, not 0"),
    (dict(rows=0), ValueError, r"rows must be between 1 and 64, not 0"),
    (dict(cols=65), ValueError, r"cols must be between 1 and 64, not 65"),
    (dict(rows=2.5), TypeError, r"rows must be a whole number, not 2.5"),
    (dict(rows=True), TypeError, r"rows must be a whole number, not True"),
    (dict(k_max=-1), ValueError, r"k_max must be at least 1, not -1"),
    (dict(a_format="fp8"), ValueError,
     r"Unknown element format 'fp8'; choose one of mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, "
     r"mxfp6_e3m2, mxfp4_e2m1, mxint8, mxint4, mxint2, int8"),
    (dict(a_format="int8"), ValueError,
     r"int8 only pairs with int8, not a_format=int8 with w_format=mxfp8_e4m3"),
    (dict(dataflow="is"), ValueError, r"dataflow must be one of os, ws, not 'is'"),
])
def test_wrong(kw, exc, msg):
    with pytest.raises(exc, match=rf"^{msg}$"):
        Config(**kw)


def test_buffer_bits_bound():
    """m/k/n_max are bounded by the host buffer bits they imply, named in the message."""
    from golden.config import MAX_BUFFER_BITS
    from hw.engine import Engine
    c = Config(rows=4, cols=4, m_max=16, k_max=96, n_max=8, sparsity=(1, 4))
    assert c.host_buffer_bits == sum(b * d * w for b, d, w in Engine(c).buffers().values())
    # The largest k_max under the bound is accepted, the next block is refused.
    per_block = Config(k_max=64).host_buffer_bits - Config(k_max=32).host_buffer_bits
    fixed = Config(k_max=32).host_buffer_bits - per_block
    k_ok = (MAX_BUFFER_BITS - fixed) // per_block * 32
    assert Config(k_max=k_ok).host_buffer_bits <= MAX_BUFFER_BITS
    bits = Config(k_max=k_ok).host_buffer_bits + per_block
    with pytest.raises(ValueError, match=rf"^m_max=64, k_max={k_ok + 32} and n_max=64 need "
                                         rf"{bits} buffer bits, more than the limit of "
                                         rf"2147483648 \(2\*\*31\)$"):
        Config(k_max=k_ok + 32)


def test_check_gemm():
    c = Config(m_max=16, k_max=64, n_max=8)
    c.check_gemm(16, 64, 8)
    with pytest.raises(ValueError, match=r"^GEMM K=65 does not fit this engine \(k_max=64\)$"):
        c.check_gemm(16, 65, 8)


def _parse(argv, multi=False):
    p = ArgumentParser()
    add_config_flags(p, multi=multi)
    return configs_from_args(p.parse_args(argv), multi=multi)


def test_flags_single():
    (c,) = _parse(["--rows", "3", "--cols", "5", "--a-format", "mxfp8_e4m3",
                   "--w-format", "mxfp4_e2m1", "--sparsity", "1:4", "--k-max", "64"])
    assert c == Config(rows=3, cols=5, a_format="mxfp8_e4m3", w_format="mxfp4_e2m1",
                       sparsity=(1, 4), k_max=64)
    (c,) = _parse(["--format", "mxint4"])
    assert c.a_format == c.w_format == "mxint4"


def test_flags_multi():
    cs = _parse(["--format", "mxfp8_e4m3,mxfp4_e2m1", "--sparsity", "4:4,2:4",
                 "--rows", "4,8"], multi=True)
    assert len(cs) == 8
    assert all(c.a_format == c.w_format for c in cs)
    cs = _parse(["--a-format", "mxfp8_e4m3", "--w-format", "mxfp4_e2m1,mxfp6_e2m3"],
                multi=True)
    assert [(c.a_format, c.w_format) for c in cs] == [
        ("mxfp8_e4m3", "mxfp4_e2m1"), ("mxfp8_e4m3", "mxfp6_e2m3")]


@pytest.mark.parametrize("argv, msg", [
    (["--rows", "x"], r"--rows must be a whole number, not 'x'"),
    (["--sparsity", "5:4"], r"N:M sparsity needs 0 < N <= M, not 5:4"),
    (["--format", "int8", "--w-format", "mxint8"],
     r"int8 only pairs with int8, not a_format=int8 with w_format=mxint8"),
])
def test_flags_wrong(argv, msg):
    with pytest.raises(UsageError, match=rf"^{msg}$"):
        _parse(argv)


def test_flags_wrong_multi():
    with pytest.raises(UsageError, match=r"^--rows has an empty item in '4,,8'$"):
        _parse(["--rows", "4,,8"], multi=True)


def test_dataflow_is_an_enum():
    from golden.config import Dataflow
    c = Config(dataflow="ws")
    assert c.dataflow is Dataflow.WS
    assert Config(dataflow=Dataflow.OS).dataflow is Dataflow.OS
    assert c.to_dict()["dataflow"] == "ws" and type(c.to_dict()["dataflow"]) is str
    assert Config.from_dict(c.to_dict()) == c
