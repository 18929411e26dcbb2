"""Every main.cf parameter the code reads is declared, with its type, in relayd.params.

The test walks relayd/ with the ast module and finds every parameter read:

- ``config[NAME]``, ``config.get(NAME, ...)``, ``config.raw(NAME)`` where the
  receiver is a configuration (a name or attribute called config, cfg, conf or
  ending in _config: ``ctx.config``, ``self._config``, ``svc_config``);
- ``expand("... $NAME ...")`` (Config.expand and relayd.config.expand);
- a call of one of ACCESSORS, relayd's functions that read the parameters
  their string arguments name (``AddressMaps(config, "canonical_maps")``):
  every literal string argument of such a call is a parameter name, and so is
  a literal default of the argument that carries it;
- a read whose NAME is a variable: the names it can hold when it is a local or
  module constant, a conditional of literals, a constant dict's value, or is
  bound by iterating over a literal tuple (``for stage, parameter in
  STAGE_PARAMETERS``); a variable the test cannot follow must be in DYNAMIC_READS.

A name read must be declared in relayd.params with a type. The ~900 Postfix
parameters declared only for compatibility (relayd/postfix-defaults.cf, untyped
text) do not count: code that read one would get a string where the
parameter's Postfix type is a number, a boolean or a list (issue 7: RSET's
timeout read as "20s" crashed every delivery that needed an RSET).

ACCESSORS is checked too: a relayd function that passes one of its own
arguments on to a parameter read and is not listed fails the test (and its
callers' names are still checked), so a new helper cannot hide the names its
callers pass. No typed value may be handled as text again (int(), str(),
split_list(), == "yes" ...), and reading a compat parameter at run time raises
UnusedParameter, never a KeyError a fallback could swallow.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from relayd.config import load_config
from relayd.params import POSTFIX_DEFAULTS
from relayd.params import COMPAT_DOC, PARAMS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "relayd"

# A receiver of config[...], .get(...), .raw(...): its name, or its attribute name.
CONFIG_RECEIVER = re.compile(r"(^|_)(config|cfg|conf)$")
CONFIG_METHODS = ("get", "raw")
EXPANDERS = ("expand",)
REFERENCE = re.compile(r"\$(?:\{|\()?([A-Za-z0-9_]+)")

# relayd's functions, methods and classes (called by name) that read the
# parameters named by their string arguments: name -> the arguments that carry
# a parameter name.
ACCESSORS = {
    "AddressMaps": ("parameter",),              # relayd/rewrite/maps.py: a *_maps parameter
    "CanonicalMaps": ("parameter", "classes_parameter"),   # relayd/rewrite/canonical.py
    "DomainList": ("parameter",),               # relayd/domains.py
    "Interfaces": ("parameter",),               # relayd/domains.py
    "open_tables": ("parameter",),              # relayd/rewrite/tables.py
    "table_specs": ("parameter",),              # relayd/rewrite/tables.py
    "_open_maps": ("name",),                    # relayd/cleanup/checks.py: a *_checks parameter
    "_class_words": ("name",),                  # relayd/pipeline/restrictions.py (user-named classes)
    "_param": ("name",),                        # relayd/tables/mysql.py (config may be None)
}

# Reads whose parameter name is computed at run time, by file and function:
# none of them reads a name written in the code.
DYNAMIC_READS = {
    ("relayd/cli/config_cmd.py", "print_parameters"):
        "config show, postconf: the names an admin asks for (raw text)",
    ("relayd/pipeline/restrictions.py", "__init__"): "restriction class names from main.cf",
    ("relayd/delivery/limits.py", "_value"): "<transport>_destination_* of master.cf services",
    ("relayd/tables/mysql.py", "_domain_list"): "a mysql: file's domain list (given as words)",
}


def typed(name: str) -> bool:
    """Declared in relayd.params with a type (compat-only text does not count)."""
    return name in PARAMS and name not in POSTFIX_DEFAULTS


# --- walking the code ----------------------------------------------------------------

FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), rel)


def _tail(node) -> str | None:
    """``a.b.c`` -> "c", ``f`` -> "f"."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_config(node) -> bool:
    name = _tail(node)
    return name is not None and CONFIG_RECEIVER.search(name) is not None


