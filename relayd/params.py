"""Every main.cf parameter relayd knows, declared once: the parser (relayd.config),
``relayd config show`` and the documentation read this table. Names, defaults and units
are Postfix's (postconf(5), mail_params.h); a default is Postfix's *raw* text, ``$name``
included, so ``config show -d`` prints what ``postconf -d`` prints; where relayd's default
differs, the doc says so. Types: :mod:`relayd.paramtypes`.

Parameters relayd does not use are declared too (``compat``, from the data file
postfix-defaults.cf), so that a stock Postfix main.cf loads without warnings; code never
reads one (``Config[name]`` raises UnusedParameter; tests/config/test_param_reads.py
finds every read): to use one, declare it here with its type.
"""
from __future__ import annotations

from importlib import resources

from relayd.paramtypes import Param, convert

COMPAT_DOC = "Postfix parameter, accepted for compatibility; not used yet."


def _time(name: str, default: str, doc: str) -> Param:
    """A time parameter whose default unit is the unit of its default, as in Postfix."""
    return Param(name, "time", default, doc, unit=default[-1])


_ADDRESS_CLASSES = ("envelope_sender", "envelope_recipient", "header_sender", "header_recipient")


def _code(name: str, default: str, doc: str) -> Param:
    """A reply-code parameter (an int, as in Postfix)."""
    return Param(name, "int", default, doc)


# --- Routing and MX delivery (relayd/delivery/route.py, mx.py, limits.py).
# The per-transport forms (<transport>_destination_concurrency_limit, ...) are read through
# relayd.delivery.limits, each defaulting to the default_destination_* parameter here.
_ROUTING = [
    Param("sender_dependent_relayhost_maps", "list", "",
          "Relay host per envelope sender (address, then @domain), over relayhost; DUNNO: "
          "deliver to the recipient domain."),
    Param("sender_dependent_default_transport_maps", "list", "",
          "Transport per envelope sender for the default address class, over "
          "default_transport; DUNNO: default_transport."),
    Param("empty_address_relayhost_maps_lookup_key", "str", "<>",
          "The sender_dependent_relayhost_maps key for the null sender."),
    Param("empty_address_default_transport_maps_lookup_key", "str", "<>",
          "The sender_dependent_default_transport_maps key for the null sender."),
    Param("smtp_fallback_relay", "list", "$fallback_relay",
          "Relay destinations tried, in order, when the next hop is not found or its hosts "
          "fail with a temporary error (not for a destination this host is MX for)."),
    Param("smtp_mx_address_limit", "int", "5",
          "Most server addresses tried per next hop (MX or host addresses); 0: no limit."),
    Param("smtp_mx_session_limit", "int", "2",
          "Most SMTP sessions (past the EHLO and TLS handshake) per next hop and delivery; "
          "0: no limit."),
    _time("default_destination_rate_delay", "0s",
          "Delay between deliveries to one destination over one transport (concurrency 1 "
          "when set); per recipient when the recipient limit is 1. relayd: held across "
          "the worker processes of a node."),
    Param("default_destination_recipient_limit", "int", "50",
          "Most recipients per delivery; 1 makes the destination of the concurrency limit "
          "and rate delay a recipient instead of a domain."),
]

