"""``relayd-postalias`` and ``relayd-newaliases``: postalias(1), newaliases(1).

    relayd-postalias [options] [hash:]FILE ...     build FILE.db from an aliases(5) file
    relayd-postalias [options] -i [hash:]FILE      add the aliases(5) entries on stdin to FILE.db
    relayd-postalias [options] -d KEY|- FILE ...   delete KEY (or each key on stdin)
    relayd-postalias [options] -q KEY|- FILE ...   query, as postmap -q ("key:<TAB>value")
    relayd-postalias [options] -s FILE             print every "key:<TAB>value"
    relayd-newaliases [-c DIR]                    build every table in $alias_database

Options and exit statuses as relayd-postmap's (``-c -f -N -n -o -p -r -v -w``;
like Postfix's postalias, no ``-b``/``-h``).
"""
from __future__ import annotations

import argparse
import sys

from relayd.cli.postmap import EX_CONFIG, EX_USAGE, Tool, run, warnings_to_stderr, with_type


def colon_separated(key: str, value: str) -> str:
    return f"{key}:\t{value}"


def postalias_main(argv: list[str] | None = None) -> int:
    """``relayd-postalias`` / ``relayd postalias``: returns the exit status."""
    from relayd.tables.aliases import alias_lines
    tool = Tool("relayd-postalias", alias_lines, colon_separated, message_modes=False)
    return run(sys.argv[1:] if argv is None else argv, tool)


def newaliases_main(argv: list[str] | None = None) -> int:
    """``relayd-newaliases`` / ``relayd newaliases``: build $alias_database of the
    configuration directory (-c, $MAIL_CONFIG, /etc/relayd); none is an error."""
    from relayd.config import ConfigError, config_directory, load_config
    from relayd.tables.aliases import alias_lines
    from relayd.tables.base import compile_table
    from relayd.tables.hashdb import rebuilt_by
    p = argparse.ArgumentParser(prog="relayd-newaliases", description="build $alias_database")
    p.add_argument("-c", dest="config_directory", metavar="DIR")
    try:
        args = p.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return EX_USAGE if exc.code else 0
    directory = config_directory(args.config_directory)
    if directory is None:
        # As Postfix's newaliases without its main.cf. Built-in defaults would build
        # /etc/aliases.db, Postfix's file on a host that keeps Postfix for a rollback.
        print("relayd-newaliases: fatal: no configuration directory: give -c DIR or "
              "$MAIL_CONFIG, or make /etc/relayd", file=sys.stderr)
        return EX_CONFIG
    with warnings_to_stderr("relayd-newaliases"), rebuilt_by("relayd-postalias"):
        try:
            config = load_config(directory)
            for spec in config["alias_database"]:
                compile_table(with_type(spec), config, parse=alias_lines)
        except ConfigError as exc:
            print(f"relayd-newaliases: fatal: {exc}", file=sys.stderr)
            return EX_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(postalias_main())
