"""Run one command and record its own wall time and peak RSS, from a process too small to pollute them.

    python -I -S benchmarks/launcher.py RESULT_FILE COMMAND [ARG...]

Why not spawn the command from the harness directly: at exec, Linux records the high-water RSS of the memory the
new process is leaving (fs/exec.c, exec_mmap) into its ru_maxrss. With fork, vfork or posix_spawn, that memory is
the parent's, so a child spawned by the harness (which holds the stand-in, ClickHouse and the scenario: gigabytes
at ×16) reports the harness's high-water mark, not its own (×4 read 702 MB that way, 200 MB alone). This launcher
is a fresh interpreter without site-packages (-I -S): its own high-water mark at spawn (the last figure of the
result, the floor) is that of a bare interpreter, no more than any Python child's, so the child's ru_maxrss from
os.wait4 is the child's own.

The wall time is the whole process as the user sees it: from spawn to exit, interpreter start-up and teardown
included. The result file gets one line: exit code, wall seconds, peak RSS in KiB, CPU seconds, floor in KiB.
Only the standard library, nothing imported after the spawn that the child could see.
"""

import os
import resource
import sys
import time


def own_high_water_kib() -> int:
    """This process's own high-water RSS (VmHWM). Not getrusage's ru_maxrss: that one carries the harness's, recorded
    when this launcher was exec'd from it, and it is exactly what the child does not inherit."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    result_file, argv = sys.argv[1], sys.argv[2:]
    floor_kib = own_high_water_kib()
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    with open(result_file, "w") as out:
        out.write(f"{os.waitstatus_to_exitcode(status)} {wall:.6f} {usage.ru_maxrss} "
                  f"{usage.ru_utime + usage.ru_stime:.6f} {floor_kib}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