# Postfix parameters relayd reads, with Postfix's types and defaults (postconf(5),
# src/global/mail_params.h): rejects and replies, content checks, address
# rewriting, delivery.
_POSTFIX_USED = [
    Param("soft_bounce", "bool", "no",
          "Safety net while testing a configuration: the SMTP server's 5xx replies become "
          "4xx, and mail that would bounce stays queued (logged status=SOFTBOUNCE, no DSN)."),
    _code("access_map_reject_code", "554", "Reply code for a REJECT access-map result."),
    _code("access_map_defer_code", "450", "Reply code for a DEFER access-map result."),
    _code("invalid_hostname_reject_code", "501",
          "Reply code for reject_invalid_helo_hostname and its kin."),
    _code("non_fqdn_reject_code", "504",
          "Reply code for reject_non_fqdn_helo_hostname, _sender and _recipient."),
    _code("unknown_virtual_alias_reject_code", "550",
          "Reply code for a recipient in virtual_alias_domains with no virtual_alias_maps entry."),
    _code("unknown_virtual_mailbox_reject_code", "550",
          "Reply code for a recipient in virtual_mailbox_domains that virtual_mailbox_maps "
          "does not list."),
    _code("unknown_local_recipient_reject_code", "550",
          "Reply code for a local recipient that local_recipient_maps does not list."),
    _code("unknown_relay_recipient_reject_code", "550",
          "Reply code for a relay_domains recipient that relay_recipient_maps does not list."),
    Param("show_user_unknown_table_name", "bool", "yes",
          "Name the table in 'User unknown in ... table' replies."),
    Param("smtpd_reject_unlisted_recipient", "bool", "yes",
          "Reject a recipient the recipient tables do not list, even with no restriction "
          "naming reject_unlisted_recipient."),
    Param("smtpd_reject_unlisted_sender", "bool", "no",
          "Reject a sender the address tables would not accept as a recipient."),
    Param("parent_domain_matches_subdomains", "list",
          "debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,"
          "qmqpd_authorized_clients,relay_domains,smtpd_access_maps",
          "Features where a domain also matches its subdomains (relayd reads relay_domains "
          "and smtpd_access_maps)."),
    Param("smtpd_null_access_lookup_key", "str", "<>",
          "The access-map key looked up for the null sender address."),
    Param("allow_untrusted_routing", "bool", "no",
          "Let an access-map OK permit an address with sender-specified routing (%, !, @)."),
    Param("append_at_myorigin", "bool", "yes", "Append @$myorigin to unqualified addresses."),
    Param("smtpd_client_event_limit_exceptions", "list",
          "${smtpd_client_connection_limit_exceptions:$mynetworks}",
          "Clients exempt from the per-client limits (smtpd_client_connection_count_limit)."),
    Param("local_recipient_maps", "list", "proxy:unix:passwd.byname $alias_maps",
          "Valid local recipients (mydestination); empty: any local recipient."),
    Param("relocated_maps", "list", "", "Tables of users who moved: 'User has moved to ...'."),
    # Content checks (header_checks(5), cleanup(8)).
    Param("header_checks", "list", "", "Pattern tables applied to each message header."),
    Param("mime_header_checks", "list", "$header_checks",
          "Pattern tables applied to MIME headers of body parts."),
    Param("nested_header_checks", "list", "$header_checks",
          "Pattern tables applied to the headers of attached messages."),
    Param("body_checks", "list", "", "Pattern tables applied to each body line."),
    Param("body_checks_size_limit", "int", "51200",
          "How much of each body part body_checks inspect, in bytes."),
    Param("header_size_limit", "int", "102400",
          "Most bytes kept of one message header (with its continuation lines); the rest "
          "is discarded and never looked at (header_checks, regexp:/pcre: keys)."),
    Param("mime_nesting_limit", "int", "100", "Deepest MIME multipart nesting inspected."),
    Param("mime_boundary_length_limit", "int", "2048",
          "Longest MIME boundary string recognised, in bytes."),
    Param("disable_mime_input_processing", "bool", "no",
          "Treat the body as plain text: no MIME structure is parsed."),
    Param("receive_override_options", "list", "",
          "Processing turned off on the way in (e.g. for a content filter's reinjection).",
          choices=("no_unknown_recipient_checks", "no_address_mappings",
                   "no_header_body_checks", "no_milters")),
    # Address rewriting (canonical(5), virtual(5), generic(5)).
    Param("canonical_maps", "list", "",
          "Address mapping tables for sender and recipient addresses."),
    Param("sender_canonical_maps", "list", "", "Address mapping tables for sender addresses."),
    Param("recipient_canonical_maps", "list", "",
          "Address mapping tables for recipient addresses."),
    Param("canonical_classes", "list", ", ".join(_ADDRESS_CLASSES),
          "Addresses canonical_maps applies to.", choices=_ADDRESS_CLASSES),
    Param("sender_canonical_classes", "list", "envelope_sender, header_sender",
          "Addresses sender_canonical_maps applies to.", choices=_ADDRESS_CLASSES),
    Param("recipient_canonical_classes", "list", "envelope_recipient, header_recipient",
          "Addresses recipient_canonical_maps applies to.", choices=_ADDRESS_CLASSES),
    Param("masquerade_domains", "list", "",
          "Domains whose subdomains are stripped from addresses (!domain: not stripped)."),
    Param("masquerade_exceptions", "list", "", "User names never masqueraded."),
    Param("masquerade_classes", "list", "envelope_sender, header_sender, header_recipient",
          "Addresses masquerading applies to.", choices=_ADDRESS_CLASSES),
    Param("propagate_unmatched_extensions", "list", "canonical, virtual",
          "Mappings that keep an address extension their table entry does not match.",
          choices=("canonical", "virtual", "alias", "forward", "include", "generic")),
    Param("virtual_maps", "list", "",
          "Obsolete name of virtual_alias_maps (reached through its default; a warning when set)."),
    Param("virtual_alias_domains", "list", "$virtual_alias_maps",
          "Domains whose every address is an alias (virtual_alias_maps)."),
    Param("virtual_mailbox_domains", "list", "$virtual_mailbox_maps",
          "Domains of the virtual mailbox class (delivered by virtual_transport)."),
    Param("virtual_mailbox_maps", "list", "",
          "Valid recipients in virtual_mailbox_domains; empty: any recipient there."),
    Param("virtual_alias_expansion_limit", "int", "1000",
          "Most addresses one virtual alias expansion may produce."),
    Param("virtual_alias_recursion_limit", "int", "1000",
          "Deepest nesting of virtual alias expansion."),
    Param("local_header_rewrite_clients", "list", "permit_inet_interfaces",
          "Clients whose message header addresses are rewritten (canonical, masquerade)."),
    Param("remote_header_rewrite_domain", "str", "",
          "Domain appended to incomplete header addresses from other clients; empty: no "
          "rewriting of their headers."),
    Param("proxy_interfaces", "list", "",
          "Addresses this host receives mail on through a proxy or NAT (local destinations)."),
    Param("smtp_generic_maps", "list", "",
          "Address mapping tables applied by the SMTP client to outgoing mail."),
    # Delivery.
    Param("local_transport", "str", "local:$myhostname",
          "Transport for mail to mydestination domains."),
    _time("smtp_rset_timeout", "20s", "Time to wait for the RSET reply."),
]


