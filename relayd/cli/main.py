"""The ``relayd`` command.

    relayd [-c DIR] [-o name=value ...] [--listen HOST:PORT ...]   run in the foreground
           [--relayhost HOST:PORT] [--queue DIR]                     (shorthands for -o)
    relayd [-c DIR] [-o name=value ...] config check                what a start checks
    relayd [-c DIR] [-o name=value ...] config show [-n|-d] [NAME ...]  like postconf
    relayd [-c DIR] flush                                           like postqueue -f
    relayd [-c DIR] reload | stop | status                           like postfix reload/stop/status
    relayd [-c DIR] mailq                                           like mailq
    relayd [-c DIR] queue hold|release|delete|requeue QUEUEID...|ALL like postsuper
    relayd [-c DIR] postmap|postalias|newaliases ...                 like Postfix's
    relayd passwd < password                                        a $6$ hash for SMTP AUTH

Without -c: $MAIL_CONFIG, else /etc/relayd when it exists, else built-in
defaults (relayd.config.config_directory, as Postfix's programs choose).
Running in the foreground is what systemd and ``postfix start-fg`` expect;
log lines go to stderr or $maillog_file. A bad configuration exits with
status 78 (EX_CONFIG) and a message naming file, line and parameter.
"""
from __future__ import annotations

import argparse
import sys

EX_OK = 0
EX_UNAVAILABLE = 69
EX_NOPERM = 77
EX_CONFIG = 78


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="relayd", description="SMTP edge relay, configured like Postfix")
    p.add_argument("-c", dest="config_directory", metavar="DIR",
                   help="configuration directory holding main.cf and master.cf")
    p.add_argument("-o", dest="overrides", metavar="NAME=VALUE", action="append", default=[],
                   help="override a main.cf parameter")
    p.add_argument("--listen", metavar="HOST:PORT", action="append",
                   help="listen here instead of master.cf's smtpd services")
    # Shorthands for the two settings a quick test run needs (= -o relayhost=..., -o queue_directory=...).
    p.add_argument("--relayhost", metavar="HOST:PORT", help="the smart host (relayhost)")
    p.add_argument("--queue", metavar="DIR", help="the queue directory (queue_directory)")
    p.add_argument("command", nargs="?", default="start-fg",
                   help="start-fg (default), reload, stop, status, config, flush, mailq, queue, "
                        "postmap, postalias, newaliases, passwd")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p


def _overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"relayd: fatal: -o {item}: expected name=value")
        out[name.strip()] = value.strip()
    return out


def _listen(items: list[str] | None):
    if items is None:
        return None
    out = []
    for item in items:
        host, _, port = item.rpartition(":")
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from relayd.config import ConfigError, config_directory, load_config
    overrides = _overrides(args.overrides)
    if args.relayhost:
        overrides["relayhost"] = args.relayhost
    if args.queue:
        overrides["queue_directory"] = args.queue
    if args.command == "config":
        from relayd.cli import config_cmd
        return config_cmd.run(args.args, config_directory(args.config_directory),
                              overrides=overrides, listen=_listen(args.listen))
    if args.command == "passwd":
        from relayd.cli import passwd
        return passwd.main(args.args)
    if args.command in ("postmap", "postalias", "newaliases"):
        from relayd.cli import postalias, postmap
        run = {"postmap": postmap.main, "postalias": postalias.postalias_main,
               "newaliases": postalias.newaliases_main}[args.command]
        return run((["-c", args.config_directory] if args.config_directory else []) + args.args)
    try:
        directory = config_directory(args.config_directory)
        config = load_config(directory, **overrides)
        if args.command == "flush":
            return _flush(config)
        if args.command in ("reload", "stop", "status"):
            from relayd import daemon
            return daemon.command(args.command, config)
        if args.command in ("mailq", "queue"):
            from relayd.cli import queue_cmd
            if args.command == "mailq":
                return queue_cmd.mailq(config["queue_directory"])
            return queue_cmd.queue_operation(config["queue_directory"], args.args)
        if args.command not in ("start-fg", "start"):
            print(f"relayd: fatal: unknown command: {args.command}", file=sys.stderr)
            return 64
        return _run(config, _listen(args.listen),
                    lambda: load_config(directory, **overrides))
    except ConfigError as exc:
        print(f"relayd: fatal: {exc}", file=sys.stderr)
        return EX_CONFIG


def _flush(config) -> int:
    from relayd.control import request_all
    try:
        answers = request_all(config["queue_directory"], "flush")
    except PermissionError as exc:
        print(f"relayd: fatal: {exc}", file=sys.stderr)
        return EX_NOPERM
    except OSError:
        print("relayd: fatal: Cannot flush mail queue - mail system is down", file=sys.stderr)
        return EX_UNAVAILABLE
    return EX_OK if all(a == "ok" for a in answers) else 1


def _run(config, listen, loader) -> int:
    from relayd import daemon
    try:
        return daemon.run(config, listen, loader)
    except OSError as exc:
        print(f"relayd: fatal: cannot start: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
