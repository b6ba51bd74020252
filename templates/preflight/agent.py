# netctl preflight agent: the node's side of preflight's pair probes, so that what the chosen
# network needs (a UDP or TCP port, IP-in-IP, the path MTU, one layer-2 segment) is tested with
# real packets before anything changes. Nothing else on a node can listen on a port, hence Python.
#
# It runs as: python3 -B -I -S -c AGENT serve TOKEN LIFETIME SPEC... (AGENT: this text, in a
# shell variable), exec'd by templates/preflight/serve.sh at the end of round 1's script, in the
# foreground of that SSH channel; it is never written to a file on the node.
# Standard library only (the modules python3-minimal has), Python 3.6 or later; no f-strings, so
# an older python3 reaches the version check below instead of failing on a syntax error.
# What this text must not hold: tera tag openings (a brace then a brace, percent or hash), since
# build.rs embeds every file under templates/ and tera parses them all; and no backquote or
# dollar sign, which shellcheck flags inside the single quotes that carry it.
#
#   serve TOKEN LIFETIME SPEC...   SPEC: udp:PORT, tcp:PORT or ipip. Binds every SPEC on
#       0.0.0.0, prints '@@listen SPEC ok|busy|error MSG' for each, '@@pid PID', then '@@ready', and answers
#       echoes carrying TOKEN until its stdin ends (netctl is done with it, or gone), LIFETIME
#       seconds pass, or SIGTERM or SIGHUP. A request on stdin (PROBEs one a line, then a line
#       'end') is answered on stdout by a forked child: one line per probe, then 'end'.
#       PROBE: echo:udp:PORT:ADDR, echo:tcp:PORT:ADDR, echo:ipip:ADDR, connect:HOST:PORT,
#       ping:ADDR:SIZE (SIZE 0: a small ping; else the whole IP packet, with don't-fragment),
#       path:ADDR. All at once, within about 2 s; '@@probe PROBE ok MS', '@@probe PROBE fail
#       REASON' or '@@path ADDR dev D via G|- src S|- lladdr M|-'.
#   Nothing is left on the node: no file, and no process once stdin ends.
#
# A request is 'TOKEN q N', its answer 'TOKEN r N' (N: digits); anything else is ignored. Over TCP
# both end with a newline; over IP-in-IP both follow a zero byte, so the kernel's ipip handler,
# if loaded, never takes the payload for an inner IPv4 packet.

# _socket is the socket module without its enum and selectors wrappers: the same calls (accept
# aside), a quarter less start-up on every node, twice per preflight.
import _socket as socket
# _signal likewise: signal's wrapper imports enum, which costs more than the whole probe round.
import _signal as signal
import errno
import os
import select
import struct
import sys
import time

# threading is imported where it is used, for the same reason; 'ip' is run without subprocess.

PREFIX = "netctl-pf-"
# A request bigger than this is not a probe round's (a few hundred specs): it is dropped.
MAX_REQUEST = 1 << 20
# How long a probe child lives at most (its probes take about 2 s, the routes up to 4 s more).
CHILD_MAX_S = 15.0
WAIT_S = 2.0
RESEND_S = 0.25
MAX_MSG = 128
MAX_CONNS = 64
IPPROTO_IPIP = 4
# From <linux/in.h>; the socket module does not name them all.
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DONT = 0
IP_PMTUDISC_DO = 2
IP_MTU = 14


def say(*words):
    sys.stdout.write("@@" + " ".join(words) + "\n")


def one_line(text):
    return " ".join(str(text).split()) or "?"


RUN_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def run_id_ok(run_id):
    return run_id != "" and set(run_id) <= RUN_ID_CHARS


def request(token, n):
    return ("%s q %d" % (token, n)).encode()


def parse_msg(token, data):
    """('q' or 'r', N) for a message of this run, else None."""
    if len(data) > MAX_MSG:
        return None
    try:
        words = data.decode("ascii").split(" ")
    except UnicodeDecodeError:
        return None
    if len(words) != 3 or words[0] != token or words[1] not in ("q", "r"):
        return None
    if not (0 < len(words[2]) <= 20 and words[2].isdigit()):
        return None
    return words[1], int(words[2])