_RELAYD = [
    Param("myhostname", "str", "",
          "The FQDN of this host. Default: socket.getfqdn(), computed once when first needed."),
    Param("mydomain", "str", "",
          "The domain of this host. Default: $myhostname after its first dot, or 'localdomain'."),
    Param("myorigin", "str", "$myhostname", "Domain appended to unqualified sender addresses."),
    Param("mydestination", "list", "$myhostname, localhost.$mydomain, localhost",
          "Domains delivered locally (relayd: final destinations it accepts without relaying)."),
    Param("mynetworks", "list", "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
          "Trusted client networks (permit_mynetworks). relayd's default is the loopback "
          "networks only: it does not scan the interfaces as Postfix does for mynetworks_style."),
    Param("mynetworks_style", "choice", "host",
          "How Postfix derives mynetworks; relayd only uses the 'host' form (loopback only).",
          choices=("host", "subnet", "class")),
    Param("relay_domains", "list", "",
          "Remote domains this host relays mail to (empty as in Postfix >= 3.0)."),
    Param("relayhost", "str", "", "Smart host for non-local mail; empty means deliver by MX."),
    Param("default_transport", "str", "smtp", "Transport for mail to remote domains."),
    Param("relay_transport", "str", "relay", "Transport for mail to relay_domains."),
    Param("virtual_transport", "str", "virtual",
          "Transport for mail to virtual_mailbox_domains (relayd has no virtual(8) agent)."),
    Param("inet_interfaces", "list", "all",
          "Addresses the smtpd listeners bind: all, loopback-only, or a list of addresses."),
    Param("inet_protocols", "list", "all", "IP protocols to listen with: all, ipv4, ipv6.",
          choices=("all", "ipv4", "ipv6")),
    Param("message_size_limit", "size", "10240000", "Largest message accepted, in bytes."),
    Param("smtpd_recipient_limit", "int", "1000", "Most recipients accepted per message."),
    _time("smtpd_timeout", "300s", "Time to wait for a client command or data."),
    Param("smtpd_banner", "str", "$myhostname ESMTP $mail_name", "Text after 220 in the greeting."),
    Param("mail_name", "str", "relayd", "The mail system's name (Postfix: 'Postfix')."),
    Param("smtpd_helo_required", "bool", "no", "Require HELO/EHLO before MAIL FROM."),
    Param("disable_vrfy_command", "bool", "no", "Refuse the VRFY command."),
    Param("smtpd_hard_error_limit", "int", "20", "Errors after which the session is closed."),
    Param("smtpd_soft_error_limit", "int", "10", "Errors after which each reply is delayed."),
    _time("smtpd_error_sleep_time", "1s", "Delay before an error reply past the soft limit."),
    Param("smtpd_junk_command_limit", "int", "100",
          "Junk commands (HELO, EHLO, RSET, NOOP, VRFY) a client may send before each "
          "further one counts as an error; a delivered message resets the count."),
    Param("hopcount_limit", "int", "50", "Most Received: headers before a message is bounced."),
    Param("smtpd_forbid_bare_newline", "choice", "normalize",
          "Bare <LF> handling as in Postfix >= 3.9: normalize (=yes) requires CRLF.CRLF to end "
          "DATA and accepts bare LF as a line end; reject answers 550 and drops the message; "
          "no accepts it.", choices=("normalize", "yes", "reject", "no")),
    Param("smtpd_forbid_bare_newline_exclusions", "list", "$mynetworks",
          "Clients exempt from smtpd_forbid_bare_newline."),
    Param("smtpd_forbid_bare_newline_reject_code", "int", "550",
          "Reply code when smtpd_forbid_bare_newline = reject refuses a message."),
    Param("line_length_limit", "int", "2048", "Longest message line kept whole, in bytes."),
    Param("queue_directory", "str", "/var/spool/relayd",
          "Where the queue lives (Postfix: /var/spool/postfix)."),
    _time("queue_run_delay", "300s", "How often the deferred queue is scanned."),
    _time("minimal_backoff_time", "300s", "Shortest time before a deferred message is retried."),
    _time("maximal_backoff_time", "4000s", "Longest time between retries of a deferred message."),
    _time("maximal_queue_lifetime", "5d", "Time after which an undeliverable message bounces."),
    _time("bounce_queue_lifetime", "5d", "maximal_queue_lifetime for bounce messages."),
    _time("delay_warning_time", "0h", "Time after which a delay notice is sent; 0 disables."),
    Param("default_destination_concurrency_limit", "int", "20",
          "Parallel deliveries per destination (<transport>_destination_concurrency_limit "
          "overrides it per transport; divided among the worker processes, docs/routing.md)."),
    Param("default_process_limit", "int", "100",
          "Default master.cf maxproc; relayd: delivery concurrency when master.cf sets none."),
    _time("smtp_connect_timeout", "30s", "Time to complete a TCP connection to a server."),
    _time("smtp_helo_timeout", "300s", "Time to wait for the greeting and the HELO reply."),
    _time("smtp_mail_timeout", "300s", "Time to wait for the MAIL FROM reply."),
    _time("smtp_rcpt_timeout", "300s", "Time to wait for an RCPT TO reply."),
    _time("smtp_data_init_timeout", "120s", "Time to wait for the DATA reply."),
    _time("smtp_data_xfer_timeout", "180s", "Time to send one chunk of message content."),
    _time("smtp_data_done_timeout", "600s", "Time to wait for the reply to the final dot."),
    _time("smtp_quit_timeout", "300s", "Time to wait for the QUIT reply."),
    Param("smtp_line_length_limit", "int", "998",
          "Longest message line sent over SMTP, CRLF not counted (relayd: a stuffing dot "
          "counted); longer lines are broken by inserting CRLF SPACE. 0 disables this."),
    _time("smtp_connection_reuse_time_limit", "300s", "How long a cached connection is reused."),
    _time("smtp_connection_cache_time_limit", "2s", "How long an idle connection is cached."),
    Param("smtpd_relay_restrictions", "list",
          "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
          "Relay control, evaluated before smtpd_recipient_restrictions."),
    Param("smtpd_recipient_restrictions", "list", "", "Restrictions at RCPT TO."),
    Param("smtpd_client_restrictions", "list", "", "Restrictions on the client at connect."),
    Param("smtpd_helo_restrictions", "list", "", "Restrictions at HELO/EHLO."),
    Param("smtpd_sender_restrictions", "list", "", "Restrictions at MAIL FROM."),
    Param("smtpd_data_restrictions", "list", "", "Restrictions at DATA."),
    Param("smtpd_end_of_data_restrictions", "list", "", "Restrictions after the final dot."),
    Param("smtpd_restriction_classes", "list", "",
          "User-defined names of restriction lists; the names are parameters themselves."),
    Param("smtpd_delay_reject", "bool", "yes", "Delay client/HELO/sender rejects to RCPT TO."),
    Param("smtpd_client_connection_count_limit", "int", "50",
          "Simultaneous connections one client may have."),
    _time("anvil_rate_time_unit", "60s", "The time unit of the per-client AUTH rate."),
    Param("smtpd_client_auth_rate_limit", "int", "60", "AUTH per client and time unit; 0: none."),
    Param("smtpd_session_limit", "int", "1000",
          "relayd extension: most simultaneous SMTP sessions of the whole relay, all workers "
          "together (Postfix limits sessions through the smtpd process count)."),
    _time("ipc_timeout", "3600s",
          "Time limit for a control socket client to send its request and to take the answer."),
    Param("smtpd_client_port_logging", "bool", "no", "Log the client port with its address."),
    Param("maillog_file", "str", "", "Log to this file instead of syslog."),
    Param("config_directory", "str", "/etc/relayd",
          "Where main.cf and master.cf are (Postfix: /etc/postfix)."),
    Param("command_directory", "str", "/usr/sbin", "Where the commands are."),
    Param("daemon_directory", "str", "/usr/lib/postfix/sbin", COMPAT_DOC),
    Param("data_directory", "str", "/var/lib/postfix", "Where writable non-queue data lives."),
    Param("default_privs", "str", "nobody", "The user root's local mail is written as."),
    Param("compatibility_level", "str", "3.6",
          "relayd always behaves as Postfix at level >= 3.6 (Postfix's built-in default is 0)."),
    Param("biff", "bool", "yes", COMPAT_DOC),
    Param("append_dot_mydomain", "bool", "no", "Append .$mydomain to 'user@host' addresses."),
    Param("recipient_delimiter", "str", "", "Separators between user name and extension."),
    # -- Server TLS (relayd/tls/, the STARTTLS session driver) -------------------------------
    Param("smtpd_tls_security_level", "choice", "",
          "STARTTLS policy of the SMTP server: empty or none (no TLS), may (offered when a "
          "certificate is configured), encrypt (MAIL etc. refused before STARTTLS).",
          choices=("", "none", "may", "encrypt")),
    Param("smtpd_tls_cert_file", "str", "",
          "Server certificate (PEM), followed by its intermediate certificates."),
    Param("smtpd_tls_key_file", "str", "$smtpd_tls_cert_file", "Server private key (PEM)."),
    Param("smtpd_tls_chain_files", "list", "",
          "Files with the private key, then the certificate and its chain (PEM), in that "
          "order; used instead of smtpd_tls_cert_file/smtpd_tls_key_file when set."),
    Param("smtpd_tls_CAfile", "str", "",
          "CA certificates (PEM) that make a client certificate Trusted; without it every "
          "client certificate is Untrusted (and still usable by fingerprint)."),
    Param("smtpd_tls_protocols", "str", ">=TLSv1.2",
          "TLS protocols with security level may (Postfix syntax: '>=TLSv1.2' or "
          "'!SSLv3, !TLSv1'). relayd's default is >=TLSv1.2 (Postfix: >=TLSv1)."),
    Param("smtpd_tls_mandatory_protocols", "str", ">=TLSv1.2",
          "TLS protocols with security level encrypt. relayd's default is >=TLSv1.2 "
          "(Postfix: >=TLSv1)."),
    Param("smtpd_tls_ciphers", "choice", "medium",
          "Cipher grade with security level may.", choices=("high", "medium")),
    Param("smtpd_tls_mandatory_ciphers", "choice", "medium",
          "Cipher grade with security level encrypt.", choices=("high", "medium")),
    Param("smtpd_tls_exclude_ciphers", "list", "",
          "OpenSSL cipher names or classes removed from the grade's list."),
    Param("smtpd_tls_mandatory_exclude_ciphers", "list", "",
          "Also removed with security level encrypt."),
    Param("tls_high_cipherlist", "str", "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:"
          "!aNULL:!eNULL:!SHA1:@STRENGTH",
          "The 'high' grade (OpenSSL syntax, TLS 1.2 and older; TLS 1.3 suites are always "
          "OpenSSL's strong defaults). relayd's default keeps only AEAD ciphers with forward "
          "secrecy (Postfix: aNULL:-aNULL:HIGH:@STRENGTH)."),
    Param("tls_medium_cipherlist", "str", "$tls_high_cipherlist",
          "The 'medium' grade. relayd's default is the high list, which no TLS scanner rates "
          "weak (Postfix: aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH)."),
    Param("smtpd_tls_ask_ccert", "bool", "no", "Ask the client for a certificate."),
    Param("smtpd_tls_loglevel", "int", "0",
          "0: no TLS summary (a failed handshake is always logged); 1: the 'TLS connection "
          "established' line; 2 and more: also the client certificate's CN, issuer and "
          "fingerprints."),
    Param("smtpd_tls_received_header", "bool", "no",
          "Put the TLS protocol, cipher and client certificate status in Received."),
    Param("smtpd_tls_wrappermode", "bool", "no",
          "Implicit TLS (port 465, 'submissions'): the handshake comes before the greeting. "
          "Set with -o in master.cf."),
    _time("smtpd_starttls_timeout", "300s",
          "Time limit for the TLS handshake (STARTTLS or wrapper mode)."),
    _time("smtpd_tls_session_cache_timeout", "3600s",
          "Lifetime of a TLS session a client may resume (session tickets, shared by the "
          "worker processes); 0 turns resumption off."),
    Param("tls_server_sni_maps", "list", "",
          "Per server name (TLS SNI; then each parent domain as .domain): the files with key, "
          "certificate and chain, as in smtpd_tls_chain_files. relayd reads the file names "
          "from the table (Postfix's postmap -F stores their contents)."),
    Param("relay_clientcerts", "list", "",
          "Tables of client certificate SHA-256 fingerprints (AB:CD:...) that "
          "permit_tls_clientcerts lets relay."),
    Param("smtpd_tls_fingerprint_digest", "choice", "sha256",
          "Digest of client certificate fingerprints.", choices=("sha256",)),
    Param("smtpd_sasl_auth_enable", "bool", "no", "Offer SMTP AUTH."),
    Param("alias_maps", "list", "hash:/etc/aliases, nis:mail.aliases",
          "Alias tables of local_transport = local (aliases(5))."),
    Param("alias_database", "list", "hash:/etc/aliases", "Alias tables newaliases builds."),
    Param("virtual_alias_maps", "list", "$virtual_maps", "Address rewriting tables (virtual(5))."),
    Param("relay_recipient_maps", "list", "", "Valid recipients in relay_domains."),
    Param("transport_maps", "list", "",
          "Transport and next hop per recipient, domain or parent domain (transport(5), "
          "docs/routing.md)."),
    Param("double_bounce_sender", "str", "double-bounce", "Sender of postmaster notices."),
    Param("notify_classes", "list", "resource, software", "Problems reported to postmaster."),
    Param("queue_minfree", "size", "0",
          "Free space the queue file system must keep, in bytes: MAIL FROM gets 452 4.3.1 when "
          "the free space is at most this or under 1.5 x message_size_limit (smtpd_check_queue)."),
    Param("smtputf8_enable", "bool", "yes",
          "Postfix: offer SMTPUTF8. relayd has no SMTPUTF8 yet and never offers it: a "
          "non-ASCII address is refused (553 5.6.7; 501 for a non-ASCII domain)."),
    Param("mailbox_size_limit", "size", "51200000", COMPAT_DOC),
    Param("relayd_queue_fsync", "bool", "yes",
          "relayd extension: flush queue writes to disk; 'no' is for tests only."),
    Param("relayd_queue_segment_size", "size", "67108864",
          "relayd extension: size at which a queue journal segment is closed, in bytes."),
    Param("relocated_prefix_enable", "bool", "yes",
          "Prepend 'User has moved to' to relocated_maps results (Postfix 3.11)."),
    Param("relayd_maildir_base", "str", "",
          "relayd extension: where local_transport = local delivers: "
          "BASE/USER/Maildir; empty means $queue_directory/../mail."),
    Param("home_mailbox", "str", "", "Maildir path below the home, e.g. Maildir/ (docs/operations.md)."),
    Param("relayd_allow_alias_include", "bool", "no",
          "relayd extension: expand :include:/file items of alias_maps (refused when no)."),
    Param("relayd_plugins", "list", "",
          "relayd extension: plugins (entry-point names) whose lifecycle hooks run even "
          "when no restriction list names one of their checks."),
    Param("relayd_worker_processes", "int", "auto",
          "relayd extension: worker processes, each a whole relay on the shared listeners "
          "with its own queue journal; 'auto' means one per CPU core.", choices=("auto",)),
    # -- commands: sendmail's maildrop and pickup (relayd/maildrop.py, relayd/pickup.py) -------
    _time("relayd_pickup_wakeup_time", "60s",
          "relayd extension: how often pickup looks into $queue_directory/maildrop when no "
          "sendmail woke it (Postfix: the pickup service's master.cf wakeup time, 60)."),
    _time("relayd_sendmail_timeout", "3600s",
          "relayd extension: the longest sendmail waits for each read of its standard input "
          "(and -bs for each SMTP command) before it gives up."),
    # -- The daemon (relayd/master.py, daemon.py, privileges.py, systemd.py, maillog.py) -----
    Param("mail_owner", "str", "relayd",
          "The user the workers run as when relayd is started as root (Postfix: postfix; "
          "relayd's sysusers.d file creates relayd). root: no privilege step (test rigs only)."),
    _time("relayd_drain_timeout", "20s",
          "relayd extension: on SIGTERM, and for each worker replaced on SIGHUP, how long "
          "sessions in progress may go on after accepting stops (then deliveries as long)."),
    _time("service_throttle_time", "60s",
          "How long the master waits before restarting a worker that died before it served."),
    Param("relayd_metrics_listen", "str", "",
          "relayd extension: HOST:PORT of the Prometheus metrics endpoint; empty: none."),
    Param("syslog_name", "str", "relayd",
          "The program name prefix of log lines: syslog_name/smtpd[pid] (Postfix: postfix)."),
    Param("syslog_facility", "choice", "mail", "The syslog facility of log lines.",
          choices=("mail", "daemon", "user", "local0", "local1", "local2", "local3", "local4",
                   "local5", "local6", "local7")),
    # -- SMTP AUTH, server side (relayd/sasl/, relayd/edge/auth.py) -------------------------
    Param("smtpd_sasl_type", "choice", "relayd",
          "SASL back end: relayd (relayd_sasl_password_maps) or dovecot (smtpd_sasl_path). "
          "Postfix's default, cyrus, is not provided.", choices=("relayd", "dovecot")),
    Param("smtpd_sasl_path", "str", "smtpd",
          "The dovecot back end's auth socket: a UNIX socket path (relative to "
          "$queue_directory, as Postfix resolves private/auth) or inet:host:port."),
    Param("smtpd_sasl_service", "str", "smtp", "The service name given to Dovecot."),
    Param("smtpd_tls_auth_only", "bool", "yes",
          "Offer and accept AUTH only over TLS (Postfix's default is no; relayd's is yes, "
          "so that no password crosses the network in the clear by default)."),
    Param("smtpd_sasl_authenticated_header", "bool", "no",
          "Put the authenticated user name in the Received header."),
    Param("smtpd_sender_login_maps", "list", "",
          "Who owns each sender address: address -> login names (reject_*_login_mismatch)."),
    Param("relayd_sasl_password_maps", "list", "",
          "relayd extension: smtpd_sasl_type = relayd's credentials, user name -> "
          "crypt(3) SHA-512 hash ($6$, as 'relayd passwd', mkpasswd or doveadm pw make it)."),
    _time("relayd_sasl_auth_timeout", "10s",
          "relayd extension: the longest an AUTH waits for the dovecot back end."),
    # -- Client TLS and SASL (relayd/tls/client.py, relayd/delivery/) ------------------------
    Param("smtp_tls_security_level", "choice", "may",
          "TLS towards next hops: none; may (STARTTLS when offered, plaintext otherwise or "
          "after a failed handshake); encrypt (TLS required, certificate not checked); verify "
          "and secure (certificate checked against smtp_tls_CAfile/CApath and the names of "
          "smtp_tls_verify_cert_match / smtp_tls_secure_cert_match). relayd's default is may, "
          "as Postfix >= 3.11 (compatibility_level >= 3.11; earlier: empty, no TLS).",
          choices=("", "none", "may", "encrypt", "verify", "secure")),
    Param("smtp_tls_policy_maps", "list", "",
          "Per next hop ([host]:port, [host], host:port, domain, then .parent domains): a "
          "security level and attributes (match=, protocols=, ciphers=, exclude=, servername=)."),
    Param("smtp_tls_CAfile", "str", "",
          "CA certificates (PEM) that make a next hop's certificate trusted (verify, secure)."),
    Param("smtp_tls_CApath", "str", "",
          "Directory of CA certificates (c_rehash form) used as smtp_tls_CAfile."),
    Param("smtp_tls_protocols", "str", ">=TLSv1.2",
          "TLS protocols at level may. relayd's default is >=TLSv1.2 (Postfix: >=TLSv1)."),
    Param("smtp_tls_mandatory_protocols", "str", ">=TLSv1.2",
          "TLS protocols at levels encrypt and above. relayd's default is >=TLSv1.2 "
          "(Postfix: >=TLSv1)."),
    Param("smtp_tls_ciphers", "choice", "medium", "Cipher grade at level may.",
          choices=("high", "medium")),
    Param("smtp_tls_mandatory_ciphers", "choice", "medium",
          "Cipher grade at levels encrypt and above.", choices=("high", "medium")),
    Param("smtp_tls_exclude_ciphers", "list", "",
          "OpenSSL cipher names or classes removed from the client's list."),
    Param("smtp_tls_mandatory_exclude_ciphers", "list", "",
          "Also removed at levels encrypt and above."),
    Param("smtp_tls_servername", "str", "",
          "SNI sent to next hops: empty (none), hostname (the server's name), nexthop (the "
          "next-hop domain) or a literal name."),
    Param("smtp_tls_verify_cert_match", "list", "hostname",
          "Names a server certificate must match at level verify: hostname, nexthop, "
          "dot-nexthop, a name or a .parent domain."),
    Param("smtp_tls_secure_cert_match", "list", "nexthop, dot-nexthop",
          "Names a server certificate must match at level secure (as smtp_tls_verify_cert_match)."),
    Param("smtp_tls_loglevel", "int", "0",
          "0: only failures; 1: the 'TLS connection established to' line; 2 and more: also "
          "the handshake's details (SNI, cipher list, session reuse)."),
    _time("smtp_starttls_timeout", "300s", "Time limit for the client's TLS handshake."),
    Param("smtp_tls_wrappermode", "bool", "no",
          "Implicit TLS towards the next hop (SMTPS, port 465): the handshake before the "
          "greeting, no STARTTLS; needs smtp_tls_security_level = encrypt or stronger."),
    Param("smtp_sasl_auth_enable", "bool", "no", "Authenticate to next hops (SMTP AUTH)."),
    Param("smtp_sasl_password_maps", "list", "",
          "user:password per next hop: the server's host name, then the next hop as "
          "written ([host]:port, [host], host); first the sender (address, then @domain) "
          "with smtp_sender_dependent_authentication."),
    Param("smtp_sender_dependent_authentication", "bool", "no",
          "Look smtp_sasl_password_maps up by the envelope sender first; connections are "
          "then cached per SASL user."),
    Param("smtp_sasl_security_options", "list", "noplaintext, noanonymous",
          "SASL policy without TLS: noplaintext (also noactive, nodictionary, mutual_auth) "
          "rules out PLAIN and LOGIN, relayd's mechanisms.",
          choices=("noplaintext", "noactive", "nodictionary", "noanonymous", "mutual_auth")),
    Param("smtp_sasl_tls_security_options", "list", "noanonymous",
          "SASL policy over TLS. relayd's default is noanonymous, so PLAIN and LOGIN go over "
          "TLS only (Postfix: $smtp_sasl_security_options, as SASL_README's example changes).",
          choices=("noplaintext", "noactive", "nodictionary", "noanonymous", "mutual_auth")),
    Param("smtp_sasl_tls_verified_security_options", "list", "$smtp_sasl_tls_security_options",
          "SASL policy over TLS with a verified server certificate (verify, secure).",
          choices=("noplaintext", "noactive", "nodictionary", "noanonymous", "mutual_auth")),
    Param("smtp_sasl_mechanism_filter", "list", "",
          "Mechanisms the client may use, intersected with the server's (e.g. plain, login; "
          "!login excludes one)."),
    Param("smtp_sasl_auth_soft_bounce", "bool", "yes",
          "A 5xx reply to AUTH defers the mail (4.x.x) instead of bouncing it."),
    # -- DNS (relayd/dns.py, the resolver every DNS feature uses) ---------------------------
    Param("relayd_dns_servers", "list", "",
          "relayd extension: the DNS servers to ask, ADDRESS:PORT items (e.g. 127.0.0.1:5353, "
          "[::1]:5353; the port defaults to 53), in order; empty: the nameserver lines of "
          "/etc/resolv.conf (none there: 127.0.0.1)."),
    _time("relayd_dns_timeout", "0s",
          "relayd extension: how long one try waits for a DNS server's reply (UDP, then TCP "
          "for a truncated reply); 0: resolv.conf's 'options timeout:N', else 5s (at most 30s)."),
    Param("relayd_dns_attempts", "int", "0",
          "relayd extension: rounds of tries over all DNS servers before a lookup fails "
          "temporarily; 0: resolv.conf's 'options attempts:N', else 2 (at most 5)."),
    Param("relayd_dns_cache_size", "int", "1000",
          "relayd extension: DNS answers kept per process for their TTL (at most an hour; "
          "negative answers per RFC 2308); 0 turns the cache off."),
    # The DNS block and allow lists (relayd/checks/dnsbl.py).
    _code("maps_rbl_reject_code", "554",
          "Reply code ($rbl_code) when a DNS block list lists what a reject_rbl_* or "
          "reject_rhsbl_* check asks about."),
    Param("default_rbl_reply", "str",
          "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using "
          "$rbl_domain${rbl_reason?; $rbl_reason}",
          "The reply template of the DNS list checks ($rbl_code, $rbl_class, $rbl_what, "
          "$rbl_domain, $rbl_reason: the list's TXT record; read unexpanded)."),
    Param("rbl_reply_maps", "list", "",
          "Reply templates per DNS list: looked up as written (zone=d.d.d.d), then by zone."),
    Param("maps_rbl_domains", "list", "",
          "Obsolete: the zones reject_maps_rbl asks (use reject_rbl_client zone instead)."),
    Param("relayd_rbl_tempfail_action", "choice", "dunno",
          "relayd extension: what reject_rbl_client and reject_rhsbl_* do when a list gives no "
          "answer (timeout, SERVFAIL): dunno (Postfix: skip the check, with a warning), "
          "defer_if_permit or defer (450 4.7.1 ... Service unavailable).",
          choices=("dunno", "defer_if_permit", "defer")),
    # -- Client names and reject_unknown_* (edge/peername.py, checks/unknown.py) -------------
    Param("smtpd_peername_lookup", "bool", "yes",
          "Look up the client's name (PTR, then the name's A/AAAA must list the address); "
          "no: every client is unknown[address]."),
    Param("relayd_hosts_file", "str", "/etc/hosts",
          "relayd extension: the hosts(5) file asked before DNS for client names, as the C "
          "library's 'files' source is (re-read when it changes); empty: DNS only."),
    _time("relayd_peername_lookup_timeout", "10s",
          "relayd extension: the longest a new session waits for its client's name before "
          "it goes on with unknown (a temporary failure, as a resolver timeout is)."),
    _code("unknown_client_reject_code", "450",
          "Reply code of reject_unknown_client_hostname and reject_unknown_reverse_client_"
          "hostname; a temporary lookup failure always gets 450."),
    _code("unknown_hostname_reject_code", "450", "Reply code of reject_unknown_helo_hostname."),
    _code("unknown_address_reject_code", "450",
          "Reply code of reject_unknown_sender_domain and reject_unknown_recipient_domain."),
    Param("reject_tempfail_action", "choice", "defer_if_permit",
          "What a reject-type restriction does when a lookup fails temporarily: defer at "
          "once, or defer only if the request would otherwise be accepted.",
          choices=("defer", "defer_if_permit")),
    Param("unknown_address_tempfail_action", "choice", "$reject_tempfail_action",
          "reject_tempfail_action for reject_unknown_sender_domain and _recipient_domain.",
          choices=("defer", "defer_if_permit")),
    Param("unknown_helo_hostname_tempfail_action", "choice", "$reject_tempfail_action",
          "reject_tempfail_action for reject_unknown_helo_hostname.",
          choices=("defer", "defer_if_permit")),
    # -- mysql: tables (relayd/tables/mysql.py, docs/mysql.md) --------------------------------
    Param("relayd_mysql_pool_size", "int", "8",
          "relayd extension: connections (and the threads that run their blocking queries) "
          "per process for each set of mysql: servers, shared by every table and session."),
    _time("relayd_mysql_connect_timeout", "5s",
          "relayd extension: time limit for connecting to a mysql: server."),
    _time("relayd_mysql_query_timeout", "10s",
          "relayd extension: time limit for each read and write of a mysql: query, and for "
          "a lookup's wait for a free connection."),
    _time("relayd_mysql_cache_time", "0s",
          "relayd extension: how long a mysql: table keeps an answer (found or not) "
          "before asking again; 0 (the default): every lookup asks the database."),
    *_POSTFIX_USED,
    *_ROUTING,
]

