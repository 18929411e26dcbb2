"""``relayd [-c DIR] config check|show``: check a configuration, print parameters.

``show`` prints what postconf(1) prints: ``name = value`` lines, sorted,
values unexpanded; ``-n`` only the parameters main.cf sets, ``-d`` the
defaults, ``-x`` values expanded; names given: only those.
"""
from __future__ import annotations

import logging
import sys

from relayd.config import EX_CONFIG, Config, ConfigError, config_directory, load_config
from relayd.params import PARAMS
from relayd.tables.mysql_cf import check_named_files

EX_USAGE = 64
USAGE = "usage: relayd [-c DIR] config check | show [-n | -d] [-x] [NAME...]"


def run(argv: list[str], config_directory: str | None = None,
        overrides: dict[str, str] | None = None, listen=None) -> int:
    """Run the config command *argv* (the words after "config") on the configuration
    with *overrides* (``-o``) applied; the exit status. ``check`` checks what the
    master checks at start (relayd.master.check: restrictions, tables, TLS), so it
    fails exactly where the start would; ``listen``: the start's --listen."""
    if not argv or argv[0] not in ("check", "show"):
        print(USAGE, file=sys.stderr)
        return EX_USAGE
    with _warnings_to_stderr():
        try:
            if argv[0] == "check":
                if len(argv) > 1:
                    print(USAGE, file=sys.stderr)
                    return EX_USAGE
                from relayd.daemon import worker_count
                from relayd.master import check
                config = load_config(config_directory, **(overrides or {}))
                check_named_files(config)
                check(config, listen, worker_count(config))
                return 0
            return _show(argv[1:], config_directory, overrides or {})
        except ConfigError as exc:
            print(f"relayd: fatal: {exc}", file=sys.stderr)
            return EX_CONFIG


def _show(argv: list[str], config_directory: str | None, overrides: dict[str, str]) -> int:
    flags = {a for a in argv if a.startswith("-")}
    names = [a for a in argv if not a.startswith("-")]
    if flags - {"-n", "-d", "-x"} or {"-n", "-d"} <= flags:
        print(USAGE, file=sys.stderr)
        return EX_USAGE
    return print_parameters(config_directory, names, defaults="-d" in flags,
                            explicit="-n" in flags, expand="-x" in flags, overrides=overrides)


def print_parameters(config_directory: str | None, names: list[str], *, defaults: bool = False,
                     explicit: bool = False, expand: bool = False, values_only: bool = False,
                     prog: str = "relayd", overrides: dict[str, str] | None = None) -> int:
    """Print parameters as postconf does: ``defaults`` (-d), only those main.cf sets
    (``explicit``, -n), values ``expand``ed (-x), ``values_only`` (-h); ``names``: only
    those; ``overrides``: -o name=value settings over main.cf's."""
    config = Config({}, (), None) if defaults else load_config(config_directory,
                                                               **(overrides or {}))
    if explicit:
        available = sorted(config.explicit())
    else:
        available = sorted({*PARAMS, *config.explicit()})
    for name in names:
        if name not in PARAMS and name not in config.explicit():
            print(f"{prog}: warning: unknown parameter: {name}", file=sys.stderr)
    selected = [n for n in names if n in available] if names else available
    for name in selected:
        value = config.expand(config.raw(name)) if expand else config.raw(name)
        print(value if values_only else f"{name} = {value}".rstrip())
    return 0


class _warnings_to_stderr:
    """Show relayd's warnings (the configuration's, and those the start's checks
    log) on stderr as postconf does, unless the program already configured
    logging; ``prog`` names the program in them."""

    def __init__(self, prog: str = "relayd"):
        self.prog = prog

    def __enter__(self):
        self.handler = None
        if not logging.getLogger().handlers:
            self.handler = logging.StreamHandler(sys.stderr)
            self.handler.setLevel(logging.WARNING)
            self.handler.setFormatter(logging.Formatter(f"{self.prog}: warning: %(message)s"))
            logging.getLogger("relayd").addHandler(self.handler)
        return self

    def __exit__(self, *exc_info):
        if self.handler:
            logging.getLogger("relayd").removeHandler(self.handler)


def main(argv: list[str] | None = None) -> int:
    """``python -m relayd.cli.config_cmd [-c DIR] check|show ...``"""
    argv = list(sys.argv[1:] if argv is None else argv)
    option = None
    if argv[:1] == ["-c"] and len(argv) > 1:
        option, argv = argv[1], argv[2:]
    return run(argv, config_directory=config_directory(option))


if __name__ == "__main__":
    sys.exit(main())
