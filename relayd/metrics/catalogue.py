"""Every metric relayd exports, declared once: name, kind, help, labels, buckets.

Names follow Prometheus conventions with the ``relayd_`` prefix. Where a
metric is one that the maintained Postfix exporter (Hsn723/postfix_exporter,
successor of kumina's) derives from Postfix's log, it has that metric's
name after the prefix and the same labels and buckets, so a dashboard built
for ``postfix_*`` works after a rename of the prefix (marked ``exporter``
below). The others are relayd's own.
"""
from __future__ import annotations

from dataclasses import dataclass

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

# The exporter's bucket sets.
_TIME = (1e-3, 1e-2, 1e-1, 1.0, 10, 60, 3600, 86400, 172800)
_SIZE = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)
_RECIPIENTS = (1, 2, 4, 8, 16, 32, 64, 128)
_AGE = (1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)
# Fast operations (a table lookup, a DNS query, one SMTP step).
_LATENCY = (1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0, 30.0)


@dataclass(frozen=True)
class Metric:
    """One metric family."""

    name: str           # without the relayd_ prefix (and without _total for counters)
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    merge: str = "sum"  # how a gauge of several workers adds up: sum or max

    @property
    def full_name(self) -> str:
        return "relayd_" + self.name


_ALL = (
    # -- smtpd: sessions and commands -------------------------------------------------
    Metric("smtpd_connects", COUNTER, "Incoming connections (exporter)."),
    Metric("smtpd_disconnects", COUNTER, "Incoming connections closed (exporter)."),
    Metric("smtpd_connections_lost", COUNTER,
           "Connections lost before QUIT, by the last command (exporter).", ("after_stage",)),
    Metric("smtpd_sessions", GAUGE, "SMTP sessions open now, by master.cf service.",
           ("service",)),
    Metric("smtpd_sessions_opened", COUNTER, "SMTP sessions opened, by master.cf service.",
           ("service",)),
    Metric("smtpd_commands", COUNTER,
           "Replies given, by command, reply code and enhanced status code.",
           ("command", "code", "enhanced_code")),
    Metric("smtpd_messages_processed", COUNTER,
           "Messages given a queue id by smtpd, by SASL method (exporter).", ("sasl_method",)),
    Metric("smtpd_messages_rejected", COUNTER, "NOQUEUE rejects, by reply code (exporter).",
           ("code",)),
    Metric("smtpd_restriction_rejects", COUNTER,
           "Rejects and defers by the restriction that decided, reply code and enhanced code.",
           ("restriction", "code", "enhanced_code")),
    Metric("smtpd_sasl_authentication_failures", COUNTER,
           "SASL authentication failures (exporter)."),
    Metric("smtpd_sasl_authentications", COUNTER,
           "SASL authentications, by mechanism and result (success, failure).",
           ("mechanism", "result")),
    Metric("smtpd_tls_connections", COUNTER, "Incoming TLS connections (exporter).",
           ("trust", "protocol", "cipher", "secret_bits", "algorithm_bits")),
    Metric("smtpd_tls_handshake_failures", COUNTER, "Incoming TLS handshakes that failed."),
    # -- checks and tables -------------------------------------------------------------
    Metric("check_failures", COUNTER,
           "Restriction and plugin checks that could not decide (451), by check and "
           "reason (timeout, lookup, error).", ("check", "reason")),
    Metric("table_lookups", COUNTER,
           "Table lookups, by table and result (found, notfound, retry, config).",
           ("table", "result")),
    Metric("table_lookup_duration_seconds", HISTOGRAM, "Time a table lookup took, by table.",
           ("table",), _LATENCY),
    Metric("dns_queries", COUNTER,
           "DNS queries sent, by record type and result (found, nxdomain, nodata, error).",
           ("type", "result")),
    Metric("dns_query_duration_seconds", HISTOGRAM, "Time a DNS query took, by record type.",
           ("type",), _LATENCY),
    Metric("rbl_lookups", COUNTER,
           "DNSBL/DNSWL lookups, by list domain and result (listed, unlisted, error).",
           ("domain", "result")),
    # -- cleanup and queue manager -----------------------------------------------------
    Metric("cleanup_messages_processed", COUNTER, "Messages cleanup processed (exporter)."),
    Metric("cleanup_messages_rejected", COUNTER, "Messages cleanup rejected (exporter)."),
    Metric("qmgr_messages_inserted_recipients", HISTOGRAM,
           "Recipients per message inserted into the queue (exporter).", (), _RECIPIENTS),
    Metric("qmgr_messages_inserted_size_bytes", HISTOGRAM,
           "Size of messages inserted into the queue (exporter).", (), _SIZE),
    Metric("qmgr_messages_removed", COUNTER, "Messages removed from the queue (exporter)."),
    Metric("qmgr_messages_expired", COUNTER,
           "Messages expired from the queue and returned to sender (exporter)."),
    Metric("bounce_non_delivery_notification", COUNTER,
           "Non-delivery notifications sent (exporter)."),
    # -- delivery ----------------------------------------------------------------------
    Metric("smtp_messages_processed", COUNTER,
           "Recipients the smtp transport handled, by status (exporter).", ("status",)),
    Metric("smtp_deferred_messages_by_dsn", COUNTER,
           "Recipients the smtp transport deferred, by DSN (exporter).", ("dsn",)),
    Metric("smtp_bounced_messages_by_dsn", COUNTER,
           "Recipients the smtp transport bounced, by DSN (exporter).", ("dsn",)),
    Metric("smtp_delivery_delay_seconds", HISTOGRAM,
           "Delivery delays of the smtp transport, by stage of Postfix's delays=a/b/c/d "
           "(exporter).", ("stage",), _TIME),
    Metric("smtp_tls_connections", COUNTER, "Outgoing TLS connections (exporter).",
           ("trust", "protocol", "cipher", "secret_bits", "algorithm_bits")),
    Metric("smtp_connection_timed_out", COUNTER,
           "Outgoing connections that timed out (exporter)."),
    Metric("delivery_recipients", COUNTER,
           "Recipients delivered, deferred or bounced, by transport, status and DSN.",
           ("transport", "status", "dsn")),
    Metric("delivery_bytes", COUNTER,
           "Message bytes per recipient handled, by transport and status.",
           ("transport", "status")),
    Metric("delivery_duration_seconds", HISTOGRAM,
           "Time one delivery attempt took (connection set-up and transmission), by transport.",
           ("transport",), _LATENCY),
    Metric("smtp_connections", GAUGE,
           "Outgoing SMTP connections, by next-hop destination and state (busy, idle).",
           ("destination", "state")),
    # -- the queue (postfix_exporter's showq shapes) -----------------------------------
    Metric("showq_queue_depth", GAUGE, "Messages in the queue, by queue (exporter).",
           ("queue",)),
    Metric("showq_message_size_bytes", HISTOGRAM,
           "Size of the messages in the queue, by queue (exporter).", ("queue",), _SIZE),
    Metric("showq_message_age_seconds", HISTOGRAM,
           "Age of the messages in the queue, by queue (exporter).", ("queue",), _AGE),
    Metric("queue_bytes", GAUGE, "Bytes of the messages in the queue, by queue.", ("queue",)),
    Metric("queue_oldest_message_age_seconds", GAUGE,
           "Age of the oldest message in the queue, by queue.", ("queue",), merge="max"),
)

METRICS: dict[str, Metric] = {m.name: m for m in _ALL}
