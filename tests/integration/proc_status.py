# A field of /proc/<pid>/status in bytes (VmRSS, VmSize, ...): what the
# memory-bound tests read of the broker.


def status_bytes(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")
