"""Which function of a PE each synthesized cell serves.

:func:`_attribute_cells` splits one mapped module's own cells among the sinks they feed
(flip-flop bits by register, outputs, submodule inputs); :func:`pe_breakdown` turns
those groups, and the PE's submodules, into GE of one PE by function
(:data:`PE_CATEGORIES`).  The categories are what ``hw`` declares
(:mod:`hw.component`): a unit's ``area_category`` class attribute, and a register's
``nmmx_area`` netlist attribute; no name is matched.
"""

from collections import defaultdict

from golden.pack import word_layouts
from hw.component import AREA_ATTR, AREA_CATEGORIES, WORD_CATEGORY, unit_categories

__all__ = ["PE_CATEGORIES", "pe_breakdown"]

#: Keys of ``pe_breakdown`` (GE of one PE by function).
PE_CATEGORIES = AREA_CATEGORIES

#: A register without an ``nmmx_area`` attribute (and the logic feeding it), or the
#: logic feeding a submodule whose class declares no ``area_category``.
_UNDECLARED = "pipeline_registers"

#: Component classes that only wrap a reference to a separately converted PE module.
_PE_WRAPPERS = ("PEInstance", "WSPEInstance", "MultiPEInstance")

#: Component classes that are one PE (output- and weight-stationary dataflow).
_PE_CLASSES = ("PE", "WSPE", "MultiPE")


def _cell_sinks(mod_json, liberty):
    """The sinks each own cell of a mapped module feeds (see :func:`_attribute_cells`).

    Returns
    -------
    sinks : dict
        Combinational cell -> set of sinks ``(register net, bit)``,
        ``("sub:<instance>", None)`` or ``("out:<port>", None)``.
    ff_sink : dict
        Flip-flop cell -> its own sink ``(register net, bit)``.
    """
    cells = mod_json.get("cells", {})
    names = {}
    for net, info in sorted(mod_json.get("netnames", {}).items()):
        # Prefer a designer's name (a_0_1) over an Amaranth alias (a$3) over a hidden one.
        rank = 2 if info.get("hide_name") or net.startswith("$") else int("$" in net)
        for offset, bit in enumerate(info["bits"]):
            if isinstance(bit, int) and (bit not in names or rank < names[bit][0]):
                names[bit] = (rank, net, offset)
    driver = {}
    for cname, cell in cells.items():
        out = liberty.outputs.get(cell["type"])
        if out and cell["type"] not in liberty.sequential:
            for bit in cell["connections"].get(out, []):
                if isinstance(bit, int):
                    driver[bit] = cname
    sinks = defaultdict(set)     # comb cell -> sinks it feeds

    def walk(bits, sink):
        stack = [b for b in bits if isinstance(b, int)]
        seen = set()
        while stack:
            cname = driver.get(stack.pop())
            if cname is None or cname in seen:
                continue
            seen.add(cname)
            sinks[cname].add(sink)
            cell = cells[cname]
            out = liberty.outputs[cell["type"]]
            for port, cbits in cell["connections"].items():
                if port != out:
                    stack.extend(b for b in cbits if isinstance(b, int))

    ff_sink = {}
    for cname, cell in sorted(cells.items()):
        ctype = cell["type"]
        if ctype in liberty.sequential:
            out = liberty.outputs[ctype]
            q = cell["connections"].get(out, [None])[0]
            _, net, offset = names.get(q, (3, "?", 0))
            sink = (net, offset)
            ff_sink[cname] = sink
            walk([b for p, bs in cell["connections"].items() if p != out for b in bs], sink)
        elif ctype not in liberty.area and not ctype.startswith("$"):
            for bits in cell["connections"].values():
                walk(bits, (f"sub:{cname.lstrip(chr(92))}", None))
    for port, info in sorted(mod_json.get("ports", {}).items()):
        if info["direction"] in ("output", "inout"):
            walk(info["bits"], (f"out:{port}", None))
    return sinks, ff_sink


def cell_owners(mod_json, liberty):
    """Each own cell of a mapped module -> ``{owner: share}``, where an owner is a
    register net name, ``"sub:<instance>"``, ``"out:<port>"`` or ``"unattributed"``, and
    the shares of a cell add up to 1 (the split :func:`_attribute_cells` prices area by).

    Also returns the register net -> declared ``nmmx_area`` category table."""
    sinks, ff_sink = _cell_sinks(mod_json, liberty)
    out = {c: {s[0]: 1.0} for c, s in ff_sink.items()}
    for cname, cell in mod_json.get("cells", {}).items():
        if cell["type"] in liberty.area and cell["type"] not in liberty.sequential:
            owners = sinks.get(cname) or {("unattributed", None)}
            share = {}
            for sink in owners:
                share[sink[0]] = share.get(sink[0], 0.0) + 1.0 / len(owners)
            out[cname] = share
    declared = {name: info["attributes"][AREA_ATTR]
                for name, info in mod_json.get("netnames", {}).items()
                if AREA_ATTR in info.get("attributes", {})}
    return out, declared


