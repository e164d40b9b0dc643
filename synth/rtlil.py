"""RTLIL of an Amaranth design, split into modules, canonicalized and hashed.

Within one conversion Amaranth emits one RTLIL module per *instance*, named by its
hierarchical path (``top.array.pe_0_0``).  :func:`split_modules` puts each module in a
canonical form and hashes it bottom-up: its own name is dropped, each submodule type
becomes that submodule's hash, Amaranth's globally numbered wire names are renumbered
locally and declarations are sorted (Amaranth orders a module's ports by how its
*parent* used them, so an edge PE and an inner PE would otherwise differ).  Two
instances share a hash exactly when their netlists are the same, which also merges
equal components in different parents (every ``Multiplier``) and never merges
components whose parameters or used ports differ.  :func:`instance_tree` walks the
module tree from the top, so a module referenced 64 times counts 64 times.
"""

import hashlib
import re
from dataclasses import dataclass, field

__all__ = ["RtlilModule", "split_modules", "instance_tree", "rtlil_of", "class_map"]

@dataclass
class RtlilModule:
    """One module of an RTLIL text.

    Members
    -------
    name : str
        Hierarchical RTLIL name without the leading backslash (``top.array.pe_0_0``).
    lines : list of str
        Body lines, ``module`` line and closing ``end`` included, attributes excluded.
    children : list of (str, str)
        ``(instance name, module name)`` of each submodule cell.
    key : str
        Hash of the canonical body (set by :func:`split_modules`).
    canonical : str
        The canonical body, named ``\\m_<key>`` (set by :func:`split_modules`).
    rename : dict of str to str
        Wire name -> canonical wire name (the parent renames its port connections with it).
    """

    name: str
    lines: list
    children: list = field(default_factory=list)
    key: str = ""
    canonical: str = ""
    rename: dict = field(default_factory=dict)

    def normalize(self, modules):
        """Compute the canonical body; every child must already be normalised.

        Canonical means that identical netlists give identical text, whatever their
        position in the design:

        * the module's own name is dropped and each submodule type becomes its hash;
        * wire names that carry Amaranth's global uniquifying counters (``port$0$84``;
          they differ between otherwise identical instances) become ``<base>$<rank>``,
          ranked by name pattern and then by counter values, which keeps their relative
          order;
        * declarations are sorted and ports renumbered, because Amaranth orders ports by
          how the *parent* first used them (an edge PE and an inner PE differ), and the
          connections inside each cell are sorted.

        None of this changes what Yosys builds.  Returns the canonical body text.
        """
        decl = [_WIRE_RE.match(line).group(1) for line in self.lines if _WIRE_RE.match(line)]
        auto = sorted((n for n in decl if "$" in n),
                      key=lambda n: (re.sub(r"\d+", "#", n),
                                     [int(x) for x in re.findall(r"\d+", n)]))
        self.rename = {n: f"{n.split('$')[0]}${i}" for i, n in enumerate(auto)}
        local = self.rename

        def sub_names(text, table):
            return _ID_RE.sub(lambda m: "\\" + table.get(m.group(1), m.group(1)), text)

        wires, connects, rest, attrs = [], [], [], []
        cell_child, cell_block = None, None
        for line in self.lines[1:-1]:
            stripped = line.strip()
            if cell_block is not None:
                if line.startswith("  end"):
                    rest.extend(cell_block[0:1] + sorted(cell_block[1:]) + [line])
                    cell_block = cell_child = None
                    continue
                if stripped.startswith("connect ") and cell_child is not None:
                    # First operand is the child's port: rename it the child's way.
                    _, port, sig = stripped.split(" ", 2)
                    port = sub_names(port, modules[cell_child].rename)
                    line = f"    connect {port} {sub_names(sig, local)}"
                else:
                    line = sub_names(line, local)
                cell_block.append(line)
                continue
            m = _CELL_RE.match(line)
            if m and not line.startswith("    "):
                rest.extend(attrs)
                attrs = []
                if m.group(2) in modules:
                    cell_child = m.group(2)
                    line = f"{m.group(1)}\\m_{modules[cell_child].key}{m.group(3)}"
                cell_block = [line]
                continue
            line = sub_names(line, local)
            if stripped.startswith("attribute ") and not line.startswith("    "):
                attrs.append(line)
                continue
            if _WIRE_RE.match(line):
                wires.append((_WIRE_RE.match(line).group(1), attrs + [line]))
            elif stripped.startswith("connect ") and not line.startswith("    "):
                connects.append("\n".join(attrs + [line]))
            else:
                rest.extend(attrs + [line])
            attrs = []
        assert cell_block is None, f"unterminated cell in RTLIL module {self.name}"
        out = ["module \\@self"]
        port = 0
        for _name, block in sorted(wires):
            if _PORT_RE.match(block[-1]):
                block = block[:-1] + [re.sub(r"\b(input|output|inout)\s+\d+\s",
                                             f"\\1 {port} ", block[-1], count=1)]
                port += 1
            out.extend(block)
        out.extend(rest + sorted(connects) + attrs + ["end"])
        return "\n".join(line for line in out if line.strip()) + "\n"

    def stub(self):
        """A blackbox module with this module's ports, named by its hash."""
        ports = [line for line in self.canonical.splitlines() if _PORT_RE.match(line)]
        return "attribute \\blackbox 1\nmodule \\m_{}\n{}\nend\n".format(
            self.key, "\n".join(ports))


