"""``postconf``, as Postfix's, over relayd's main.cf and master.cf.

    postconf [-c DIR] [-n | -d] [-h] [-x] [name...]     parameters ("name = value")
    postconf [-c DIR] -e name=value...                  set, in place (else appended)
    postconf [-c DIR] -X name...                        remove
    postconf [-c DIR] -# name...                        comment out
    postconf [-c DIR] -M [service[/type]...]            master.cf services, one a line
    postconf [-c DIR] -P [service[/type[/name]]...]     master.cf -o parameters
    postconf [-c DIR] -Me 'service/type = entry' | -MX | -M# service/type...
    postconf [-c DIR] -Pe service/type/name=value | -PX service/type/name...

Edits keep every other line of main.cf as it was (comments, blank lines,
order), as Postfix's postconf edits: a setting's line and its continuation
lines are replaced by one "name = value" line; a new one goes at the end.
master.cf edits rewrite only the entry concerned, in postconf's columns with
each -o on a line of its own, and keep comments where Postfix keeps them; a
master.cf relayd would refuse is not written.
The file is replaced whole (written beside it, synced, renamed), so a
running relayd or a crash never sees half of it. Without -c: $MAIL_CONFIG,
else /etc/relayd (relayd.config.config_directory).
"""
from __future__ import annotations

import getopt
import os
import sys
import tempfile

from relayd.cli.config_cmd import _warnings_to_stderr, print_parameters
from relayd.config import ConfigError, config_directory, load_config
from relayd.config.maincf import logical_lines
from relayd.config.mastercf import parse_master_cf, tokens
from relayd.params import PARAMS

EX_USAGE = 64
EX_CONFIG = 78
# postconf -M's column starts (name, type, private, unpriv, chroot, wakeup, maxproc, command).
_COLUMNS = (0, 11, 17, 25, 33, 41, 49, 57)


def main(argv: list[str] | None = None) -> int:
    """The postconf command; the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, names = getopt.getopt(argv, "c:dehnxfMPX#")
    except getopt.GetoptError as exc:
        print(f"postconf: fatal: {exc}", file=sys.stderr)
        return EX_USAGE
    flags = {f for f, _ in opts}
    # Edits need a directory to write in: /etc/relayd, made or not.
    directory = (config_directory(next((v for f, v in opts if f == "-c"), None))
                 or PARAMS["config_directory"].default)
    edits = flags & {"-e", "-X", "-#"}
    if len(edits) > 1 or ("-d" in flags and "-n" in flags):
        print("postconf: fatal: specify one of -e, -X, -# and at most one of -d, -n",
              file=sys.stderr)
        return EX_USAGE
    with _warnings_to_stderr("postconf"):
        try:
            if ("-M" in flags or "-P" in flags) and edits:
                return edit_master_cf(os.path.join(directory, "master.cf"), edits.pop(),
                                      names, "-P" in flags)
            if "-M" in flags or "-P" in flags:
                return _master(directory, names, "-P" in flags)
            if edits:
                return edit_main_cf(os.path.join(directory, "main.cf"), edits.pop(), names)
            return print_parameters(directory, names, defaults="-d" in flags,
                                    explicit="-n" in flags, expand="-x" in flags,
                                    values_only="-h" in flags, prog="postconf")
        except ConfigError as exc:
            print(f"postconf: fatal: {exc}", file=sys.stderr)
            return EX_CONFIG
        except OSError as exc:
            print(f"postconf: fatal: {exc.filename}: {exc.strerror}", file=sys.stderr)
            return EX_CONFIG


# -- editing main.cf --------------------------------------------------------------------------

def edit_main_cf(path: str, how: str, args: list[str]) -> int:
    """-e name=value..., -X name..., -# name...: the file changed in place."""
    changes: dict[str, str | None] = {}
    for arg in args:
        if how == "-e":
            name, eq, value = arg.partition("=")
            if not eq or not name.strip():
                print(f"postconf: fatal: missing '=' after attribute name: \"{arg}\"",
                      file=sys.stderr)
                return EX_USAGE
            changes[name.strip()] = value.strip()
        else:
            changes[arg] = None
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    write_atomically(path, "".join(line + "\n" for line in apply_edits(lines, how, changes)))
    return 0


