"""kill -9 in the middle of a load: every acknowledged message is delivered."""
import smtplib
import threading
import time


def test_kill_9_under_load_loses_no_acknowledged_message(relayd, sink):
    acknowledged: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
                for n in range(50):
                    if stop.is_set():
                        return
                    token = f"w{worker}-m{n}"
                    smtp.sendmail("load@example.org", [f"{token}@relay.example"],
                                  f"Subject: {token}\r\n\r\n{'x' * 2000}\r\n".encode())
                    with lock:  # only now, after the 250, is the message acknowledged
                        acknowledged.add(token)
        except (smtplib.SMTPException, OSError):
            return

    threads = [threading.Thread(target=client, args=(w,)) for w in range(10)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    relayd.kill9()
    stop.set()
    for t in threads:
        t.join(15)
    assert len(acknowledged) >= 200
    relayd.start()

    def delivered() -> set[str]:
        return {m.recipients[0].split("@")[0] for m in list(sink.messages)}

    deadline = time.monotonic() + 60
    while not acknowledged <= delivered() and time.monotonic() < deadline:
        time.sleep(0.2)
    missing = acknowledged - delivered()
    assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:10]}"
