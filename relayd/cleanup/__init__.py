"""Postfix's cleanup(8): a message from the first header byte of its DATA to the queue commit.

- :mod:`~relayd.cleanup.message`: :class:`Cleanup` (per configuration) and
  :class:`CleanupMessage` (per message): Received:, PREPEND, the stream, the
  end-of-data refusals, the disposition and the commit.
- :mod:`~relayd.cleanup.checker`: the one parser of the message (header
  blocks, MIME structure, body lines) with header_checks/body_checks;
  :mod:`~relayd.cleanup.checks` their tables, :mod:`~relayd.cleanup.actions`
  what a table result does, :mod:`~relayd.cleanup.mime` the MIME state.
- :mod:`~relayd.cleanup.headers`: the primary header block: hop count,
  Message-ID, header address rewriting (and smtp_generic_maps for smtp(8)).
- :mod:`~relayd.cleanup.received`, :mod:`~relayd.cleanup.disposition`,
  :mod:`~relayd.cleanup.message_keys` (the keys ``postmap -h/-b`` look up).

The stored-form invariant the result meets is :class:`relayd.smtp.wireform.StoredForm`.

Content checks alone, for a tool or a test::

    checks = ContentChecks.from_config(config)          # opens the tables
    checker = ContentChecker(checks, LogContext(queue_id, "host[addr]", sender, rcpt))
    store(checker.feed(chunk))                           # for each DATA chunk (wire form)
    rest, result = checker.finish()                      # at end of DATA
    store(rest)
    if result.reply: refuse the message with result.reply
"""
from relayd.cleanup.actions import LogContext
from relayd.cleanup.checker import ContentChecker, ContentResult
from relayd.cleanup.checks import CheckMaps, ContentChecks

__all__ = ["CheckMaps", "ContentChecker", "ContentChecks", "ContentResult", "LogContext"]