def _postfix_defaults() -> dict[str, str]:
    """The compat parameters and their default texts, read from the data file
    postfix-defaults.cf ("name = default" lines, # comments)."""
    text = resources.files("relayd").joinpath("postfix-defaults.cf").read_text("utf-8")
    return {name: value.strip()
            for name, _, value in (line.partition(" =") for line in text.splitlines())
            if name and not name.startswith("#")}


# Postfix's parameters that relayd only knows for compatibility, with their defaults.
POSTFIX_DEFAULTS: dict[str, str] = _postfix_defaults()

PARAMS: dict[str, Param] = {
    **{name: Param(name, "str", default, COMPAT_DOC, compat=True)
       for name, default in POSTFIX_DEFAULTS.items()},
    **{p.name: p for p in _RELAYD},
}

# Parameters whose default is computed rather than written down.
COMPUTED = ("myhostname", "mydomain")


def typed_default(name: str):
    """The typed default of parameter *name*, for code that runs without a
    configuration (postmap without -c). Only for a default that refers to no
    other parameter: expanding one takes a configuration (relayd.config)."""
    param = PARAMS[name]
    if "$" in param.default or name in COMPUTED:
        raise ValueError(f"the default of {name} needs a configuration: {param.default!r}")
    return convert(param, param.default)
