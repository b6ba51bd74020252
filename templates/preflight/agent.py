# netctl preflight agent: the node's side of preflight's pair probes, so that what the chosen
# network needs (a UDP or TCP port, IP-in-IP, the path MTU, one layer-2 segment) is tested with
# real packets before anything changes. Nothing else on a node can listen on a port, hence Python.
#
# It runs as: python3 -B -I -S -c AGENT MODE TOKEN ... (AGENT: this text, in a shell variable) from
# templates/preflight/listen.sh and probe.sh, and is never written to a file on the node.
# Standard library only (the modules python3-minimal has), Python 3.6 or later; no f-strings, so
# an older python3 reaches the version check below instead of failing on a syntax error.
# What this text must not hold: tera tag openings (a brace then a brace, percent or hash), since
# build.rs embeds every file under templates/ and tera parses them all; and no backquote or
# dollar sign, which shellcheck flags inside the single quotes that carry it.
#
#   listen TOKEN LIFETIME SPEC...   SPEC: udp:PORT, tcp:PORT or ipip. Binds every SPEC on 0.0.0.0,
#       then detaches and prints '@@listen SPEC ok|busy|error MSG'; the listener answers requests
#       carrying TOKEN until LIFETIME seconds pass, its directory is removed, or SIGTERM. It also
#       runs this node's probes, so probe.sh starts no python of its own where a listener runs:
#       a request written into the FIFO 'ctl' in its directory (the PROBEs one a line, then a
#       line 'end') is answered in the FIFO 'out' by a forked child, with what 'probe' prints
#       and then a line 'end'.
#   probe TOKEN PROBE...            PROBE: echo:udp:PORT:ADDR, echo:tcp:PORT:ADDR, echo:ipip:ADDR,
#       connect:HOST:PORT, ping:ADDR:SIZE (SIZE 0: a small ping; else the whole IP packet, with
#       don't-fragment), path:ADDR. All at once, within about 2 s; prints '@@probe PROBE ok MS',
#       '@@probe PROBE fail REASON' or '@@path ADDR dev D via G|- src S|- lladdr M|-'.
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
import stat
import struct
import sys
import time

# threading is imported where it is used, for the same reason; 'ip' is run without subprocess.

PREFIX = "netctl-pf-"
# Where each run's listener keeps its pid (root only); stop.sh removes it, which ends the listener.
PARENT = "/run/netctl"
RUNS = "/run/netctl/preflight"
# Marks a run directory whose listen created PARENT: its stop removes PARENT again if empty.
MADE_PARENT = "made-parent"
# The FIFOs in a run directory through which the listener runs this node's probes.
CTL, OUT = "ctl", "out"
# A request bigger than this is not a probe round's (a few hundred specs): it is dropped.
MAX_REQUEST = 1 << 20
# How long a probe child waits for probe.sh to open 'out' (its bound is longer), and lives at most.
OUT_WAIT_S = 3.0
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


class Refused(Exception):
    """Something on the node this agent will not use; the message says what."""


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


def owned_dir(path, mode, exclusive):
    """Make PATH (MODE) or accept the one there when it is a real directory of root's that
    nobody else can write. True when this call made it."""
    try:
        os.mkdir(path, mode)
        os.chmod(path, mode)  # the umask is 077 for what follows; PARENT is 0755 as lock.sh makes it
        made = True
    except FileExistsError:
        if exclusive:
            raise Refused("%s exists already" % path)
        made = False
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise Refused("%s is not a directory" % path)
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise Refused("%s is not root's alone" % path)
    return made