def answer(token, data):
    msg = parse_msg(token, data)
    if msg is None or msg[0] != "q":
        return None
    return ("%s r %d" % (token, msg[1])).encode()


def ip_payload(packet):
    """(source address, payload) of an IPv4 packet as a raw socket reads it."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None, b""
    return socket.inet_ntoa(packet[12:16]), packet[(packet[0] & 15) * 4:]


def reason(err):
    """A short reason for a socket error."""
    known = {
        errno.ECONNREFUSED: "refused",
        errno.EHOSTUNREACH: "unreachable",
        errno.ENETUNREACH: "no route",
        errno.ETIMEDOUT: "timed out",
        errno.ECONNRESET: "reset",
        errno.EPERM: "not permitted",
        errno.EACCES: "not permitted",
    }
    if err is None:
        return "failed"
    if err in known:
        return known[err]
    return one_line(os.strerror(err)).lower()


# ---- listen -------------------------------------------------------------------------------


def bind(spec):
    kind, _, port = spec.partition(":")
    if kind == "ipip" and port == "":
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    if kind not in ("udp", "tcp") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("unknown listen spec")
    if kind == "udp":
        # No SO_REUSEADDR: with it two UDP sockets could share the port and a taken one look free.
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", int(port)))
        return s
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # TCP's SO_REUSEADDR only lets a port in TIME_WAIT be taken; a listening one stays busy.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(64)
    return s


def listen(token, lifetime, specs):
    socks, states = [], []
    for spec in specs:
        try:
            socks.append((spec, bind(spec)))
            states.append((spec, "ok"))
        except ValueError as e:
            states.append((spec, "error " + str(e)))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                states.append((spec, "busy"))
            else:
                states.append((spec, "error " + one_line(e.strerror or e)))
    for spec, st in states:
        say("listen", spec, st)
    # Its pid, for netctl to kill it by (kill.sh) should it not end when its stdin closes.
    say("pid", str(os.getpid()))
    say("ready")
    sys.stdout.flush()
    serve(token, lifetime, socks)


def serve(token, lifetime, socks):
    prober = Prober(token)
    # Ended by a signal (the channel's hangup included): a probe child goes too, so nothing of
    # the run is left.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: prober.end())
    os.set_blocking(0, False)
    deadline = time.monotonic() + lifetime
    poller = select.poll()
    kinds = {}
    conns = {}  # fd -> [socket, bytes so far, when it is dropped]
    for spec, s in socks:
        s.setblocking(False)
        kinds[s.fileno()] = (spec.partition(":")[0], s)
        poller.register(s.fileno(), select.POLLIN)
    poller.register(0, select.POLLIN)
    while True:
        now = time.monotonic()
        if now >= deadline or prober.done:
            break
        for fd in [fd for fd, c in conns.items() if c[2] <= now]:
            poller.unregister(fd)
            conns.pop(fd)[0].close()
        prober.reap(now)
        for fd, _ in poller.poll(500):
            if fd in conns:
                serve_conn(token, poller, conns, fd)
                continue
            if fd == 0:
                prober.read()
                continue
            kind, s = kinds[fd]
            try:
                if kind == "udp":
                    data, peer = s.recvfrom(2048)
                    ans = answer(token, data)
                    if ans:
                        s.sendto(ans, peer)
                elif kind == "tcp":
                    cfd, _ = s._accept()
                    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, cfd)
                    if len(conns) >= MAX_CONNS:
                        c.close()
                        continue
                    c.setblocking(False)
                    conns[c.fileno()] = [c, b"", time.monotonic() + WAIT_S]
                    poller.register(c.fileno(), select.POLLIN)
                else:
                    src, payload = ip_payload(s.recv(65535))
                    ans = answer(token, payload[1:]) if payload[:1] == b"\0" else None
                    if src and ans:
                        s.sendto(b"\0" + ans, (src, 0))
            except OSError:
                pass
    prober.kill()


class Prober(object):
    """The listener's side of its stdin: whole requests read from it, each run in a forked child
    (the interpreter and this text are loaded already, so a fork costs a fraction of a python
    start) while the listener goes on answering the other nodes' echoes. One child at a time; a
    request that comes meanwhile waits in the buffer. The end of stdin ends the listener."""

    def __init__(self, token):
        self.token = token
        self.buf, self.child, self.child_end, self.done = b"", None, 0.0, False

    def read(self):
        while True:
            try:
                data = os.read(0, 65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.done = True
                break
            self.buf += data
            if len(self.buf) > MAX_REQUEST:
                self.buf = b""
        self.start()

    def start(self):
        if self.child is not None or self.done:
            return
        lines = self.buf.split(b"\n")
        if b"end" not in lines[:-1]:
            return
        i = lines.index(b"end")
        self.buf = b"\n".join(lines[i + 1:])
        specs = [line.decode("ascii", "replace") for line in lines[:i] if line.strip()]
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            answer_request(self.token, specs)
        self.child, self.child_end = pid, time.monotonic() + CHILD_MAX_S

    def reap(self, now):
        if self.child is None:
            return
        if now >= self.child_end:
            self.kill()
        elif os.waitpid(self.child, os.WNOHANG)[0] != 0:
            self.child = None
        self.start()

    def kill(self):
        # Our own child, not yet waited for: its pid cannot have been reused.
        if self.child is not None:
            os.kill(self.child, 9)
            os.waitpid(self.child, 0)
            self.child = None

    def end(self):
        self.kill()
        os._exit(0)


def answer_request(token, specs):
    """In the forked child: the probes, their lines on stdout, then 'end'; never returns."""
    status = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        # Nothing of the listener's: its sockets stay with it (a TCP connection it closes must
        # close, not live on here), and stdin is its alone.
        os.closerange(3, 1 << 16)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        try:
            probe(token, specs)
        except Exception as e:
            say("error", "the agent failed: %s: %s" % (type(e).__name__, one_line(e)))
        sys.stdout.write("end\n")
        sys.stdout.flush()
        status = 0
    finally:
        os._exit(status)


def serve_conn(token, poller, conns, fd):
    c = conns[fd]
    try:
        data = c[0].recv(256)
    except OSError:
        data = b""
    c[1] += data
    line = c[1].split(b"\n")[0]
    if data and b"\n" not in c[1] and len(c[1]) <= MAX_MSG:
        return
    ans = answer(token, line) if data else None
    if ans:
        try:
            c[0].send(ans + b"\n")
        except OSError:
            pass
    poller.unregister(fd)
    conns.pop(fd)[0].close()


# ---- probe --------------------------------------------------------------------------------


def nonce():
    return int.from_bytes(os.urandom(8), "big") >> 1


def ms(since, now):
    return "%d" % round((now - since) * 1000)


class Probe(object):
    """One probe: its socket if it has one, the poll events it waits for, and its result
    ('ok MS' or 'fail REASON') once known. 'begin' starts it; 'tick' resends and times out."""

    events = select.POLLIN

    def __init__(self, spec):
        self.spec = spec
        self.result = None
        self.sock = None
        self.started = None

    def ok(self, now):
        self.result = "ok " + ms(self.started, now)

    def fail(self, why):
        self.result = "fail " + why

    def begin(self, now):
        self.started = now

    def tick(self, now):
        if now >= self.started + WAIT_S:
            self.fail("no answer in %d s" % WAIT_S)

    def wake(self, now):
        """When 'tick' has something to do next."""
        return self.started + WAIT_S

    def on_event(self, ev, now):
        pass

    def close(self):
        if self.sock is not None:
            self.sock.close()


class Resending(Probe):
    """A probe over a lossy channel: the request again every RESEND_S until answered."""

    def begin(self, now):
        self.started = now
        self.next_send = now
        self.tick(now)

    def tick(self, now):
        Probe.tick(self, now)
        if self.result is None and now >= self.next_send:
            self.next_send = now + RESEND_S
            try:
                self.send()
            except OSError as e:
                self.sent_failed(e)

    def sent_failed(self, e):
        self.fail(reason(e.errno))

    def wake(self, now):
        return min(self.next_send, self.started + WAIT_S)


class UdpEcho(Resending):
    def __init__(self, spec, token, addr, port):
        Resending.__init__(self, spec)
        self.token, self.n = token, nonce()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.dest = (addr, port)

    def begin(self, now):
        try:
            # Connected: an ICMP port unreachable then comes back as ECONNREFUSED.
            self.sock.connect(self.dest)
        except OSError as e:
            self.started = now
            self.fail(reason(e.errno))
            return
        Resending.begin(self, now)

    def send(self):
        self.sock.send(request(self.token, self.n))

    def on_event(self, ev, now):
        while self.result is None:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            except OSError as e:
                self.fail(reason(e.errno))
                return
            if parse_msg(self.token, data) == ("r", self.n):
                self.ok(now)


class IpipEcho(Resending):
    """Requests in protocol-4 packets from the shared raw socket; 'Ipip' hands answers back."""

    def __init__(self, spec, token, addr, raw):
        Resending.__init__(self, spec)
        self.token, self.n, self.addr, self.raw = token, nonce(), addr, raw

    def send(self):
        self.raw.sendto(b"\0" + request(self.token, self.n), (self.addr, 0))


class Ipip(object):
    """The one raw protocol-4 socket of a probe round, reading answers for every IpipEcho."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
        self.sock.setblocking(False)
        self.probes = []
        self.result = None
        self.events = select.POLLIN

    def on_event(self, ev, now):
        while True:
            try:
                src, payload = ip_payload(self.sock.recv(65535))
            except OSError:
                return
            msg = parse_msg(self.probes[0].token, payload[1:]) if payload[:1] == b"\0" else None
            for p in self.probes:
                if p.result is None and msg == ("r", p.n) and src == p.addr:
                    p.ok(now)

    def close(self):
        self.sock.close()


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class Ping(Resending):
    """ICMP echo on a raw socket of its own: with don't-fragment when it has a size, so a hop
    with a smaller MTU drops it or says 'fragmentation needed', which names the path MTU. The
    socket is not connected: a connected raw socket never sees an error a router sends."""

    ICMP_ECHO, ICMP_REPLY, ICMP_UNREACH, ICMP_TIME = 8, 0, 3, 11
    UNREACH = {0: "no route", 1: "unreachable", 2: "protocol unreachable", 3: "port unreachable",
               9: "prohibited by a filter", 10: "prohibited by a filter", 13: "prohibited by a filter"}

    def __init__(self, spec, addr, size):
        Resending.__init__(self, spec)
        self.addr, self.size, self.ident, self.seq = addr, size, nonce() & 0xFFFF, 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.setblocking(False)
        mode = IP_PMTUDISC_DO if size else IP_PMTUDISC_DONT
        self.sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, mode)

    def send(self):
        self.seq = (self.seq + 1) & 0xFFFF
        body = b"\0" * (self.size - 28 if self.size else 56)
        head = struct.pack("!BBHHH", self.ICMP_ECHO, 0, 0, self.ident, self.seq)
        csum = checksum(head + body)
        packet = struct.pack("!BBHHH", self.ICMP_ECHO, 0, csum, self.ident, self.seq) + body
        self.sock.sendto(packet, (self.addr, 0))

    def sent_failed(self, e):
        if e.errno == errno.EMSGSIZE:
            self.fail("too big: path MTU %s" % path_mtu(self.addr))
        else:
            self.fail(reason(e.errno))

    def on_event(self, ev, now):
        while self.result is None:
            try:
                src, icmp = ip_payload(self.sock.recv(65535))
            except OSError:
                return
            if len(icmp) < 8:
                continue
            kind, code = icmp[0], icmp[1]
            if kind == self.ICMP_REPLY and src == self.addr and self.mine(icmp[4:8]):
                self.ok(now)
            elif kind in (self.ICMP_UNREACH, self.ICMP_TIME):
                # The error quotes our packet: its IP header, then the echo's first 8 bytes.
                origin, quoted = ip_payload(icmp[8:])
                if origin is None or len(quoted) < 8 or socket.inet_ntoa(icmp[8 + 16:8 + 20]) != self.addr:
                    continue
                if quoted[0] != self.ICMP_ECHO or not self.mine(quoted[4:8]):
                    continue
                if kind == self.ICMP_TIME:
                    self.fail("time exceeded from %s" % src)
                elif code == 4:
                    self.fail("too big: path MTU %d from %s" % (struct.unpack("!H", icmp[6:8])[0], src))
                else:
                    self.fail("%s from %s" % (self.UNREACH.get(code, "unreachable (code %d)" % code), src))

    def mine(self, ident_seq):
        return struct.unpack("!H", ident_seq[:2])[0] == self.ident


