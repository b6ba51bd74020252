# Long-lived TCP connections between lab pods (tests/labkit/conn.rs runs this inside a pod's
# network namespace with `python3 -c`). The nodes have python3-minimal only: socket, select, time.
#
#   serve PORT           echo every byte back, on every connection, until stdin closes
#   talk HOST PORT N     open N connections, send a numbered line on each every 20 ms and expect it
#                        back in order; when stdin closes, wait for what is still in flight, then
#                        print one line: connections=N broken=B messages=M stall_ms=S reasons=...
#
# A connection is broken when it is reset or closed, when an echo comes back wrong, or when a line
# sent before the stop never comes back. A stall (the longest round trip of any line) is not a break:
# TCP retransmits through a short gap, and the figure says how long the gap was.
# Both print "ready" once they can serve or talk, so the caller starts the switch only then.
import select
import socket
import sys
import time

TICK = 0.02
DRAIN = 3.0


def serve(port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    print("ready", flush=True)
    conns = []
    while True:
        r, _, _ = select.select([srv, sys.stdin] + conns, [], [])
        for s in r:
            if s is sys.stdin:
                if not sys.stdin.buffer.read1(4096):
                    return
            elif s is srv:
                c, _ = srv.accept()
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns.append(c)
            else:
                try:
                    data = s.recv(65536)
                    if data:
                        s.sendall(data)
                        continue
                except OSError:
                    pass
                conns.remove(s)
                s.close()


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.sent = 0
        self.echoed = 0
        self.buf = b""
        self.broken = None
        self.sent_at = []
        self.stall = 0.0

    def send(self, now):
        try:
            self.sock.sendall(b"%d\n" % self.sent)
        except BlockingIOError:
            # The socket's buffer is full: the path is down; the stall shows it.
            return
        except OSError as e:
            self.broken = "send: %s" % e.strerror
            return
        self.sent += 1
        self.sent_at.append(now)

    def receive(self, now):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self.broken = "recv: %s" % e.strerror
            return
        if not data:
            self.broken = "closed by peer"
            return
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            if line != b"%d" % self.echoed:
                self.broken = "echo %r, expected %d" % (line, self.echoed)
                return
            self.stall = max(self.stall, now - self.sent_at[self.echoed])
            self.echoed += 1

    def note_stall(self, now):
        if self.echoed < self.sent:
            self.stall = max(self.stall, now - self.sent_at[self.echoed])


def talk(host, port, n):
    conns = [Conn(host, port) for _ in range(n)]
    print("ready", flush=True)
    stopping = None
    next_tick = time.monotonic()
    while True:
        now = time.monotonic()
        live = [c for c in conns if c.broken is None]
        if stopping is None and now >= next_tick:
            for c in live:
                c.send(now)
            next_tick += TICK
            if next_tick < now:
                next_tick = now + TICK
        if stopping is not None:
            pending = [c for c in live if c.echoed < c.sent]
            if not pending or now - stopping > DRAIN:
                break
        watch = [c.sock for c in live] + ([sys.stdin] if stopping is None else [])
        timeout = max(0.0, next_tick - now) if stopping is None else 0.05
        r, _, _ = select.select(watch, [], [], timeout)
        now = time.monotonic()
        for s in r:
            if s is sys.stdin:
                if not sys.stdin.buffer.read1(4096):
                    stopping = now
                continue
            for c in live:
                if c.sock is s:
                    c.receive(now)
    now = time.monotonic()
    reasons = []
    for c in conns:
        c.note_stall(now)
        if c.broken is None and c.echoed < c.sent:
            c.broken = "%d lines never echoed" % (c.sent - c.echoed)
        if c.broken is not None:
            reasons.append(c.broken)
    print(
        "connections=%d broken=%d messages=%d stall_ms=%d reasons=%s"
        % (
            len(conns),
            len(reasons),
            sum(c.echoed for c in conns),
            int(max(c.stall for c in conns) * 1000),
            ";".join(reasons).replace(" ", "_") or "-",
        ),
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        talk(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