def _string(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _positional(fn) -> list[str]:
    """The positional argument names of *fn* a caller passes (self/cls left out)."""
    names = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
    return names[1:] if names[:1] in (["self"], ["cls"]) else names


def signatures(accessors) -> dict[str, list[str]]:
    """The positional arguments of every accessor, by the name a call uses."""
    out = {}
    for _, tree in MODULES:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in accessors:
                init = [f for f in node.body if isinstance(f, FUNCTIONS) and f.name == "__init__"]
                out[node.name] = _positional(init[0]) if init else []
            elif isinstance(node, FUNCTIONS) and node.name in accessors:
                out[node.name] = _positional(node)
    return out


def read_keys(node, accessors, signature) -> tuple[list[str], list[ast.expr]]:
    """(parameter names written as literals, other expressions naming one) of
    *node* when it reads parameters."""
    if isinstance(node, ast.Subscript) and _is_config(node.value):
        keys = [node.slice]
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr in CONFIG_METHODS and _is_config(node.func.value):
        keys = node.args[:1]
    elif isinstance(node, ast.Call) and _tail(node.func) in accessors:
        # Every literal string argument names a parameter; of the others, those
        # passed for an argument that carries one.
        carrying = accessors[_tail(node.func)]
        positions = signature.get(_tail(node.func), [])
        args = [*zip(positions, node.args), *((k.arg, k.value) for k in node.keywords)]
        literals = [_string(value) for _, value in args if _string(value) is not None]
        return literals, [value for name, value in args
                          if name in carrying and _string(value) is None]
    else:
        return [], []
    literals = [_string(k) for k in keys if _string(k) is not None]
    return literals, [k for k in keys if _string(k) is None]


class Module:
    """One parsed module: its constants and, per node, the innermost enclosing function."""

    def __init__(self, rel: str, tree: ast.Module):
        self.rel, self.tree = rel, tree
        self.constants = _assignments(tree.body)
        self.function_of = {}
        for fn in ast.walk(tree):   # breadth first: an inner function comes later and wins
            if isinstance(fn, FUNCTIONS):
                for child in ast.walk(fn):
                    if child is not fn:
                        self.function_of[child] = fn

    def strings(self, node, fn=None, index: int | None = None, depth: int = 0) -> list[str] | None:
        """The strings *node* can be: a literal, a conditional of them, a local or
        module constant, a tuple/list/set (with *index*: the items at that position
        of its tuples), a constant dict's values (``D[k]``, ``D.get(k, "x")``).
        None when it is none of these."""
        if depth > 10:
            return None
        again = lambda n, i=None: self.strings(n, fn, i, depth + 1)  # noqa: E731
        text = _string(node)
        if text is not None:
            return [text] if index is None else None
        if isinstance(node, ast.Name):
            local = _assignments(fn.body).get(node.id) if fn is not None else None
            bound = local if local is not None else self.constants.get(node.id)
            return None if bound is None else again(bound, index)
        if isinstance(node, ast.IfExp):
            a, b = again(node.body, index), again(node.orelse, index)
            return None if a is None or b is None else a + b
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            out = []
            for item in node.elts:
                if index is not None:
                    if not isinstance(item, ast.Tuple) or len(item.elts) <= index:
                        return None
                    item = item.elts[index]
                got = again(item)
                if got is None:
                    return None
                out += got
            return out
        if isinstance(node, ast.Dict) and index is None:
            return again(ast.Tuple(elts=list(node.values)))
        if isinstance(node, ast.Subscript):
            return again(node.value) if isinstance(self._dict(node.value, fn), ast.Dict) else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "get" and isinstance(self._dict(node.func.value, fn), ast.Dict):
            values = again(node.func.value)
            default = again(node.args[1]) if len(node.args) > 1 else []
            return None if values is None or default is None else values + default
        return None

    def _dict(self, node, fn):
        if isinstance(node, ast.Name):
            local = _assignments(fn.body).get(node.id) if fn is not None else None
            return local if local is not None else self.constants.get(node.id)
        return node

    def loop_values(self, name: str, fn) -> list[str] | None:
        """The names variable *name* takes in *fn* when a for loop or a
        comprehension binds it by iterating over literals."""
        for node in ast.walk(fn):
            loops = []
            if isinstance(node, (ast.For, ast.AsyncFor)):
                loops = [(node.target, node.iter)]
            elif isinstance(node, COMPREHENSIONS):
                loops = [(g.target, g.iter) for g in node.generators]
            for target, iterable in loops:
                if isinstance(target, ast.Name) and target.id == name:
                    return self.strings(iterable, fn)
                if isinstance(target, ast.Tuple):
                    for i, elt in enumerate(target.elts):
                        if isinstance(elt, ast.Name) and elt.id == name:
                            return self.strings(iterable, fn, i)
        return None


def _assignments(body) -> dict[str, ast.expr]:
    """``name = value`` statements of a block (not nested ones): name -> value.
    A name assigned twice is left out (its value is not one thing)."""
    out, twice = {}, set()
    for stmt in body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    (twice.add if target.id in out else lambda _: None)(target.id)
                    out[target.id] = stmt.value
    return {k: v for k, v in out.items() if k not in twice}


def _arguments(fn) -> set[str]:
    a = fn.args
    return {arg.arg for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]}


