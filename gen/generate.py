"""Turn a :class:`golden.Config` into ``TOP.v`` (Verilog) and ``TOP.json`` (manifest).

The manifest is what the testbench and the synthesis flow read instead of re-deriving
anything: the config, every derived width, the buffer geometry and word layouts with
bit ranges, the latencies and cycle model, and the top's port list.  Output is
deterministic: the same config and name give byte-identical files (no source
locations, paths or timestamps).
"""

import json
import re
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog

from golden.config import Config
from golden.pack import WR_SEL, word_layouts
from golden import counters as counter_table
from hw.registry import hardware, pe_module_name
from nmmx.flags import BUSES
from nmmx.files import atomic_files, check_output_dir, check_output_file

__all__ = ["generate", "generate_engine", "build_verilog", "build_soc_verilog", "BUSES",
           "version_tuple", "manifest", "top_ports", "CLOCK", "nmmx_version",
           "check_top_name"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Manifest schema version: bump when a key changes meaning.
MANIFEST_SCHEMA = 1

#: The top's one clock domain (Amaranth's ``sync``: its clock and reset ports).
CLOCK = {"name": "clk", "reset": "rst", "reset_kind": "synchronous, active high"}



def nmmx_version():
    """The installed nmmx version, or the one in ``pyproject.toml`` of a source tree."""
    try:
        return metadata.version("nmmx")
    except metadata.PackageNotFoundError:
        pass
    import tomllib
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    with open(pyproject, "rb") as f:
        return tomllib.load(f)["project"]["version"]


def check_top_name(name):
    """Raise ``ValueError`` unless ``name`` is a plain Verilog identifier."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"Top-level name must be a Verilog identifier (letters, digits, "
                         f"underscores, not starting with a digit), not {name!r}")
    return name


def build_verilog(config, name):
    """Return ``(verilog_text, engine)`` for the engine top ``name``.

    The PE is emitted once as module ``{name}_pe`` and instantiated R x C times, so that
    elaboration time does not grow with the PE count and synthesis sees one PE.
    """
    pe_name = pe_module_name(name)
    hw = hardware(config)
    pe_text = verilog.convert(hw.pe(config), name=pe_name, emit_src=False)
    engine = hw.engine(config, pe_module=pe_name)
    top_text = verilog.convert(engine, name=name, emit_src=False)
    return top_text + pe_text, engine


def version_tuple():
    """:func:`nmmx_version` as ``(major, minor, patch)`` (what ``VERSION`` reads)."""
    parts = re.findall(r"\d+", nmmx_version())[:3]
    return tuple(int(p) % 256 for p in parts + ["0"] * (3 - len(parts)))


def build_soc_verilog(config, name):
    """Return ``(verilog_text, wrapper, regs)`` for the AXI-wrapped top ``name``
    (:class:`hw.soc.SocEngine` around the engine of :func:`build_verilog`)."""
    from golden.regmap import register_map
    from hw.soc import SocEngine
    pe_name = pe_module_name(name)
    parts = hardware(config)
    pe_text = verilog.convert(parts.pe(config), name=pe_name, emit_src=False)
    regs = register_map(config, version_tuple())
    soc = SocEngine(config, parts.engine(config, pe_module=pe_name), regs)
    top_text = verilog.convert(soc, name=name, emit_src=False)
    return top_text + pe_text, soc, regs


def _word_layouts(cfg):
    """The manifest's ``word_layouts``: :func:`golden.pack.word_layouts`, each field with
    its bit range in the word."""
    return {name: {"width": word.width,
                   "fields": [{"name": f.name, "lsb": f.offset, "msb": f.offset + f.width - 1}
                              for f in word.flat()],
                   "meaning": word.meaning}
            for name, word in word_layouts(cfg).items()}


def _buffers(cfg, engine):
    addr = {
        "a_data": "bank = i mod rows, addr = (i div rows) * groups_max + g",
        "a_scale": "bank = i mod rows, addr = (i div rows) * blocks_max + b",
        "w_data": "bank = j mod cols, addr = (j div cols) * groups_max + g",
        "w_scale": "bank = j mod cols, addr = (j div cols) * blocks_max + b",
        "c": "addr = i * n_tiles_max + (j div cols), lane = j mod cols",
        "acc": "internal (ws): bank = j mod cols, addr = i; partial-sum state between "
               "weight passes, not host-visible",
    }
    out = {}
    for name, (banks, depth, width) in engine.buffers().items():
        entry = {"banks": banks, "depth": depth, "word_bits": width, "address": addr[name]}
        if name in WR_SEL:
            entry["wr_sel"] = WR_SEL[name]
        out[name] = entry
    return out


def top_ports(engine):
    """The top's ports: the clock and reset of its one ``sync`` domain (:data:`CLOCK`),
    then the ports the component's own metadata (``wiring.Component.metadata``) lists,
    in order; each ``{"name", "dir", "width"}``."""
    ports = [{"name": CLOCK["name"], "dir": "in", "width": 1},
             {"name": CLOCK["reset"], "dir": "in", "width": 1}]

    def walk(members):
        for member in members.values():
            if member["type"] == "interface":
                yield from walk(member["members"])
            else:
                yield {"name": member["name"], "dir": member["dir"], "width": member["width"]}

    ports.extend(walk(engine.metadata.as_json()["interface"]["members"]))
    return ports


def manifest(config, name, engine):
    """The manifest dictionary for the engine ``name`` built from ``config``."""
    cfg = config
    derived = {key: getattr(cfg, key) for key in (
        "scaled", "n_keep", "m_group", "dense", "index_bits", "scale_bits",
        "groups_per_block", "slots_per_block", "product_lsb_exp", "product_bits",
        "product_has_nan", "product_has_inf", "block_acc_bits", "acc_bits",
        "a_group_bits", "w_slot_bits", "w_group_bits", "kp_max", "groups_max",
        "blocks_max", "m_tiles_max", "n_tiles_max", "wr_bank_bits", "wr_addr_bits",
        "wr_data_bits", "rd_addr_bits", "c_word_bits", "m_bits", "k_bits", "n_bits",
        "counter_bits")}
    derived["a_bits"] = cfg.a_fmt.bits
    derived["w_bits"] = cfg.w_fmt.bits
    extra = {"modes": _modes(cfg)} if cfg.unified else {}
    return {
        "schema": MANIFEST_SCHEMA,
        "nmmx_version": nmmx_version(),
        "top": name,
        "verilog": f"{name}.v",
        "pe_module": pe_module_name(name),
        "config": cfg.to_dict(),
        "derived": derived,
        "word_layouts": _word_layouts(cfg),
        "buffers": _buffers(cfg, engine),
        "wr_sel": dict(WR_SEL),
        "timing": cfg.schedule.timing(),
        "ports": top_ports(engine),
        "counters": list(counter_table.names(cfg)),
        "access_counters": {name: list(counter_table.ACCESS_COUNTERS[name])
                            for name in counter_table.access_names(cfg)},
        "clock": dict(CLOCK),
        **extra,
    }


def _modes(cfg):
    """The manifest's ``modes`` of a unified engine: the shared datapath's widths, then
    per mode (in ``mode`` input order) the derived values of its one-mode config."""
    shared = {key: getattr(cfg, key) for key in (
        "mode_bits", "mode_slots", "mode_a_bytes", "mode_index_bits", "mode_sig_bits",
        "mode_slot_bits")}
    shared["datapath_mode"] = cfg.datapath_mode.spec
    shared["block_acc_bits"] = cfg.datapath.block_acc_bits
    shared["product_lsb_exp"] = cfg.datapath.product_lsb_exp
    per_mode = []
    for i, mode in enumerate(cfg.modes):
        one = cfg.mode(mode)
        entry = {"mode": i, "spec": mode.spec, "name": cfg.mode_enum(i).name,
                 "pairs": mode.pairs, "a_format": one.a_format, "w_format": one.w_format,
                 "sparsity": f"{one.n_keep}:{one.m_group}"}
        entry.update({key: getattr(one, key) for key in (
            "n_keep", "m_group", "groups_per_block", "slots_per_block", "product_lsb_exp",
            "groups_max")})
        entry["product_shift"] = cfg.mode_product_shift(mode)
        entry["group_bytes"] = cfg.mode_bytes(mode)
        entry["multiplier_slots"] = one.multiplier_slots
        entry["peak_macs_per_cycle"] = one.peak_macs_per_cycle
        per_mode.append(entry)
    return {"shared": shared, "list": per_mode}


def generate(config, out_dir, name=None, *, bus="none"):
    """Write ``out_dir/NAME.v`` and ``out_dir/NAME.json``; return their paths
    (:func:`generate_engine` without the component).
    """
    *paths, _top = generate_engine(config, out_dir, name, bus=bus)
    return tuple(paths)


def generate_engine(config, out_dir, name=None, *, bus="none"):
    """Write ``out_dir/NAME.v`` and ``out_dir/NAME.json``; return their paths and the
    elaborated top component (whose signature gives the ports, :func:`top_ports`).

    With ``bus="axi"`` the top is the AXI wrapper (:class:`hw.soc.SocEngine`, default
    name ``<config.name>_axi``), the manifest adds ``regmap``, ``streams`` and
    ``soc_timing``, and ``NAME.h`` (C header) and ``NAME_regs.md`` (register table) are
    written too, all four files or none.

    The output location is checked before anything is elaborated.  Both files are
    written to temporary files in ``out_dir`` and renamed into place only when both are
    complete (:func:`nmmx.files.atomic_files`), so a failure, a full disk or Ctrl-C
    leaves neither behind.

    Parameters
    ----------
    config : golden.Config
    out_dir : str or os.PathLike
        Created if missing.
    name : str or None
        Top-level module name (default ``config.name``, plus ``_axi`` for the wrapper).
    bus : str
        One of :data:`BUSES`.

    Returns
    -------
    (pathlib.Path, ..., wiring.Component)
        The Verilog file and the manifest (then, for ``axi``, the header and the table),
        and the top component (the engine, or the AXI wrapper).

    Raises
    ------
    TypeError
        ``config`` is not a :class:`golden.Config`.
    ValueError
        ``name`` is not a Verilog identifier.
    nmmx.files.OutputError
        (a ``ValueError``) ``out_dir`` or one of the two files cannot be written.
    OSError
        Writing failed (for example ``ENOSPC``); nothing was left behind.
    """
    if not isinstance(config, Config):
        raise TypeError(f"generate needs a golden.Config, not {config!r}")
    if bus not in BUSES:
        raise ValueError(f"bus must be one of {', '.join(BUSES)}, not {bus!r}")
    if bus == "axi" and config.unified:
        raise ValueError(f"The AXI wrapper does not take a mode yet, so --bus axi needs a "
                         f"fixed engine, not one with {len(config.modes)} modes")
    default = config.name + ("_axi" if bus == "axi" else "")
    name = check_top_name(default if name is None else name)
    out_dir = check_output_dir(out_dir)
    outputs = [(".v", "Verilog file"), (".json", "manifest file")]
    if bus == "axi":
        outputs += [(".h", "C header"), ("_regs.md", "register table")]
    paths = [check_output_file(out_dir / f"{name}{suffix}", what=what)
             for suffix, what in outputs]
    if bus == "axi":
        from gen.regmap import c_header, markdown_table, regmap_manifest
        text, top, regs = build_soc_verilog(config, name)
        info = manifest(config, name, top.engine)
        info["bus"] = "axi"
        info["engine_module"] = f"{name}.engine"
        info["ports"] = top_ports(top)
        info.update(regmap_manifest(config, regs))
        texts = [text, json.dumps(info, indent=2) + "\n", c_header(config, regs, name),
                 markdown_table(regs, name)]
    else:
        text, top = build_verilog(config, name)
        info = manifest(config, name, top)
        texts = [text, json.dumps(info, indent=2) + "\n"]
    with atomic_files(paths) as files:
        for f, t in zip(files, texts):
            f.write(t)
    return (*paths, top)
