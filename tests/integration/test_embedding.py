"""relayd embedded in a gevent program through the public API."""
import logging
import signal
import smtplib

import gevent

import relayd


def test_embedded_relay_relays_and_stops_cleanly(tmp_path, sink):
    handlers_before = list(logging.getLogger().handlers)
    sigterm_before = signal.getsignal(signal.SIGTERM)
    relay = relayd.Relay(listen=[("127.0.0.1", 0)], myhostname="embedded.test",
                         queue_directory=str(tmp_path / "queue"),
                         relayhost=f"[127.0.0.1]:{sink.port}", mynetworks="127.0.0.0/8")
    relay.start()
    host, port = relay.addresses[0]

    def client():  # a blocking client in a real thread, as another program would be
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.sendmail("app@example.org", ["user@example.net"], b"Subject: embedded\r\n\r\nhi\r\n")

    gevent.get_hub().threadpool.spawn(client).get(timeout=20)
    with gevent.Timeout(15):
        while not sink.messages:
            gevent.sleep(0.05)
    relay.stop(timeout=5)
    assert sink.messages[0].recipients == ["user@example.net"]
    assert b"by embedded.test (relayd)" in sink.messages[0].data
    # No process-wide side effects.
    assert logging.getLogger().handlers == handlers_before
    assert signal.getsignal(signal.SIGTERM) == sigterm_before
    import socket as stdsocket
    assert stdsocket.socket.__module__ == "socket"  # not monkey-patched
    # Stopped means stopped: the port is closed.
    try:
        with stdsocket.create_connection((host, port), timeout=1):
            raise AssertionError("listener still open after stop()")
    except ConnectionRefusedError:
        pass
