"""The lookup servers of tools/bench/run-lookups: a private MariaDB and Knot DNS,
started as the tests start them (tests/support), in the benchmark's network
namespace. It writes the main.cf lines that put them in relayd's path, runs
the command after ``--`` and stops the servers.

    lookup_servers.py MAIN_CF -- COMMAND ...

MAIN_CF gets: relay_domains = sink.example (the benchmark's recipient domain),
relay_recipient_maps = mysql:... (one query per RCPT: the seed's "paid"
customers, smtp-source's numbered recipients 1rcpt@ ... RECIPIENTSrcpt@), and reject_rbl_client on a zone where the benchmark's client is
not listed (one query per client, then answered from the resolver's cache
for the zone's negative TTL, as a local caching resolver would).
"""
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.dnsserver import DnsServer  # noqa: E402
from tests.support.mariadb import MariaDB, private_base, template_datadir  # noqa: E402


# smtp-source -N numbers its recipients from 1 in each run (N at most 10000).
RECIPIENTS = 20000


def main() -> int:
    main_cf, command = Path(sys.argv[1]), sys.argv[sys.argv.index("--") + 1:]
    database = MariaDB(template_datadir(private_base()), "bench").start().load()
    dns = DnsServer(Path(tempfile.mkdtemp(prefix="relayd-bench-dns-"))).start()
    try:
        database.sql("INSERT INTO mail.relay_recipients VALUES " + ", ".join(
            f"('{n}rcpt@sink.example', 'paid', 'OK')" for n in range(1, RECIPIENTS + 1)))
        table = database.table_file(
            main_cf.parent / "relay_recipients.cf",
            "table = relay_recipients\nselect_field = action\nwhere_field = address\n"
            "additional_conditions = and status = 'paid'\n", tcp=False)
        zone = dns.add_zone(["2.0.0.127 A 127.0.0.2", "2.0.0.127 TXT listed"], "rbl.test")
        with main_cf.open("a") as f:
            f.write(f"relay_domains = sink.example\nrelay_recipient_maps = mysql:{table}\n"
                    f"relayd_dns_servers = {dns.spec}\n"
                    f"smtpd_recipient_restrictions = reject_rbl_client {zone}, permit\n")
        return subprocess.call(command)
    finally:
        dns.stop()
        database.stop()


if __name__ == "__main__":
    sys.exit(main())