def apply_edits(lines: list[str], how: str, changes: dict[str, str | None]) -> list[str]:
    """main.cf's lines with ``changes`` made: -e sets (the first occurrence
    replaced, later ones dropped, a missing one appended), -X removes, -#
    comments out; everything else stays as it was."""
    out, done, i = [], set(), 0
    while i < len(lines):
        line = lines[i]
        end = i + 1
        while end < len(lines) and lines[end][:1].isspace() and lines[end].strip() \
                and not lines[end].lstrip().startswith("#"):
            end += 1
        name = line.partition("=")[0].strip() if line[:1] not in ("", "#") \
            and not line[:1].isspace() and "=" in line else None
        if name in changes:
            if how == "-e" and name not in done:
                out.append(f"{name} = {changes[name]}")
            elif how == "-#":
                out += ["#" + text for text in lines[i:end]]
            done.add(name)
        else:
            out += lines[i:end]
        i = end
    if how == "-e":
        out += [f"{name} = {value}" for name, value in changes.items() if name not in done]
    return out


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` by ``text`` whole: a temporary file beside it, synced, renamed
    (keeping the file's mode)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, temp = tempfile.mkstemp(prefix=".main.cf.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


# -- master.cf --------------------------------------------------------------------------------

def _master(directory: str, selectors: list[str], parameters: bool) -> int:
    path = os.path.join(directory, "master.cf")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if parameters:
        for service in parse_master_cf(text, path):
            for name, value in service.overrides.items():
                key = f"{service.name}/{service.type}/{name}"
                if _selected(key, selectors):
                    print(f"{key} = {value}")
        return 0
    parse_master_cf(text, path)   # a bad master.cf is refused, as postconf -M does
    for _, line in logical_lines(text, path):
        fields = tokens(line)
        if _selected(f"{fields[0]}/{fields[1]}", selectors):
            print(format_service(fields))
    return 0


def edit_master_cf(path: str, how: str, args: list[str], parameters: bool) -> int:
    """-Me 'service/type = entry', -MX / -M# service/type, -Pe 'service/type/name=value',
    -PX service/type/name: master.cf changed in place, as Postfix's postconf does."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    entries = master_entries(lines)
    for arg in args:
        key, eq, value = arg.partition("=")
        parts = key.strip().split("/")
        if (how == "-e") != bool(eq) or len(parts) != (3 if parameters else 2) or not all(parts):
            print(f"postconf: fatal: bad argument: {arg}", file=sys.stderr)
            return EX_USAGE
        if parameters:
            _edit_parameter(entries, parts, how, value.strip())
        else:
            _edit_service(entries, "/".join(parts), how, value.strip())
    text = "".join(line + "\n" for _, comments, body in entries for line in body + comments)
    parse_master_cf(text, path)   # never write a master.cf relayd would refuse
    write_atomically(path, text)
    return 0


def master_entries(lines: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """master.cf as (service/type, the comment and blank lines after the entry, its own lines).
    As Postfix reads it, an entry runs to the next one: the comment and blank lines
    after it are its own ("" for those before any entry)."""
    entries = [("", [], [])]
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            entries[-1][1].append(line)
        elif line[:1].isspace():
            entries[-1][2].append(line)
        else:
            fields = tokens(line)
            entries.append((f"{fields[0]}/{fields[1]}" if len(fields) > 1 else line, [], [line]))
    return entries


def _edit_service(entries: list, key: str, how: str, value: str) -> None:
    for n, (name, comments, body) in enumerate(entries):
        if name == key:
            if how == "-e":
                entries[n] = (name, comments, _folded(tokens(value)))
            elif how == "-X":
                entries[n] = (name, comments, [])
            else:
                entries[n] = (name, [], ["#" + line for line in body] + comments)
            return
    if how == "-e":
        entries.append((key, [], _folded(tokens(value))))


def _edit_parameter(entries: list, parts: list[str], how: str, value: str) -> None:
    key, name = "/".join(parts[:2]), parts[2]
    for n, (service, comments, body) in enumerate(entries):
        if service == key:
            fields = tokens(" ".join(line.strip() for line in body
                                     if not line.lstrip().startswith("#")))
            args, options = _split_options(fields[8:])
            if how == "-X":
                options.pop(name, None)
            else:
                options[name] = value
            # Postfix's -P edit writes the lines the entry carried before its new text
            entries[n] = (service, [], comments + _folded(
                fields[:8] + args + [w for k, v in options.items() for w in ("-o", f"{k}={v}")]))
            return


def _split_options(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Command arguments without the -o options, and the options (in order)."""
    plain, options, rest = [], {}, iter(args)
    for arg in rest:
        if arg == "-o" or arg.startswith("-o"):
            setting = next(rest, "") if arg == "-o" else arg[2:]
            k, _, v = setting.partition("=")
            options[k] = v
        else:
            plain.append(arg)
    return plain, options


def _folded(fields: list[str]) -> list[str]:
    """An entry as postconf writes one it edited: the columns, then each -o on a
    line of its own."""
    args, options = _split_options(fields[8:])
    return [format_service(fields[:8] + args)] + [f"    -o {k}={v}" for k, v in options.items()]


def _selected(key: str, selectors: list[str]) -> bool:
    """Whether ``service/type[/name]`` matches one of ``selectors`` (a prefix by
    whole components; none: everything)."""
    parts = key.split("/")
    return not selectors or any(parts[:len(s.split("/"))] == s.split("/") for s in selectors)


def format_service(fields: list[str]) -> str:
    """A master.cf entry as postconf -M prints it: the eight columns aligned where
    they fit, one space where an earlier one overflowed, then the arguments."""
    out = ""
    for n, value in enumerate(fields[:8]):
        if n:
            out += " " * max(1, _COLUMNS[n] - len(out))
        out += value
    return " ".join([out, *fields[8:]])


if __name__ == "__main__":
    sys.exit(main())
