# Runs a command in the network namespace this process was started in
# (`unshare -n`): brings loopback up and narrows the kernel's choice of
# source ports to `low`..`high`, so that a test can make a connect meet
# itself on purpose. Usage: netns_exec.py LOW HIGH COMMAND [ARG...]

import fcntl
import os
import socket
import struct
import sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def main():
    low, high, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    loopback_up()
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
        f.write(f"{low} {high}")
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
