"""A TLS scanner against the STARTTLS listener with the default settings:
Debian's testssl.sh (installed by tools/setup-env) must find no protocol
below TLS 1.2 offered and no cipher category it rates weak. Only its
protocol (-p) and cipher category (-s) checks run (about 8 s); the full
run with -U and its output are in docs/tls.md."""
import json
import shutil
import subprocess

import pytest

from tests.integration.test_tls_server import tls_main_cf

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
OLD_PROTOCOLS = ("SSLv2", "SSLv3", "TLS1", "TLS1_1")
# testssl.sh's severities of a finding that is a problem (OK and INFO are not).
PROBLEMS = ("LOW", "MEDIUM", "HIGH", "CRITICAL")


@pytest.mark.skipif(TESTSSL is None, reason="testssl.sh not installed (tools/setup-env)")
def test_testssl_finds_no_old_protocol_and_no_weak_cipher(relayd_factory, tls_certs, tmp_path):
    proc = relayd_factory(tls_main_cf(tls_certs))
    report = tmp_path / "testssl.json"
    out = subprocess.run([TESTSSL, "--starttls", "smtp", "-p", "-s", "--quiet", "--color", "0",
                          "--warnings", "off", "--jsonfile", str(report),
                          f"127.0.0.1:{proc.port}"],
                         capture_output=True, text=True, timeout=240, cwd=tmp_path)
    findings = {f["id"]: f for f in json.loads(report.read_text())}
    text = out.stdout + out.stderr
    for protocol in OLD_PROTOCOLS:
        assert findings[protocol]["finding"].startswith("not offered"), text
    assert findings["TLS1_2"]["finding"].startswith("offered"), text
    assert findings["TLS1_3"]["finding"].startswith("offered"), text
    categories = {k: f for k, f in findings.items() if k.startswith("cipherlist_")}
    assert len(categories) >= 7, text   # NULL, aNULL, EXPORT, LOW, 3DES_IDEA, AVERAGE, STRONG
    weak = {k: f["finding"] for k, f in categories.items()
            if f["severity"] in PROBLEMS or (k != "cipherlist_STRONG"
                                             and not f["finding"].startswith("not offered"))}
    assert weak == {}, text
    assert findings["cipherlist_STRONG"]["finding"].startswith("offered"), text
