"""What kind of hato binary a test runs against."""
import os


def sanitized(broker):
    """True for an AddressSanitizer build: its allocator keeps freed memory in
    quarantine, adds redzones and shadow memory, has no mallinfo2, and runs
    several times slower, so RSS and timing bounds measured on the release
    build do not apply to it (the release run of the same tests asserts them)."""
    exe = os.readlink(f"/proc/{broker.proc.pid}/exe")
    with open(exe, "rb") as f:
        return b"__asan_init" in f.read()