def path_mtu(addr):
    """The kernel's path MTU towards ADDR (IP_MTU needs a connected socket; UDP's costs nothing)."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.connect((addr, 9))
        return "%d" % u.getsockopt(socket.IPPROTO_IP, IP_MTU)
    except OSError:
        return "unknown"
    finally:
        u.close()


class TcpEcho(Probe):
    """Connect, send the request, read the answer."""

    def __init__(self, spec, token, host, port, echo):
        Probe.__init__(self, spec)
        self.token, self.n, self.host, self.port, self.echo = token, nonce(), host, port, echo
        self.connected, self.buf, self.addr, self.resolver = False, b"", None, None
        self.events = select.POLLOUT

    def begin(self, now):
        self.started = now
        if not addr_ok(self.host):
            self.resolver = Resolver(self.host)
            return
        self.addr = self.host
        self.connect(now)

    def connect(self, now):
        # The deadline stays the probe's start; the time reported is the connect's own.
        self.connect_at = now
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        err = self.sock.connect_ex((self.addr, self.port))
        if err not in (0, errno.EINPROGRESS):
            self.fail(reason(err))

    def tick(self, now):
        if self.resolver is not None and self.addr is None:
            if self.resolver.done:
                if self.resolver.addr is None:
                    self.fail("cannot resolve %s: %s" % (self.host, self.resolver.error))
                    return
                self.addr = self.resolver.addr
                self.connect(now)
                return
            if now >= self.started + WAIT_S:
                self.fail("cannot resolve %s in %d s" % (self.host, WAIT_S))
            return
        if now >= self.started + WAIT_S:
            self.fail("connected, no answer in %d s" % WAIT_S if self.connected else "no answer in %d s" % WAIT_S)

    def ok(self, now):
        self.result = "ok " + ms(self.connect_at, now)

    def wake(self, now):
        if self.sock is None:
            return now + 0.02
        return self.started + WAIT_S

    def on_event(self, ev, now):
        if not self.connected:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.fail(reason(err))
                return
            if not self.echo:
                self.ok(now)
                return
            self.connected = True
            self.events = select.POLLIN
            try:
                self.sock.send(request(self.token, self.n) + b"\n")
            except OSError as e:
                self.fail(reason(e.errno))
            return
        try:
            data = self.sock.recv(256)
        except BlockingIOError:
            return
        except OSError as e:
            self.fail(reason(e.errno))
            return
        if not data:
            self.fail("closed without an answer")
            return
        self.buf += data
        if b"\n" in self.buf:
            if parse_msg(self.token, self.buf.split(b"\n")[0]) == ("r", self.n):
                self.ok(now)
            else:
                self.fail("a wrong answer")
        elif len(self.buf) > MAX_MSG:
            self.fail("a wrong answer")


class Resolver(object):
    """getaddrinfo in a thread of its own: a slow resolver must not hold up the other probes."""

    def __init__(self, host):
        import threading

        self.host, self.done, self.addr, self.error = host, False, None, None
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        try:
            infos = socket.getaddrinfo(self.host, None, socket.AF_INET, socket.SOCK_STREAM)
            self.addr = infos[0][4][0]
        except (OSError, IndexError) as e:
            self.error = one_line(getattr(e, "strerror", None) or e).lower()
        self.done = True


def make(token, spec, ipip):
    """The probe SPEC names, or a finished one that says why it cannot run."""
    w = spec.split(":")
    try:
        if w[0] == "echo" and len(w) == 4 and w[1] in ("udp", "tcp") and port_ok(w[2]) and addr_ok(w[3]):
            if w[1] == "udp":
                return UdpEcho(spec, token, w[3], int(w[2]))
            return TcpEcho(spec, token, w[3], int(w[2]), True)
        if w[0] == "echo" and len(w) == 3 and w[1] == "ipip" and addr_ok(w[2]):
            if ipip.get("sock") is None:
                ipip["sock"] = Ipip()
            p = IpipEcho(spec, token, w[2], ipip["sock"].sock)
            ipip["sock"].probes.append(p)
            return p
        if w[0] == "connect" and len(w) == 3 and port_ok(w[2]):
            if w[1] == "" or not set(w[1]) <= HOST_CHARS:
                return failed(spec, "an invalid host name")
            return TcpEcho(spec, token, w[1], int(w[2]), False)
        if w[0] == "ping" and len(w) == 3 and addr_ok(w[1]) and w[2].isdigit():
            size = int(w[2])
            if size != 0 and not 28 <= size <= 65535:
                return failed(spec, "an invalid size")
            return Ping(spec, w[1], size)
    except OSError as e:
        return failed(spec, "cannot open a socket: " + reason(e.errno))
    return failed(spec, "an unknown probe")


def failed(spec, why):
    p = Probe(spec)
    p.fail(why)
    return p


def port_ok(text):
    return text.isdigit() and 0 < int(text) < 65536


def addr_ok(text):
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) < 256 for p in parts)


def probe(token, specs):
    ipip = {}
    paths = [s[len("path:"):] for s in specs if s.startswith("path:")]
    probes = [make(token, s, ipip) for s in specs if not s.startswith("path:")]
    now = time.monotonic()
    for p in probes:
        if p.result is None:
            p.begin(now)
    shared = [ipip["sock"]] if "sock" in ipip else []
    while True:
        now = time.monotonic()
        for p in probes:
            if p.result is None:
                p.tick(now)
        pending = [p for p in probes if p.result is None]
        if not pending:
            break
        poller, owner = select.poll(), {}
        for p in pending + shared:
            if p.sock is not None:
                poller.register(p.sock.fileno(), p.events)
                owner[p.sock.fileno()] = p
        wait = max(0.0, min(p.wake(now) for p in pending) - now)
        for fd, ev in poller.poll(int(wait * 1000) + 1):
            owner[fd].on_event(ev, time.monotonic())
    for p in probes + shared:
        p.close()
    routes = path_facts(paths)
    for s in specs:
        if s.startswith("path:"):
            say(*routes[s[len("path:"):]])
        else:
            say("probe", s, next(p.result for p in probes if p.spec == s))


def path_facts(addrs):
    """Per address: the '@@path' words, or the '@@probe path:ADDR fail' words. After the other
    probes, so the neighbour entry of an address they reached is fresh."""
    out = {}
    valid = [a for a in addrs if addr_ok(a)]
    for a in addrs:
        out[a] = ("probe", "path:" + a, "fail", "an invalid address" if a not in valid else "no route")
    if not valid:
        return out
    try:
        # One 'ip' for every route and one for the neighbours, however many addresses.
        routes = ip(["-o", "-4", "-force", "-batch", "-"], "".join("route get %s\n" % a for a in valid))
        neigh = ip(["-4", "neigh", "show"], "")
    except OSError as e:
        why = "ip not found on the node" if e.errno == errno.ENOENT else "ip failed: " + one_line(e.strerror or e)
        for a in valid:
            out[a] = ("probe", "path:" + a, "fail", why)
        return out
    lladdr = {}
    for line in neigh.splitlines():
        w = line.split()
        if len(w) >= 5 and w[1] == "dev" and w[3] == "lladdr" and w[-1] not in ("FAILED", "INCOMPLETE"):
            lladdr[(w[0], w[2])] = w[4]
    for line in routes.splitlines():
        w = line.replace("\\", " ").split()
        if w and not w[0][:1].isdigit():
            w = w[1:]  # a route type: local, broadcast, ...
        if not w or w[0] not in out:
            continue
        fact = dict(zip(w, w[1:]))
        dev = fact.get("dev")
        if dev:
            mac = lladdr.get((w[0], dev), "-")
            out[w[0]] = ("path", w[0], "dev", dev, "via", fact.get("via", "-"), "src", fact.get("src", "-"), "lladdr", mac)
    return out


def ip(args, stdin):
    """What 'ip ARGS' prints with STDIN as its input, within WAIT_S; OSError (ENOENT: no ip)
    otherwise. By hand: the subprocess module's import costs more than the rest of a round."""
    data, out = stdin.encode(), []
    (in_r, in_w), (out_r, out_w) = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.execvp("ip", ["ip"] + args)
        except OSError as e:
            os._exit(127 if e.errno == errno.ENOENT else 126)
        finally:
            os._exit(126)
    os.close(in_r)
    os.close(out_w)
    deadline, ended = time.monotonic() + WAIT_S, False
    try:
        os.set_blocking(in_w, False)
        poller = select.poll()
        poller.register(out_r, select.POLLIN)
        poller.register(in_w, select.POLLOUT)
        open_fds = 2
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OSError(errno.ETIMEDOUT, "no answer in %d s" % WAIT_S)
            for fd, ev in poller.poll(int(left * 1000) + 1):
                if fd == in_w:
                    try:
                        data = data[os.write(in_w, data):] if data else data
                    except BrokenPipeError:
                        data = b""
                    if not data:
                        poller.unregister(in_w)
                        os.close(in_w)
                        in_w, open_fds = None, open_fds - 1
                else:
                    chunk = os.read(out_r, 65536)
                    if chunk:
                        out.append(chunk)
                    else:
                        poller.unregister(out_r)
                        open_fds -= 1
        ended = True
    finally:
        if in_w is not None:
            os.close(in_w)
        os.close(out_r)
        status = waited(pid, ended)
    if status == 127:
        raise OSError(errno.ENOENT, "ip not found")
    return b"".join(out).decode("utf-8", "replace")


def waited(pid, ended):
    """PID's exit status; killed first unless it ENDED (closed its output: it is exiting)."""
    try:
        if not ended:
            os.kill(pid, 9)
        status = os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0
    return (status >> 8) & 0xFF if status & 0x7F == 0 else -1


def main(argv):
    if sys.version_info < (3, 6):
        say("error", "python3 is %d.%d: preflight needs 3.6 or later" % sys.version_info[:2])
        return
    # An ignored SIGCHLD (bash passes its own on through exec) would reap the children this
    # process waits for ('ip', the probe rounds') behind its back.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    mode = argv[1] if len(argv) > 1 else ""
    token = argv[2] if len(argv) > 2 else ""
    if mode != "serve" or not token.startswith(PREFIX) or not run_id_ok(token[len(PREFIX):]):
        say("error", "the agent was called wrongly")
        return
    if len(argv) > 3 and argv[3].isdigit():
        listen(token, int(argv[3]), argv[4:])
    else:
        say("error", "the agent was called wrongly")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except Exception as e:
        say("error", "the agent failed: %s: %s" % (type(e).__name__, one_line(e)))
    sys.stdout.flush()
