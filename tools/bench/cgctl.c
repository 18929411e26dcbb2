/* Callgrind's client requests for tools/bench/inproc.py (through ctypes): count
   only the measured messages. Built by tools/bench/instructions. */
#include <valgrind/callgrind.h>

void cg_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void cg_stop(void) { CALLGRIND_DUMP_STATS; CALLGRIND_STOP_INSTRUMENTATION; }
