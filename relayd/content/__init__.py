"""Content inspection before the queue: header_checks(5) and body_checks.

Build a :class:`ContentChecks` once per configuration, then one
:class:`ContentChecker` per message::

    checks = ContentChecks.from_config(config)          # opens the tables
    checker = checks.checker(LogContext(queue_id, "host[addr]", sender, rcpt, "ESMTP", helo))
    store(checker.feed(chunk))                           # for each DATA chunk (wire form)
    rest, result = checker.finish()                      # at end of DATA
    store(rest)
    if result.reply: refuse the message with result.reply
"""
from relayd.content.actions import LogContext
from relayd.content.checker import ContentChecker, ContentResult
from relayd.content.checks import CheckMaps, ContentChecks

__all__ = ["CheckMaps", "ContentChecker", "ContentChecks", "ContentResult", "LogContext"]