def _defaults(fn) -> dict[str, ast.expr]:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    out = {arg.arg: d for arg, d in zip(positional[len(positional) - len(a.defaults):], a.defaults)}
    out.update({arg.arg: d for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None})
    return out


def _accessor_name(module: Module, fn) -> str:
    """The name a call uses: the class for __init__, else the function's own."""
    if fn.name == "__init__":
        for cls in ast.walk(module.tree):
            if isinstance(cls, ast.ClassDef) and fn in cls.body:
                return cls.name
    return fn.name


def scan(accessors):
    """(reads, helpers, dynamic) with *accessors* (name -> carrying arguments):
    reads as (name, "file:line"); functions that pass an argument on to a read
    as (accessor name, argument, "file:line"); reads of names the test cannot
    follow as ((file, function), "file:line")."""
    reads, helpers, dynamic = [], [], []
    signature = signatures(accessors)
    for rel, tree in MODULES:
        module = Module(rel, tree)
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and _tail(node.func) in EXPANDERS:
                text = _string(node.args[0]) if node.args else None
                reads += [(name, where) for name in REFERENCE.findall(text or "")]
            literals, others = read_keys(node, accessors, signature)
            reads += [(name, where) for name in literals]
            fn = module.function_of.get(node)
            for key in others:
                if isinstance(key, ast.Name) and fn is not None and key.id in _arguments(fn):
                    # The caller names the parameter: fn is an accessor itself.
                    helpers.append((_accessor_name(module, fn), key.id, where))
                    default = _string(_defaults(fn).get(key.id))
                    if default is not None:
                        reads.append((default, f"{rel}:{fn.lineno}"))
                    continue
                names = module.strings(key, fn)
                if names is None and isinstance(key, ast.Name) and fn is not None:
                    names = module.loop_values(key.id, fn)
                if names is None:
                    dynamic.append(((rel, fn.name if fn else "<module>"), where))
                    continue
                reads += [(name, where) for name in names]
    return reads, helpers, dynamic


def scan_all():
    """scan() with ACCESSORS and every helper found to be one (a helper not
    listed still has its callers' names checked, and fails its own test)."""
    accessors = dict(ACCESSORS)
    while True:
        reads, helpers, dynamic = scan(accessors)
        found = {}
        for name, argument, _ in helpers:
            found.setdefault(name, set(accessors.get(name, ()))).add(argument)
        if all(set(accessors.get(n, ())) >= args for n, args in found.items()):
            return reads, helpers, dynamic
        accessors.update({n: tuple(sorted(args)) for n, args in found.items()})


MODULES = list(modules())
READS, HELPERS, DYNAMIC = scan_all()


# --- the checks ----------------------------------------------------------------------

def test_the_walk_finds_the_reads_it_must():
    """The walk itself works: reads written in each of the accessor forms are found."""
    found = {name for name, _ in READS}
    for name in ("myhostname",                 # config["..."]
                 "smtpd_relay_restrictions",   # for stage, parameter in STAGE_PARAMETERS
                 "sender_canonical_classes",   # CanonicalMaps(config, ..., "...")
                 "alias_maps",                 # AddressMaps(config, "...")
                 "smtp_rset_timeout",          # RSET after a refused transaction
                 "header_size_limit", "soft_bounce"):
        assert name in found, name
    assert len(found) > 100


def test_every_parameter_read_is_declared_with_a_type():
    undeclared = sorted(f"{where}: {name}" + ("" if name not in PARAMS else
                                               " (declared only for compatibility, untyped)")
                        for name, where in READS if not typed(name))
    assert undeclared == [], "parameters read but not declared with a type in " \
                             "relayd/params.py:\n" + "\n".join(undeclared)


def test_every_helper_that_reads_a_parameter_is_an_accessor():
    unlisted = sorted(f"{where}: {name}({argument}) reads the parameter its caller names: "
                      "add it to ACCESSORS" for name, argument, where in HELPERS
                      if argument not in ACCESSORS.get(name, ()))
    assert unlisted == []


def test_reads_of_computed_names_are_the_known_ones():
    unknown = sorted(f"{where}: in {fn}(): parameter name not known statically"
                     for (rel, fn), where in DYNAMIC if (rel, fn) not in DYNAMIC_READS)
    assert unknown == []
    stale = sorted(set(DYNAMIC_READS) - {site for site, _ in DYNAMIC})
    assert stale == []