def make_run_dir(run_dir):
    for attempt in (1, 2, 3):
        try:
            made_parent = owned_dir(PARENT, 0o755, False)
            owned_dir(RUNS, 0o700, False)
            owned_dir(run_dir, 0o700, True)
            break
        except FileNotFoundError:
            # Another run's stop removed an empty RUNS or PARENT between two of these steps.
            if attempt == 3:
                raise
    if made_parent:
        os.close(os.open(run_dir + "/" + MADE_PARENT, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


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
    os.umask(0o077)
    run_dir = RUNS + "/" + token[len(PREFIX):]
    try:
        make_run_dir(run_dir)
    except (OSError, Refused) as e:
        why = one_line(e.strerror if isinstance(e, OSError) else e)
        for spec in specs:
            say("listen", spec, "error", "cannot make %s: %s" % (run_dir, why))
        return
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
    ctl = make_fifos(run_dir) if socks else None
    started = bool(socks) and detach(run_dir, lambda: serve(token, run_dir, lifetime, socks, ctl))
    for _, s in socks:
        s.close()
    for fd in ctl or ():
        os.close(fd)
    if not started:
        remove_run_dir(run_dir)
        if socks:
            states = [(spec, "error the listener did not start" if st == "ok" else st) for spec, st in states]
    for spec, st in states:
        say("listen", spec, st)


def detach(run_dir, serve_fn):
    """Run SERVE_FN in a grandchild in a session of its own with stdio on /dev/null, so the SSH
    session ends at once; True when it runs and its pid is in RUN_DIR/pid."""
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        return os.waitpid(pid, 0)[1] == 0
    status = 1
    try:
        os.setsid()
        child = os.fork()
        if child == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            status = 0
            serve_fn()
        else:
            fd = os.open(run_dir + "/pid", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            os.write(fd, ("%d\n" % child).encode())
            os.close(fd)
            status = 0
    finally:
        os._exit(status)


def make_fifos(run_dir):
    """Make RUN_DIR/ctl and RUN_DIR/out (0600) and open ctl for reading and writing (the write
    end held so that ctl never reads as closed between requests): the two fds, or None when
    they cannot be made, and then probe.sh runs a python of its own."""
    ctl = run_dir + "/" + CTL
    fds = []
    try:
        for name in (CTL, OUT):
            # mkfifo fails on anything already there: only FIFOs this listener made are used.
            os.mkfifo(run_dir + "/" + name, 0o600)
        for flags in (os.O_RDONLY, os.O_WRONLY):
            fds.append(os.open(ctl, flags | os.O_NONBLOCK | os.O_NOFOLLOW))
            if not own_fifo(fds[-1]):
                raise OSError(errno.EPERM, "not the FIFO made")
        return tuple(fds)
    except OSError:
        for fd in fds:
            os.close(fd)
        return None


def own_fifo(fd):
    st = os.fstat(fd)
    return stat.S_ISFIFO(st.st_mode) and st.st_uid == 0


def remove_run_dir(run_dir):
    """Remove RUN_DIR and, when they are empty, the directory of runs and PARENT if this run
    made it (a listen on a fresh node leaves the node as it was)."""
    made_parent = os.path.lexists(run_dir + "/" + MADE_PARENT)
    for name in ("pid", MADE_PARENT, CTL, OUT):
        try:
            os.unlink(run_dir + "/" + name)
        except OSError:
            pass
    for d in (run_dir, RUNS, PARENT) if made_parent else (run_dir, RUNS):
        try:
            os.rmdir(d)
        except OSError:
            return


def serve(token, run_dir, lifetime, socks, ctl):
    prober = Prober(token, run_dir, ctl)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Stopped (stop.sh): a probe child goes too, so a stop leaves no process of the run.
    signal.signal(signal.SIGTERM, lambda signum, frame: prober.end())
    deadline = time.monotonic() + lifetime
    poller = select.poll()
    kinds = {}
    conns = {}  # fd -> [socket, bytes so far, when it is dropped]
    for spec, s in socks:
        s.setblocking(False)
        kinds[s.fileno()] = (spec.partition(":")[0], s)
        poller.register(s.fileno(), select.POLLIN)
    if ctl:
        poller.register(ctl[0], select.POLLIN)
    while True:
        now = time.monotonic()
        if now >= deadline or not os.path.isdir(run_dir):
            break
        for fd in [fd for fd, c in conns.items() if c[2] <= now]:
            poller.unregister(fd)
            conns.pop(fd)[0].close()
        prober.reap(now)
        for fd, _ in poller.poll(500):
            if fd in conns:
                serve_conn(token, poller, conns, fd)
                continue
            if ctl and fd == ctl[0]:
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
    # Gone by itself (lifetime): leave nothing behind. After a stop the directory is gone already.
    if os.path.isdir(run_dir):
        remove_run_dir(run_dir)


class Prober(object):
    """The listener's side of ctl: whole requests read from it, each run in a forked child (the
    interpreter and this text are loaded already, so a fork costs a fraction of a python start)
    while the listener goes on answering the other nodes' echoes. One child at a time; a request
    that comes meanwhile waits in the buffer."""

    def __init__(self, token, run_dir, ctl):
        self.token, self.out, self.ctl = token, run_dir + "/" + OUT, ctl
        self.buf, self.child, self.child_end = b"", None, 0.0

    def read(self):
        while True:
            try:
                data = os.read(self.ctl[0], 65536)
            except BlockingIOError:
                break
            if not data:
                break
            self.buf += data
            if len(self.buf) > MAX_REQUEST:
                self.buf = b""
        self.start()

    def start(self):
        if self.child is not None:
            return
        lines = self.buf.split(b"\n")
        if b"end" not in lines[:-1]:
            return
        i = lines.index(b"end")
        self.buf = b"\n".join(lines[i + 1:])
        specs = [line.decode("ascii", "replace") for line in lines[:i] if line]
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            answer_request(self.token, self.out, specs)
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


def answer_request(token, out, specs):
    """In the forked child: the probes, their lines into OUT, then 'end'; never returns."""
    status = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # Nothing of the listener's: its sockets and ctl stay with it (a TCP connection it
        # closes must close, not live on here).
        os.closerange(3, 1 << 16)
        fd = open_out(out, time.monotonic() + OUT_WAIT_S)
        if fd is not None:
            os.dup2(fd, 1)
            os.close(fd)
            try:
                probe(token, specs)
            except Exception as e:
                say("error", "the agent failed: %s: %s" % (type(e).__name__, one_line(e)))
            sys.stdout.write("end\n")
            sys.stdout.flush()
            status = 0
    finally:
        os._exit(status)


def open_out(path, until):
    """OUT for writing once probe.sh has it open for reading, else None at UNTIL: a reader that
    gave up never leaves the child waiting."""
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() >= until:
                return None
            time.sleep(0.005)
            continue
        if not own_fifo(fd):
            os.close(fd)
            return None
        os.set_blocking(fd, True)
        return fd


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
    # process waits for ('ip', detach's, the probe rounds') behind its back.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    mode = argv[1] if len(argv) > 1 else ""
    token = argv[2] if len(argv) > 2 else ""
    if mode not in ("listen", "probe") or not token.startswith(PREFIX) or not run_id_ok(token[len(PREFIX):]):
        say("error", "the agent was called wrongly")
        return
    if mode == "probe":
        probe(token, argv[3:])
    elif len(argv) > 3 and argv[3].isdigit():
        listen(token, int(argv[3]), argv[4:])
    else:
        say("error", "the agent was called wrongly")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except Exception as e:
        say("error", "the agent failed: %s: %s" % (type(e).__name__, one_line(e)))
    sys.stdout.flush()
