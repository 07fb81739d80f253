#!/bin/sh
# Run a command at the lowest CPU priority, in a session of its own: `scripts/idle.sh CMD ARGS...`.
#
# `make test` runs the unit tests with it beside the chapters. On Linux with autogroup
# (/proc/sys/kernel/sched_autogroup_enabled), CPU time is shared between sessions first and by
# nice value only inside a session. Jupyter starts each kernel in a session of its own, so a plain
# `nice -n 19` beside a training kernel still took half the CPU (a 2-core training step went from
# 0.21 s to 3.6 s). The command's own session, its autogroup niced, yields to the kernels (0.21 s).
# Its child processes inherit that session unless they start their own (Jupyter kernels again:
# tests/test_colab.py passes the niceness on to those). Without autogroup (macOS, say) the plain
# nice value is what counts.
if [ -e /proc/self/autogroup ] && command -v setsid >/dev/null 2>&1; then
  exec setsid --wait sh -c 'echo 19 > /proc/self/autogroup 2>/dev/null; exec nice -n 19 "$@"' idle "$@"
fi
exec nice -n 19 "$@"