_CELL_RE = re.compile(r"^(\s*cell\s+)\\(\S+)(\s+\S+\s*)$")
_WIRE_RE = re.compile(r"^\s{0,2}wire\b.*\s\\(\S+)\s*$")
_PORT_RE = re.compile(r"^\s*wire\b.*\b(input|output|inout)\s+\d+\s")
_ID_RE = re.compile(r"\\([^\s\\\"]+)")


def split_modules(rtlil_text, salt=""):
    """Split Amaranth's RTLIL into modules and hash each one bottom-up.

    Parameters
    ----------
    rtlil_text : str
        RTLIL as written by ``amaranth.back.rtlil`` (ideally with ``emit_src=False``).
    salt : str
        Mixed into every hash (the flow settings), so a changed flow never hits old results.

    Returns
    -------
    dict of str to RtlilModule
        By hierarchical module name, in file order, with ``key``, ``canonical`` and
        ``rename`` set.
    """
    modules, current = {}, None
    for line in rtlil_text.splitlines():
        if current is None:
            if line.startswith("module "):
                current = RtlilModule(line.split()[1].lstrip("\\"), [line])
            # Top-level attributes (generator, top) do not change synthesis: dropped.
            continue
        if line.strip().startswith("attribute \\src"):
            continue
        current.lines.append(line)
        if line == "end":
            modules[current.name] = current
            current = None
    assert current is None, "unterminated RTLIL module"
    for mod in modules.values():
        for line in mod.lines:
            m = _CELL_RE.match(line)
            if m and m.group(2) in modules:
                mod.children.append((m.group(3).strip(), m.group(2)))
    done = set()

    def visit(name, stack=()):
        if name in done:
            return
        assert name not in stack, f"recursive module hierarchy at {name}"
        mod = modules[name]
        for _, child in mod.children:
            visit(child, stack + (name,))
        body = mod.normalize(modules)
        mod.key = hashlib.sha256((salt + "\0" + body).encode()).hexdigest()[:24]
        mod.canonical = body.replace("module \\@self", f"module \\m_{mod.key}", 1)
        done.add(name)

    for name in modules:
        visit(name)
    return modules


def instance_tree(modules, top):
    """Every instance below ``top``: hierarchical instance path -> module name.

    The path of an instance is its parent's path, a dot and its cell name, so inside one
    Amaranth conversion it equals the module name (``top.array``); below a reference to
    a separately converted module it continues through that module's tree
    (``top.array.pe_0_0.pe.mul0``).  Paths are in depth-first order, children in cell
    order.

    Parameters
    ----------
    modules : dict of str to RtlilModule
        As returned by :func:`split_modules` (only ``children`` is used).
    top : str
        Name of the top module.

    Returns
    -------
    dict of str to str
    """
    out = {}

    def walk(path, name):
        out[path] = name
        for cell, child in modules[name].children:
            walk(f"{path}.{cell.lstrip(chr(92))}", child)

    walk(top, top)
    return out


def class_map(fragment, path):
    """Hierarchical RTLIL module name -> Python class name of the component."""
    out = {}
    origins = fragment.origins or ()
    out[".".join(path)] = type(origins[0]).__name__ if origins else "Fragment"
    for i, (sub, name, _src) in enumerate(fragment.subfragments):
        out.update(class_map(sub, path + (name if name is not None else f"U${i}",)))
    return out


def rtlil_of(component, name):
    """Elaborate once; return the RTLIL text and the module -> component class map.

    The map is keyed by hierarchical fragment path, which is the RTLIL module name for
    every fragment that becomes a module.
    """
    from amaranth.back import rtlil
    from amaranth.hdl import Fragment, Value, ValueCastable
    ports = {}
    for path, _member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Value):
            # Direction None: Amaranth infers it from what drives the signal, as it does
            # for any top-level port list.
            ports["__".join(map(str, path))] = (value, None)
    fragment = Fragment.get(component, None)
    classes = class_map(fragment, (name,))
    text, _ = rtlil.convert_fragment(fragment, ports, name, emit_src=False)
    return text, classes