# Calls and methods that only make sense on main.cf text. The value of a read of
# an int, size, time, bool, list or choice parameter is typed already (Config
# converts it once, as its declaration says): treating it as text again is at
# best dead code and at worst silent garbage (split_list() of a list).
CONVERTERS = ("int", "float", "bool", "str", "split_list", "split_postfix_list")
TEXT_METHODS = ("split", "strip", "isdigit", "lower", "upper")
BOOLEAN_WORDS = ("yes", "no", "true", "false")


def _is_read(node) -> bool:
    """A read of a parameter typed other than str: config[NAME] or config.get(NAME)
    (raw() is text by design)."""
    if isinstance(node, ast.Subscript) and _is_config(node.value):
        name = _string(node.slice)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr == "get" and _is_config(node.func.value) and node.args:
        name = _string(node.args[0])
    else:
        return False
    return name in PARAMS and PARAMS[name].type != "str"


def conversions():
    """"file:line: what" for each read whose value the code converts again."""
    out = []
    for rel, tree in MODULES:
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and _tail(node.func) in CONVERTERS \
                    and any(map(_is_read, node.args)):
                out.append(f"{where}: {_tail(node.func)}() of a typed value")
            elif isinstance(node, ast.Attribute) and node.attr in TEXT_METHODS \
                    and _is_read(node.value):
                out.append(f"{where}: .{node.attr}() of a typed value")
            elif isinstance(node, ast.Compare) and any(map(_is_read, [node.left, *node.comparators])) \
                    and any(str(_string(n)).lower() in BOOLEAN_WORDS for n in node.comparators):
                out.append(f"{where}: a typed value compared with yes/no text")
    return sorted(out)


def test_no_read_value_is_converted_again():
    assert conversions() == []


def _reads_declared(node) -> bool:
    """Whether *node* contains a read of a declared parameter by its literal name."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Subscript) and _is_config(sub.value) and typed(_string(sub.slice)):
            return True
    return False


def fallbacks():
    """"file:line: what" for each read of a declared parameter that provides for
    its absence: a declared parameter always has a value (its default), so the
    fallback is a second default that can only drift from relayd.params."""
    out = []
    for rel, tree in MODULES:
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "get" and _is_config(node.func.value) \
                    and node.args and typed(_string(node.args[0])):
                out.append(f"{where}: .get() of a declared parameter: read config[name]")
            elif isinstance(node, ast.Try) and any(map(_reads_declared, node.body)) \
                    and any("KeyError" in ast.unparse(h.type) for h in node.handlers if h.type):
                out.append(f"{where}: a KeyError fallback around a declared parameter's read")
    return sorted(out)


def test_no_declared_parameter_is_read_with_a_fallback():
    assert fallbacks() == []


def test_compat_declarations_are_marked_unused():
    compat = {name for name, param in PARAMS.items() if getattr(param, "compat", False)}
    assert compat == set(POSTFIX_DEFAULTS)
    assert {(PARAMS[n].type, PARAMS[n].doc) for n in compat} == {("str", COMPAT_DOC)}
    assert all(PARAMS[n].type != "str" or PARAMS[n].doc != COMPAT_DOC or n in compat
               for n in PARAMS if n in POSTFIX_DEFAULTS)


@pytest.mark.parametrize("read", [lambda c: c["multi_instance_name"],
                                  lambda c: c.get("multi_instance_name"),
                                  lambda c: c.get("multi_instance_name", "fallback")],
                         ids=["getitem", "get", "get-default"])
def test_code_cannot_read_a_compat_parameter(read):
    from relayd.config import UnusedParameter
    # No path from code to an untyped value: reading one is a programming error,
    # never a KeyError that a fallback could swallow.
    config = load_config(main_cf="multi_instance_name = mail\n")
    with pytest.raises(UnusedParameter, match="multi_instance_name is declared for compatibility"):
        read(config)
    assert not isinstance(UnusedParameter("x"), KeyError)
    # What an admin sees of it stays: the text and its expansion.
    assert config.raw("multi_instance_name") == "mail"
    assert config.expand("$multi_instance_name/smtpd") == "mail/smtpd"


def test_no_parameter_read_is_documented_as_unused():
    """docs/configuration.md's table is these docs: a parameter the code reads
    (alias_database: newaliases) must not say "not used yet"."""
    assert sorted({name for name, _ in READS if PARAMS[name].doc == COMPAT_DOC}) == []
