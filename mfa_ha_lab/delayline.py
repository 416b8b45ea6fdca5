"""A delay line for the lab's wan: a TUN device in the wan namespace whose packets this
process hands back to the kernel after a delay (with jitter, and a loss rate if asked), so
DC1-DC2 traffic sees a real round trip. Kernels without the ``netem`` qdisc have TUN; the
packets are the kernel's own (addresses, TLS and pg_hba see nothing different).

    ip netns exec <wan> python -m mfa_ha_lab.delayline --device d0 --rtt-ms 10 --jitter-ms 1

``mfa_ha_lab.netns.Network.delay`` starts it and routes the two hosts' traffic through it.
Packets keep their order (a later one never overtakes an earlier one), as on one link.
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import os
import random
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
PACKET_BYTES = 65536
IDLE_SECONDS = 0.5  # how often an idle line looks whether it should end


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Line:
    """Packets in, the same packets out after ``one_way`` seconds (± ``jitter``), in order."""

    def __init__(self, one_way: float, jitter: float, loss: float, clock=time.monotonic, rng=None):
        self.one_way, self.jitter, self.loss, self.clock = one_way, jitter, loss, clock
        self.rng = rng or random.Random()
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.last_release = 0.0

    def take(self, packet: bytes) -> None:
        if self.loss and self.rng.random() < self.loss:
            return
        delay = self.one_way + (self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
        release = max(self.clock() + max(delay, 0.0), self.last_release)
        self.last_release = release
        self.queue.append((release, packet))

    def due(self) -> list[bytes]:
        now, out = self.clock(), []
        while self.queue and self.queue[0][0] <= now:
            out.append(self.queue.popleft()[1])
        return out

    def wait(self) -> float:
        """Seconds until the next packet is due (``IDLE_SECONDS`` when none waits)."""
        return max(0.0, self.queue[0][0] - self.clock()) if self.queue else IDLE_SECONDS


def run(fd: int, line: Line, stop) -> None:
    while not stop():
        readable, _, _ = select.select([fd], [], [], line.wait())
        if readable:
            while True:
                try:
                    line.take(os.read(fd, PACKET_BYTES))
                except BlockingIOError:
                    break
        for packet in line.due():
            try:
                os.write(fd, packet)
            except OSError:
                pass  # the device went down: the packet is lost, as on a link


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", required=True)
    parser.add_argument("--rtt-ms", type=float, required=True, help="round trip added (each way: half)")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="of the round trip (each way: ± half)")
    parser.add_argument("--loss", type=float, default=0.0, help="share of packets dropped each way, 0-1")
    args = parser.parse_args(argv)
    if args.rtt_ms < 0 or args.jitter_ms < 0 or not 0 <= args.loss < 1:
        parser.error("--rtt-ms and --jitter-ms must be 0 or more, --loss from 0 to below 1")
    fd = open_tun(args.device)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    print("ready", flush=True)
    run(fd, Line(args.rtt_ms / 2000, args.jitter_ms / 2000, args.loss), lambda: bool(stopping))
    return 0


if __name__ == "__main__":
    sys.exit(main())