def _attribute_cells(mod_json, liberty):
    """Attribute each mapped cell's area to the sinks it feeds.

    A sink is an own flip-flop bit (grouped by register name), a module output
    (``out:<port>``) or a submodule input (``sub:<instance>``).  A combinational cell that
    feeds several sinks splits its area evenly among them, so the groups add up to the
    module's own area.

    Returns
    -------
    dict of str to dict
        Group -> ``{"ff": GE, "comb": GE}``; register groups also carry ``bits``, the GE
        (flip-flop plus its share of logic) of each bit of the register.
    """
    cells = mod_json.get("cells", {})
    sinks, ff_sink = _cell_sinks(mod_json, liberty)
    sink_area = defaultdict(lambda: [0.0, 0.0])     # sink -> [ff GE, comb GE]
    for cname, sink in ff_sink.items():
        sink_area[sink][0] += liberty.area[cells[cname]["type"]]
    for cname, cell in cells.items():
        ctype = cell["type"]
        if ctype in liberty.area and ctype not in liberty.sequential:
            owners = sinks.get(cname) or {("unattributed", None)}
            for sink in owners:
                sink_area[sink][1] += liberty.area[ctype] / len(owners)
    netnames = mod_json.get("netnames", {})
    groups = {}
    for (name, offset), (ff, comb) in sorted(sink_area.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        g = groups.setdefault(name, {"ff": 0.0, "comb": 0.0})
        category = netnames.get(name, {}).get("attributes", {}).get(AREA_ATTR)
        if offset is not None and category is not None:
            g["category"] = category
        g["ff"] += ff
        g["comb"] += comb
        if offset is not None:
            bits = g.setdefault("bits", [])
            bits.extend([0.0] * (offset + 1 - len(bits)))
            bits[offset] = round(bits[offset] + ff + comb, 4)
    for g in groups.values():
        g["ff"], g["comb"] = round(g["ff"], 4), round(g["comb"], 4)
    return groups



def pe_breakdown(report, config=None):
    """GE of one PE by function, from the synthesized submodules and own cells.

    Submodules of the PE count (with everything below them) by the ``area_category``
    their class declares (:func:`hw.component.unit_categories`).  The PE's own
    flip-flops, with the combinational cells that feed them, count by the ``nmmx_area``
    attribute of their register (none: pipeline register); cells that only feed a
    submodule count with that submodule, cells that only feed an output port count as
    ``other``.  When the PE sits in an ``Array`` (directly, or as the module a
    ``PEInstance`` wrapper refers to; a wrapper's own cells, if any, count in full), the
    array's own cells (the links between PEs and the drain chains) are shared evenly
    among its PEs and added the same way; a register declared as a W data word (the
    weight links) splits by :func:`golden.pack.word_layouts`: its index bits are the
    PE's metadata registers and count as ``sparse_select`` (``config`` gives their
    positions), the rest as pipeline registers.

    Parameters
    ----------
    report : dict
        A :func:`synthesize` result.
    config : golden.Config or None
        Needed only to split weight links into value and index bits.

    Returns
    -------
    dict or None
        Every :data:`PE_CATEGORIES` key -> GE, or ``None`` if the design has no ``PE``.
    """
    classes, results, inst = report["_classes"], report["_results"], report["instances"]
    pes = sorted(n for n, c in classes.items() if c in _PE_CLASSES)
    if not pes:
        return None
    pe = pes[0]
    cat = dict.fromkeys(PE_CATEGORIES, 0.0)
    units = unit_categories()
    index_bits = set()
    if config is not None:
        index_bits = {f.offset + i for f in word_layouts(config)["w_data"].flat()
                      if f.name.endswith(".index") for i in range(f.width)}

    def children(path):
        return [n for n in inst if n.startswith(path + ".") and "." not in n[len(path) + 1:]]

    def subtree_ge(path):
        return results[inst[path]]["ge"] + sum(subtree_ge(c) for c in children(path))

    def child_category(path):
        cls = classes.get(path)
        if cls in units:
            return units[cls]
        if cls in _PE_CLASSES or cls in _PE_WRAPPERS:
            return "other"
        return _UNDECLARED

    def add_groups(path, weight):
        for group, ge in results[inst[path]]["groups"].items():
            area = (ge["ff"] + ge["comb"]) * weight
            if group.startswith("sub:"):
                sub = path + "." + group[4:]
                cat[child_category(sub) if sub in inst else "other"] += area
            elif group.startswith("out:") or group == "unattributed":
                cat["other"] += area
            elif ge.get("category") == WORD_CATEGORY:
                for offset, bit_ge in enumerate(ge["bits"]):
                    is_index = offset in index_bits
                    cat["sparse_select" if is_index else _UNDECLARED] += bit_ge * weight
            else:
                cat[ge.get("category", _UNDECLARED)] += area

    for child in children(pe):
        cat[child_category(child)] += subtree_ge(child)
    add_groups(pe, 1.0)
    parent = pe.rpartition(".")[0]
    while parent and classes.get(parent) in _PE_WRAPPERS:
        add_groups(parent, 1.0)
        parent = parent.rpartition(".")[0]
    if parent and classes.get(parent) in ("Array", "WSArray"):
        n_pes = sum(1 for p in pes if p.startswith(parent + "."))
        add_groups(parent, 1.0 / n_pes)
    return {k: round(v, 2) for k, v in cat.items()}
