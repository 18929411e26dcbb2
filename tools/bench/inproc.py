"""One embedded Relay between smtp-source and smtp-sink, measured in its own process.

    python tools/bench/inproc.py SIZE N [-d] [--rounds K] [--prof FILE] [--opcodes FILE]

Runs the relay of the checkout it is imported from (PYTHONPATH) in this
process, with the daemon's logging and settings (maillog lines, gc.freeze, no
gevent spawning-stack capture), on loopback ports $PORT (default 10070, the
sink on PORT + 1). After a warm-up of $WARM messages (default 300) it sends N
messages of SIZE octets with smtp-source (20 sessions; -d: persistent ones)
and prints this process's CPU per message. --prof writes a cProfile of the
last round; --opcodes writes the bytecodes executed per message in each
function of the last round (sys.settrace: the same to about half a percent
from run to run, but slow, so use a few hundred messages;
tools/bench/opcodes-diff.py compares two such files). Under callgrind
(tools/bench/instructions, $CALLGRIND set) only the measured round is
instrumented, so the instruction count per message is
the same from run to run whatever else the machine does. $EXTRA_CF adds
main.cf lines (";" separates them).
"""
import collections
import gc
import os
import re
import resource
import shutil
import sys
import threading
import time
import cProfile

import gevent
from gevent import subprocess

import relayd
from relayd import maillog

args = sys.argv[1:]
size, count = int(args[0]), int(args[1])
persistent = "-d" in args
profile_file = args[args.index("--prof") + 1] if "--prof" in args else None
opcodes_file = args[args.index("--opcodes") + 1] if "--opcodes" in args else None
rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 1
relay_port = int(os.environ.get("PORT", "10070"))
sink_port = relay_port + 1
run = f"/tmp/relayd-inproc-{os.getpid()}"
shutil.rmtree(run, ignore_errors=True)
os.makedirs(run)
source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
sink = subprocess.Popen([shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", "-u", "nobody",
                         "-c", "-m", "1024", f"127.0.0.1:{sink_port}", "1024"],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
received = [0]


def read_sink_counters():
    tail = b""
    while data := sink.stdout.read1(65536):
        tail = (tail + data)[-200:]
        if found := re.findall(rb"mesg=(\d+)", tail):
            received[0] = int(found[-1])


gevent.spawn(read_sink_counters)
maillog.configure("relayd.bench", f"{run}/maillog")
gevent.config.track_greenlet_tree = False   # as the daemon (relayd.daemon)
main_cf = (f"myhostname = relayd.bench\nqueue_directory = {run}/spool\n"
           f"relayhost = [127.0.0.1]:{sink_port}\nmynetworks = 127.0.0.0/8\n"
           + os.environ.get("EXTRA_CF", "").replace(";", "\n"))
relay = relayd.Relay(main_cf=main_cf, listen=[("127.0.0.1", relay_port)])
relay.start()
gc.collect()
gc.freeze()


def send(messages: int) -> None:
    target = received[0] + messages
    load = subprocess.Popen([source, "-s", "20", "-m", str(messages), "-l", str(size), "-N",
                             "-C", "5", "-M", "bench.example", "-f", "sender@bench.example",
                             "-t", "rcpt@sink.example", *(["-d"] if persistent else []),
                             f"127.0.0.1:{relay_port}"])
    if load.wait() != 0:
        sys.exit(f"smtp-source failed with {load.returncode}")
    while received[0] < target:
        gevent.sleep(0.005)


def count_opcodes() -> collections.Counter:
    """Count from now on the bytecodes each function executes (sys.settrace)."""
    executed = collections.Counter()

    def local(frame, event, arg):
        if event == "opcode":
            executed[frame.f_code] += 1
        return local

    def generated(frame, event, arg):   # dataclass methods: one name per class
        if event == "opcode":
            executed[frame.f_code, type(frame.f_locals.get("self")).__qualname__] += 1
        return generated

    def start(frame, event, arg):
        frame.f_trace_opcodes = True
        return generated if frame.f_code.co_filename == "<string>" else local

    threading.settrace(start)
    sys.settrace(start)
    return executed


def write_opcodes(executed: collections.Counter, path: str) -> None:
    sys.settrace(None)
    threading.settrace(None)
    with open(path, "w") as out:
        for code, n in executed.most_common():
            code, owner = code if isinstance(code, tuple) else (code, "")
            out.write(f"{n / count:.2f}\t{code.co_filename}:{code.co_firstlineno}\t"
                      f"{owner}{'.' if owner else ''}{code.co_qualname}\n")


callgrind = None
try:
    send(int(os.environ.get("WARM", "300")))
    if os.environ.get("CALLGRIND"):
        import ctypes
        callgrind = ctypes.CDLL(os.environ["CALLGRIND"])
    for number in range(rounds):
        gevent.sleep(0.2)
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        profiler = cProfile.Profile() if profile_file and number == rounds - 1 else None
        if profiler:
            profiler.enable()
        if opcodes_file and number == rounds - 1:
            executed = count_opcodes()
        if callgrind:
            callgrind.cg_start()
        send(count)
        if callgrind:
            callgrind.cg_stop()
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile_file)
        if opcodes_file and number == rounds - 1:
            write_opcodes(executed, opcodes_file)
        after, took = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        print(f"cpu ms/msg {cpu / count * 1000:.3f} "
              f"(user {(after.ru_utime - before.ru_utime) / count * 1000:.3f}), "
              f"{count / took:.0f} msg/s")
finally:
    relay.stop()
    sink.kill()
    shutil.rmtree(run, ignore_errors=True)
