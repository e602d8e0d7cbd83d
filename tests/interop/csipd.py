#!/usr/bin/env python3
"""Interoperability tests of csipd, the registrar daemon, on loopback.

Each case starts its own csipd (database in the case's temporary directory,
UDP on a port the kernel picks, read back from csipd's "ready" line) and its
own peers (SIPp from the Debian package sip-tester, sipsak, or the small SIP
client below), bounds every wait, and stops only the processes it started,
by their PID (through their Popen objects).

    csipd.py --csipd PATH --data DIR CASE

Cases:
  sipp_register_digest          3000 users (5 by "user add", all by "user import" of
                                SIPp's injection file) registered by SIPp with digest;
                                a sample fetched back with credentials, the rest read
                                from the database after a clean stop
  sipp_register_wrong_password  SIPp sends wrong credentials from one address: 401/403,
                                never 200, then 503 with Retry-After; meanwhile a good
                                client on another address registers every time
  sipsak_options                sipsak OPTIONS over UDP and TCP -> 200
  sipsak_register               sipsak -U registers with a password, fetches the binding;
                                a wrong password is refused
  restart_sigkill               REGISTER load (auth off), csipd killed with SIGKILL in
                                the middle, restarted on the same database: every
                                binding acknowledged with 200 is there
  rfc4475_udp                   the 49 RFC 4475 messages over UDP, each with the answer
                                the RFC asks for (or none), then csipd still answers
  rfc4475_registrar             cparam01, cparam02, regescrt, unksm2, escnull, dblreq
                                end to end (auth off), regaut01 (auth on)
  challenge_with_group          a 401 given while a group commit is open leaves with it
  commit_failure                the database cannot grow: 500s that answer the REGISTERs,
                                nothing of them served, csipd goes on
  busy_peer                     a peer with much traffic gets a connected socket on csipd's
                                port; responses still from that port; others, a peer that
                                comes back, a second csipd on the port

Prints "1 passed, 0 failed" or the reason of the failure (exit status 1).
"""
import argparse
import ctypes
import fcntl
import hashlib
import os
import random
import re
import select
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from interop import Failure, Run, check, free_port, sipp_cmd, sipp_stats  # noqa: E402

# ---------------------------------------------------------------------------
# A network of our own


def isolate_network():
    """Moves this process (and so every process it starts) into a new network
    namespace whose only interface is loopback, when the kernel lets it: then a
    csipd that answers to an address taken from a message (a Via's 192.0.2.x)
    cannot send anything off this host. Returns True when isolated."""
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newuser, clone_newnet = 0x10000000, 0x40000000
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(clone_newnet) != 0:
        if libc.unshare(clone_newuser | clone_newnet) != 0:
            return False
        try:
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write("%d %d 1" % (uid, uid))
            with open("/proc/self/gid_map", "w") as f:
                f.write("%d %d 1" % (gid, gid))
        except OSError:
            return False
    # Bring lo up: SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP. In the new
    # namespace there is no going back: without loopback nothing would work.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, ifr))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1))
    except OSError as e:
        print("cannot bring up loopback in the new network namespace: %s" % e)
        sys.exit(1)
    finally:
        s.close()
    return True


# ---------------------------------------------------------------------------
# csipd processes


def csipd_cli(run, opts, args, stdin_text=None, seconds=120):
    """Runs "csipd OPTS ARGS" (user add/del/list/import) to completion."""
    cmd = [run.args.csipd] + opts + args
    try:
        r = subprocess.run(cmd, cwd=run.dir, capture_output=True, text=True, timeout=seconds,
                           input=stdin_text if stdin_text is not None else "")
    except subprocess.TimeoutExpired:
        raise Failure("csipd %s did not finish in %d s" % (" ".join(args[:2]), seconds))
    return r.returncode, r.stdout, r.stderr


READY_ADDR = re.compile(r"\b(udp|tcp|tls):(\[[^\]]*\]|[0-9.]+):(\d+)")


def start_csipd(run, name, opts, listen=("udp:127.0.0.1:0",), seconds=30, preexec_fn=None):
    """Starts csipd and waits for its "ready" line (stderr, kept in NAME.err)."""
    cmd = [run.args.csipd] + opts
    for spec in listen:
        cmd += ["-l", spec]
    p = run.spawn(cmd, name, preexec_fn=preexec_fn)
    deadline = time.time() + seconds
    while time.time() < deadline:
        with open(run.path(name + ".err"), errors="replace") as f:
            for line in f:
                if "ready" in line:
                    addrs = {}
                    for proto, host, port in READY_ADDR.findall(line):
                        addrs.setdefault(proto, (host.strip("[]"), int(port)))
                    check("udp" in addrs, "no UDP address in the ready line: %r" % line)
                    p.csip_addrs = addrs
                    p.csip_udp = addrs["udp"]
                    print("%s: %s" % (name, line.strip()))
                    return p
        check(p.poll() is None,
              "csipd exited (status %s) before ready:\n%s" % (p.returncode, run.log(name)[-3000:]))
        time.sleep(0.05)
    raise Failure("csipd printed no ready line in %d s" % seconds)


def stop_csipd(run, p):
    """SIGTERM, then a clean exit 0 (with ASan: and no leak or error report)."""
    check(p.poll() is None,
          "%s exited (status %s):\n%s" % (p.csip_name, p.returncode, run.log(p.csip_name)[-3000:]))
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(30)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not stop on SIGTERM in 30 s" % p.csip_name)
    check(rc == 0, "%s exit status %d:\n%s" % (p.csip_name, rc, run.log(p.csip_name)[-4000:]))


def expect_alive(run, p):
    check(p.poll() is None,
          "%s exited (status %s):\n%s" % (p.csip_name, p.returncode, run.log(p.csip_name)[-4000:]))


# ---------------------------------------------------------------------------
# SIP messages

COMPACT = {"m": "contact", "i": "call-id", "v": "via", "f": "from", "t": "to",
           "l": "content-length", "c": "content-type", "k": "supported", "s": "subject",
           "e": "content-encoding"}


class Msg:
    """A received message: start line, headers (lowercase long names, folded lines
    joined), status for a response."""

    def __init__(self, data):
        self.raw = data
        head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        head = re.sub(r"\r\n[ \t]+", " ", head)
        lines = head.split("\r\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                name = name.strip().lower()
                self.headers.append((COMPACT.get(name, name), value.strip()))
        parts = self.start.split(" ", 2)
        self.status = None
        if len(parts) >= 2 and parts[0] == "SIP/2.0" and parts[1].isdigit():
            self.status = int(parts[1])

    def get(self, name):
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def all(self, name):
        """Every value of a header, comma-separated lists split."""
        out = []
        for n, v in self.headers:
            if n == name:
                out += split_commas(v)
        return out

    def branch(self):
        via = self.get("via")
        if via is None:
            return None
        m = re.search(r";\s*branch\s*=\s*([^;,\s]+)", split_commas(via)[0], re.I)
        return m.group(1) if m else None


def split_commas(value):
    """Splits a header value at commas outside quotes and <>."""
    out, cur, quoted, angle, i = [], "", False, False, 0
    while i < len(value):
        ch = value[i]
        if quoted and ch == "\\" and i + 1 < len(value):
            cur += value[i:i + 2]
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            angle = True
        elif not quoted and ch == ">":
            angle = False
        elif ch == "," and not quoted and not angle:
            out.append(cur.strip())
            cur = ""
            i += 1
            continue
        cur += ch
        i += 1
    if cur.strip():
        out.append(cur.strip())
    return out


def contact_parts(value):
    """(uri, [header params as "name" or "name=value"]) of one Contact value."""
    value = value.strip()
    if "<" in value:
        uri = value[value.index("<") + 1:value.index(">")]
        rest = value[value.index(">") + 1:]
    else:
        uri, _, rest = value.partition(";")
        rest = ";" + rest if rest else ""
    params = [p.strip() for p in rest.split(";") if p.strip()]
    return uri, params


def contacts_of(msg):
    """{contact uri: [params]} of a response."""
    return dict(contact_parts(v) for v in msg.all("contact"))


def param_value(params, name):
    for p in params:
        n, _, v = p.partition("=")
        if n.strip().lower() == name:
            return v.strip()
    return None


def new_branch():
    return "z9hG4bK" + "%016x" % random.getrandbits(64)


def build_request(method, ruri, via, from_uri, to_uri, call_id, cseq, headers=(), branch=None,
                  from_tag=None):
    branch = branch or new_branch()
    lines = ["%s %s SIP/2.0" % (method, ruri),
             "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (via[0], via[1], branch),
             "Max-Forwards: 70",
             "From: <%s>;tag=%s" % (from_uri, from_tag or "%x" % random.getrandbits(32)),
             "To: <%s>" % to_uri,
             "Call-ID: %s" % call_id,
             "CSeq: %d %s" % (cseq, method)]
    lines += list(headers)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), branch


# ---------------------------------------------------------------------------
# Digest (RFC 7616 with RFC 8760's algorithms)

DIGEST_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
AUTH_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)')


def parse_challenge(value):
    """{"scheme": "Digest", "realm": …, "nonce": …, …} of a WWW-Authenticate value."""
    scheme, _, rest = value.strip().partition(" ")
    ch = {"scheme": scheme}
    for name, v in AUTH_PARAM.findall(rest):
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        ch[name.lower()] = v
    return ch


def challenges_of(msg):
    return [parse_challenge(v) for n, v in msg.headers if n == "www-authenticate"]


def pick_challenge(msg, alg=None):
    """The first Digest challenge whose algorithm we compute (or the one for alg)."""
    for ch in challenges_of(msg):
        a = ch.get("algorithm", "MD5").upper()
        if ch["scheme"].lower() == "digest" and a in DIGEST_HASHES and (alg is None or a == alg):
            return ch
    raise Failure("no usable Digest challenge (%s) in: %s" % (alg or "any", msg.start))


def digest_authorization(ch, user, password, method, uri, nc=1):
    alg = ch.get("algorithm", "MD5").upper()

    def h(s):
        return hashlib.new(DIGEST_HASHES[alg], s.encode()).hexdigest()

    ha1 = h("%s:%s:%s" % (user, ch["realm"], password))
    ha2 = h("%s:%s" % (method, uri))
    parts = ['username="%s"' % user, 'realm="%s"' % ch["realm"], 'nonce="%s"' % ch["nonce"],
             'uri="%s"' % uri, "algorithm=%s" % alg]
    qops = [q.strip() for q in ch.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce = "%016x" % random.getrandbits(64)
        response = h("%s:%s:%08x:%s:auth:%s" % (ha1, ch["nonce"], nc, cnonce, ha2))
        parts += ["qop=auth", "nc=%08x" % nc, 'cnonce="%s"' % cnonce]
    else:
        response = h("%s:%s:%s" % (ha1, ch["nonce"], ha2))
    parts.append('response="%s"' % response)
    if "opaque" in ch:
        parts.append('opaque="%s"' % ch["opaque"])
    return "Digest " + ", ".join(parts)


# ---------------------------------------------------------------------------
# A small SIP client over UDP


class Peer:
    """A UDP socket on a loopback address, sending to csipd."""

    def __init__(self, server, ip="127.0.0.1", port=0):
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind((ip, port))
        self.addr = self.sock.getsockname()

    def close(self):
        self.sock.close()

    def transact(self, data, branch, seconds=10):
        """Sends a request, retransmits it (T1 = 0.5 s doubling to T2 = 4 s) until a
        final response with its branch comes; returns it. Other datagrams are ignored."""
        self.sock.sendto(data, self.server)
        now = time.time()
        deadline, interval = now + seconds, 0.5
        resend = now + interval
        while True:
            now = time.time()
            if now >= deadline:
                raise Failure("no final response in %d s to: %s" %
                              (seconds, data.split(b"\r\n", 1)[0].decode("latin-1")))
            r, _, _ = select.select([self.sock], [], [], max(0.0, min(resend, deadline) - now))
            if r:
                msg = Msg(self.sock.recv(65535))
                if msg.status and msg.status >= 200 and msg.branch() == branch:
                    return msg
                continue
            if time.time() >= resend:
                self.sock.sendto(data, self.server)
                interval = min(interval * 2, 4.0)
                resend = time.time() + interval


class Ua:
    """A user registering through a Peer: REGISTER, answering a 401 with digest."""

    def __init__(self, peer, user, password=None, domain="localhost", ruri=None):
        self.peer, self.user, self.password, self.domain = peer, user, password, domain
        self.aor = "sip:%s@%s" % (user, domain)
        self.ruri = ruri or "sip:" + domain
        self.call_id = "%x@csipd-test" % random.getrandbits(64)
        self.cseq = 0
        self.tag = "%x" % random.getrandbits(32)

    def request(self, method, headers=(), ruri=None):
        self.cseq += 1
        return build_request(method, ruri or self.ruri, self.peer.addr, self.aor, self.aor,
                             self.call_id, self.cseq, headers, from_tag=self.tag)

    def register(self, contacts=(), expires=None, alg=None, extra=(), seconds=10):
        """Returns the final response (after one round of digest when challenged)."""
        hdrs = ["Contact: %s" % c for c in contacts]
        if expires is not None:
            hdrs.append("Expires: %d" % expires)
        hdrs += list(extra)
        data, br = self.request("REGISTER", hdrs)
        resp = self.peer.transact(data, br, seconds)
        if resp.status == 401 and self.password is not None:
            ch = pick_challenge(resp, alg)
            auth = digest_authorization(ch, self.user, self.password, "REGISTER", self.ruri)
            data, br = self.request("REGISTER", hdrs + ["Authorization: " + auth])
            resp = self.peer.transact(data, br, seconds)
        return resp

    def fetch(self, **kw):
        """The bindings: {contact uri: [params]} from a REGISTER without Contact."""
        resp = self.register(**kw)
        check(resp.status == 200, "fetch of %s: %s" % (self.aor, resp.start))
        return contacts_of(resp)


def pipeline(peer, jobs, window, seconds, tick=None):
    """Runs many transactions at once from one socket. jobs is an iterator of
    generators; each yields (request bytes, branch) and is sent the final response
    to each (None when it timed out after 32 s). Retransmits like Peer.transact.
    tick(outstanding) is called every loop; it returns True to stop. Returns the
    number of jobs still in flight when it stopped."""
    active = {}
    jobs = iter(jobs)
    exhausted = False
    sock, server = peer.sock, peer.server
    deadline = time.time() + seconds

    def advance(gen, resp):
        try:
            data, br = gen.send(resp)
        except StopIteration:
            return
        sock.sendto(data, server)
        now = time.time()
        active[br] = [gen, data, now + 0.5, 0.5, now + 32]

    while True:
        while not exhausted and len(active) < window:
            try:
                gen = next(jobs)
            except StopIteration:
                exhausted = True
                break
            advance(gen, None)
        if (exhausted and not active) or (tick and tick(len(active))):
            return len(active)
        if time.time() > deadline:
            raise Failure("load did not finish in %d s (%d in flight)" % (seconds, len(active)))
        r, _, _ = select.select([sock], [], [], 0.02)
        while r:
            try:
                data = sock.recv(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            msg = Msg(data)
            if msg.status and msg.status >= 200:
                entry = active.pop(msg.branch(), None)
                if entry:
                    advance(entry[0], msg)
        now = time.time()
        for br, entry in list(active.items()):
            if now >= entry[4]:
                del active[br]
                advance(entry[0], None)
            elif now >= entry[2]:
                sock.sendto(entry[1], server)
                entry[3] = min(entry[3] * 2, 4.0)
                entry[2] = now + entry[3]


def fetch_job(addr, user, domain, password, out, alg=None):
    """A pipeline job fetching one AOR's bindings from a socket at addr (with digest
    when challenged: the first challenge we can answer, or the one for alg)."""
    aor = "sip:%s@%s" % (user, domain)
    ruri = "sip:" + domain
    call_id = "%x@fetch" % random.getrandbits(64)
    tag = "%x" % random.getrandbits(32)
    resp = yield build_request("REGISTER", ruri, addr, aor, aor, call_id, 1, from_tag=tag)
    if resp is not None and resp.status == 401 and password is not None:
        auth = digest_authorization(pick_challenge(resp, alg), user, password, "REGISTER", ruri)
        resp = yield build_request("REGISTER", ruri, addr, aor, aor, call_id, 2,
                                   ["Authorization: " + auth], from_tag=tag)
    out[user] = resp


def fetch_all(peer, users, domain, passwords=None, window=32, seconds=300, algs=(None,)):
    """{user: final response} of a fetch per user; digest algorithms taken in turn."""
    out = {}
    jobs = (fetch_job(peer.addr, u, domain, passwords and passwords[u], out, algs[i % len(algs)])
            for i, u in enumerate(users))
    pipeline(peer, jobs, window, seconds)
    return out


def loopback_peer(server, port=0):
    """A Peer on a random 127.x.y.z address (not 127.0.0.1): another "host"."""
    for _ in range(50):
        ip = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 255),
                               random.randint(1, 254))
        try:
            return Peer(server, ip, port)
        except OSError:
            continue
    raise Failure("no free loopback address with port %d" % port)


# ---------------------------------------------------------------------------
# SIPp against csipd


def write_injection(run, name, users):
    """A SIPp injection file: user;password;[authentication …] per line."""
    path = run.path(name)
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for u, pw in users:
            f.write("%s;%s;[authentication username=%s password=%s]\n" % (u, pw, u, pw))
    return path


def sipp_args(run, name, scenario, target, inf, calls, rate, limit):
    """SIPp registering users of inf with csipd's domain; the digest uri is the
    Request-URI (SIPp's default is the remote address)."""
    return [target, "-sf", os.path.join(HERE, scenario), "-inf", inf, "-key", "domain",
            "localhost", "-auth_uri", "localhost", "-p", str(free_port()), "-m", str(calls),
            "-r", str(rate), "-l", str(limit), "-t", "u1", "-trace_msg", "-message_file",
            run.path(name + ".msg")]


def sipp_errors(run, name):
    try:
        with open(run.path(name + ".errors")) as f:
            return f.read()[-3000:]
    except OSError:
        return ""


def run_sipp(run, name, args, seconds):
    p = run.spawn(sipp_cmd(run, name, args, seconds), name)
    try:
        rc = p.wait(seconds + 30)
    except subprocess.TimeoutExpired:
        raise Failure("SIPp still running after %d s" % (seconds + 30))
    stats = sipp_stats(run, name)
    print("SIPp %s: %s, exit %d" % (name, stats, rc))
    return rc, stats, sipp_errors(run, name)


def text_of(value):
    """A column of the location table (BLOB, see docs/internals/registrar.md) as text."""
    return bytes(value).decode("utf-8", "replace") if isinstance(value, (bytes, memoryview)) \
        else value


def sipp_received(run, name):
    """The messages SIPp received (its -trace_msg log), as Msg objects."""
    try:
        with open(run.path(name + ".msg"), "rb") as f:
            text = f.read()
    except OSError:
        raise Failure("SIPp wrote no message log")
    out = []
    for block in re.split(rb"\n-{10,} [^\n]*\n", text):
        m = re.search(rb"message received \[\d+\] bytes :\n\n(.*)", block, re.S)
        if m:
            out.append(Msg(m.group(1).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")))
    return out


# ---------------------------------------------------------------------------
# Cases: SIPp with digest

# csipd offers SHA-256 then MD5 by default (RFC 8760 §2.4: in order of
# preference; a client takes the first it supports). SIPp 3.6.1 and sipsak
# 0.9.8.1 (Debian 12) read only the first challenge and compute MD5 only, so
# the cases that use them have MD5 offered first; SHA-256 is still offered.
OLD_CLIENT_ALGS = ["--auth-algorithms", "MD5,SHA-256"]


def case_sipp_register_digest(run, n=3000):
    db = run.path("db/csipd.db")
    opts = ["--db", db]
    users = [("user%04d" % i, "pw-%04d-%x" % (i, random.getrandbits(24))) for i in range(n)]
    inf = write_injection(run, "users.csv", users)
    # A handful with "user add" (password as argument or on stdin), then the whole
    # injection file with "user import" (the first five again, same passwords).
    for i, (u, pw) in enumerate(users[:5]):
        if i % 2:
            rc, out, err = csipd_cli(run, opts, ["user", "add", u], stdin_text=pw + "\n")
        else:
            rc, out, err = csipd_cli(run, opts, ["user", "add", u + "@localhost", pw])
        check(rc == 0, "csipd user add %s: exit %d\n%s%s" % (u, rc, out, err))
    rc, out, err = csipd_cli(run, opts, ["user", "import", inf])
    check(rc == 0, "csipd user import: exit %d\n%s%s" % (rc, out, err))
    rc, out, err = csipd_cli(run, opts, ["user", "list"])
    check(rc == 0, "csipd user list: exit %d\n%s" % (rc, err))
    listed = set(out.split())
    want = set("%s@localhost" % u for u, _ in users)
    check(listed == want, "user list: %d users, %d missing, %d unexpected (e.g. %s)" %
          (len(listed), len(want - listed), len(listed - want),
           sorted(want - listed)[:3] + sorted(listed - want)[:3]))
    print("%d users added (5 with user add, the file with user import)" % n)
    # Passwords are stored only as digests.
    conn = sqlite3.connect(db)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    for u, pw in users[:50]:
        check(pw not in dump, "the password of %s is in the database in clear" % u)

    srv = start_csipd(run, "csipd", opts + OLD_CLIENT_ALGS + ["--log-level", "warn"])
    target = "%s:%d" % srv.csip_udp
    args = sipp_args(run, "sipp", "csipd_register.xml", target, inf, n, 150, 100)
    rc, stats, errors = run_sipp(run, "sipp", args, 240)
    check(stats["SuccessfulCall(C)"] == n and stats["FailedCall(C)"] == 0,
          "SIPp: %s, want %d successful registrations\n%s" % (stats, n, errors))
    check(rc == 0, "SIPp exit status %d\n%s" % (rc, errors))
    expect_alive(run, srv)
    # A sample fetched with credentials (REGISTER without Contact): each its contact.
    sample = [users[0], users[1], users[n - 1]] + random.sample(users, 200)
    pw = dict(users)
    peer = Peer(srv.csip_udp)
    got = fetch_all(peer, [u for u, _ in sample], "localhost", pw, algs=("SHA-256", "MD5"))
    peer.close()
    for u, _ in sample:
        resp = got.get(u)
        check(resp is not None, "fetch of %s: no response" % u)
        check(resp.status == 200, "fetch of %s: %s" % (u, resp.start))
        cs = contacts_of(resp)
        check(len(cs) == 1, "%s has %d bindings: %s" % (u, len(cs), list(cs)))
        uri = next(iter(cs))
        check(re.fullmatch(r"sip:%s@127\.0\.0\.1:\d+" % u, uri), "%s: contact %s" % (u, uri))
        exp = param_value(cs[uri], "expires")
        check(exp and exp.isdigit() and 3000 < int(exp) <= 3600, "%s: expires %s" % (u, exp))
    print("%d bindings fetched back with digest (SHA-256 and MD5 in turn)" % len(sample))
    stop_csipd(run, srv)
    # Every binding, from the database (written through before each 200).
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        rows = conn.execute("SELECT aor, contact FROM location").fetchall()
    finally:
        conn.close()
    aors = {}
    for aor, contact in rows:
        aors.setdefault(text_of(aor), []).append(text_of(contact))
    missing = [u for u, _ in users if len(aors.get("sip:%s@localhost" % u, [])) != 1]
    check(not missing, "%d users without exactly one binding in the database (e.g. %s)" %
          (len(missing), missing[:5]))
    print("%d bindings in the database" % len(rows))


def case_sipp_register_wrong_password(run):
    db = run.path("db/csipd.db")
    opts = ["--db", db]
    victims = [("victim%02d" % i, "right-%02d" % i) for i in range(10)]
    for u, pw in victims + [("alice", "alice-secret")]:
        rc, out, err = csipd_cli(run, opts, ["user", "add", u, pw])
        check(rc == 0, "csipd user add %s: exit %d\n%s%s" % (u, rc, out, err))
    # Wrong passwords for existing users, and users that do not exist.
    bad = [(u, "wrong-" + pw) for u, pw in victims] + [("ghost%02d" % i, "x") for i in range(10)]
    inf = write_injection(run, "bad.csv", bad * 3)
    srv = start_csipd(run, "csipd", opts + OLD_CLIENT_ALGS)
    good = Ua(loopback_peer(srv.csip_udp), "alice", "alice-secret")
    contact = "<sip:alice@%s:%d>" % good.peer.addr
    resp = good.register([contact], 600)
    check(resp.status == 200, "alice before the flood: %s" % resp.start)
    # Alice's own credentials do not register another user's address: 403.
    other = Ua(good.peer, "alice", "alice-secret")
    other.aor = "sip:victim01@localhost"
    resp = other.register(["<sip:victim01@127.0.0.1:9>"], 600)
    check(resp.status == 403, "alice's credentials for victim01's address: %s, want 403" %
          resp.start)

    # SIPp floods from 127.0.0.1 while alice registers from another address.
    target = "%s:%d" % srv.csip_udp
    calls = len(bad) * 3
    args = sipp_args(run, "sipp", "csipd_register_bad.xml", target, inf, calls, 30, 10)
    sp = run.spawn(sipp_cmd(run, "sipp", args, 120), "sipp")
    good_ok = 0
    deadline = time.time() + 150
    while sp.poll() is None and time.time() < deadline:
        resp = good.register([contact], 600)
        check(resp.status == 200, "alice during the flood: %s" % resp.start)
        good_ok += 1
        time.sleep(0.2)
    check(sp.poll() is not None, "SIPp still running after 150 s")
    stats = sipp_stats(run, "sipp")
    print("SIPp sipp: %s, exit %d; alice registered %d times meanwhile" %
          (stats, sp.returncode, good_ok))
    errors = sipp_errors(run, "sipp")
    check(stats["FailedCall(C)"] == 0 and stats["SuccessfulCall(C)"] == calls,
          "SIPp counts %s, want %d refused registrations\n%s" % (stats, calls, errors))
    check(sp.returncode == 0, "SIPp exit status %d\n%s" % (sp.returncode, errors))
    check(good_ok >= 3, "alice registered only %d times during the flood" % good_ok)
    received = sipp_received(run, "sipp")
    codes = [m.status for m in received]
    count = {c: codes.count(c) for c in sorted(set(codes))}
    print("SIPp received: %s" % count)
    check(200 not in codes, "a 200 to wrong credentials")
    check(set(codes) <= {401, 403, 503}, "unexpected answers to wrong credentials: %s" % count)
    to_creds = [m.status for m in received if re.match(r"2\s+REGISTER", m.get("cseq") or "")]
    check(to_creds and to_creds[0] in (401, 403) and set(to_creds) <= {401, 403, 503},
          "answers to the wrong credentials: %s" % to_creds)
    # 503s come after some failures and say when to come back.
    check(503 in codes, "no 503 after %d failures from one address" %
          len([c for c in to_creds if c != 503]))
    for m in received:
        if m.status == 503:
            ra = re.match(r"\s*(\d+)", m.get("retry-after") or "")
            check(ra and int(ra.group(1)) > 0,
                  "503 without a positive Retry-After: %r" % m.get("retry-after"))
    # The flooding address is still slowed (another port on it too); alice is not.
    peer = Peer(srv.csip_udp, "127.0.0.1")
    resp = Ua(peer, "victim00", "wrong").register(["<sip:victim00@127.0.0.1:9>"], 600)
    peer.close()
    check(resp.status == 503 and resp.get("retry-after"),
          "a new port on the flooding address: %s, want 503 with Retry-After" % resp.start)
    resp = good.register([contact], 600)
    check(resp.status == 200, "alice after the flood: %s" % resp.start)
    cs = good.fetch()
    check(contact.strip("<>") in cs, "alice's binding missing: %s" % list(cs))
    good.peer.close()
    stop_csipd(run, srv)
    # No wrong credential registered anything: alice is the only AOR bound.
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        aors = set(text_of(a) for (a,) in conn.execute("SELECT aor FROM location"))
    finally:
        conn.close()
    check(aors == {"sip:alice@localhost"}, "bound AORs after the flood: %s" % sorted(aors))


# ---------------------------------------------------------------------------
# Cases: sipsak


def sipsak(run, args, seconds=60):
    exe = shutil.which("sipsak")
    check(exe, "sipsak not found: install the Debian package sipsak (make check does)")
    cmd = [exe] + args
    try:
        r = subprocess.run(cmd, cwd=run.dir, capture_output=True, text=True, timeout=seconds,
                           stdin=subprocess.DEVNULL, errors="replace")
    except subprocess.TimeoutExpired:
        raise Failure("sipsak did not finish in %d s" % seconds)
    out = r.stdout + r.stderr
    print("$ sipsak %s  -> exit %d" % (" ".join(args), r.returncode))
    return r.returncode, out


def case_sipsak_options(run):
    srv = start_csipd(run, "csipd", ["--db", run.path("db/csipd.db")],
                      listen=("udp:127.0.0.1:0", "tcp:127.0.0.1:0"))
    check("tcp" in srv.csip_addrs, "no TCP address in the ready line")
    for transport in ("udp", "tcp"):
        host, port = srv.csip_addrs[transport]
        rc, out = sipsak(run, ["-vv", "-s", "sip:%s:%d" % (host, port), "-H", "127.0.0.1", "-E",
                               transport])
        print(out[-1200:])
        check(rc == 0, "sipsak OPTIONS over %s: exit status %d, want 0 (a 200)" % (transport, rc))
        check(re.search(r"SIP/2\.0 200 ", out), "no 200 in sipsak's output")
    expect_alive(run, srv)
    stop_csipd(run, srv)


def case_sipsak_register(run):
    db = run.path("db/csipd.db")
    opts = ["--db", db]
    rc, out, err = csipd_cli(run, opts, ["user", "add", "alice", "s3cret-alice"])
    check(rc == 0, "csipd user add: exit %d\n%s%s" % (rc, out, err))
    srv = start_csipd(run, "csipd", opts + OLD_CLIENT_ALGS)
    proxy = "%s:%d" % srv.csip_udp
    contact = "sip:alice@127.0.0.1:%d" % free_port()
    base = ["-U", "-s", "sip:alice@localhost", "-p", proxy, "-u", "alice", "-H", "127.0.0.1",
            "-i"]
    rc, out = sipsak(run, base + ["-a", "s3cret-alice", "-C", contact, "-x", "600", "-vvv"])
    print(out[-2500:])
    check(rc == 0, "sipsak -U exit status %d, want 0" % rc)
    check(re.search(r"SIP/2\.0 401 ", out) and re.search(r"SIP/2\.0 200 ", out),
          "sipsak did not go through 401 then 200")
    # Its binding, fetched by sipsak (Contact: none) and by our client.
    rc, out = sipsak(run, base + ["-a", "s3cret-alice", "-C", "none", "-vvv"])
    check(rc == 0, "sipsak fetch exit status %d\n%s" % (rc, out[-2000:]))
    replies = out.split("received:")
    check(len(replies) > 1 and contact in replies[-1],
          "the fetch's 200 does not list %s:\n%s" % (contact, out[-2000:]))
    peer = Peer(srv.csip_udp)
    cs = Ua(peer, "alice", "s3cret-alice").fetch()
    check(list(cs) == [contact], "bindings %s, want [%s]" % (list(cs), contact))
    exp = param_value(cs[contact], "expires")
    check(exp and 500 < int(exp) <= 600, "expires=%s, want about 600" % exp)
    # A wrong password: refused, nothing changed.
    other = "sip:alice@127.0.0.1:%d" % free_port()
    rc, out = sipsak(run, base + ["-a", "not-the-password", "-C", other, "-x", "600", "-vv"])
    check(rc != 0, "sipsak with a wrong password exit status 0")
    check(re.search(r"SIP/2\.0 40[13] ", out.split("Authorization:", 1)[-1]),
          "no 401/403 to the wrong credentials:\n%s" % out[-2000:])
    check(not re.search(r"SIP/2\.0 200 ", out), "a 200 to a wrong password:\n%s" % out[-2000:])
    cs = Ua(peer, "alice", "s3cret-alice").fetch()
    check(list(cs) == [contact], "after a wrong password: bindings %s" % list(cs))
    # Unregister with sipsak (expires 0).
    rc, out = sipsak(run, base + ["-a", "s3cret-alice", "-C", contact, "-x", "0", "-vv"])
    check(rc == 0, "sipsak unregister exit status %d\n%s" % (rc, out[-2000:]))
    cs = Ua(peer, "alice", "s3cret-alice").fetch()
    check(not cs, "bindings left after expires 0: %s" % list(cs))
    peer.close()
    stop_csipd(run, srv)


# ---------------------------------------------------------------------------
# Case: a challenge leaves with the responses of an open group commit


def case_challenge_with_group(run, window_ms=600):
    """With no group commit open a 401 goes at once; while one is open (an
    authenticated REGISTER waits for its commit) a 401 waits for the group's
    end and leaves with its 200, and its challenge is good to answer."""
    db = run.path("db/csipd.db")
    opts = ["--db", db, "--group-commit", str(window_ms)]
    for user in ("alice", "bob"):
        rc, out, err = csipd_cli(run, opts, ["user", "add", user, "pw-" + user])
        check(rc == 0, "csipd user add %s: exit %d\n%s%s" % (user, rc, out, err))
    srv = start_csipd(run, "csipd", opts)
    window = window_ms / 1000.0

    def send(peer, ua, hdrs):
        data, br = ua.request("REGISTER", hdrs)
        peer.sock.sendto(data, peer.server)
        return br, time.time()

    def receive_all(waits, seconds=5.0):
        """[(final response, arrival time)] of each (peer, branch), read as they come
        (no retransmission: the time is the answer's)."""
        got, index = {}, {(p.sock, br): i for i, (p, br) in enumerate(waits)}
        socks = list({p.sock for p, _ in waits})
        deadline = time.time() + seconds
        while len(got) < len(waits) and time.time() < deadline:
            r, _, _ = select.select(socks, [], [], max(0.0, deadline - time.time()))
            now = time.time()
            for sock in r:
                msg = Msg(sock.recv(65535))
                i = index.get((sock, msg.branch()))
                if i is not None and msg.status and msg.status >= 200:
                    got[i] = (msg, now)
        check(len(got) == len(waits), "no final response in %.0f s" % seconds)
        return [got[i] for i in range(len(waits))]

    pa, pb = Peer(srv.csip_udp), Peer(srv.csip_udp)
    alice, bob = Ua(pa, "alice", "pw-alice"), Ua(pb, "bob", "pw-bob")
    ca = ["Contact: <sip:alice@127.0.0.1:%d>" % pa.addr[1], "Expires: 600"]
    cb = ["Contact: <sip:bob@127.0.0.1:%d>" % pb.addr[1], "Expires: 600"]

    # No group open: the challenge goes at once.
    br, t = send(pa, alice, ca)
    (r401a, ta), = receive_all([(pa, br)])
    check(r401a.status == 401, "alice: %s, want 401" % r401a.start)
    print("401 with no group open after %.0f ms" % ((ta - t) * 1000))
    check(ta - t < window / 2, "a 401 with no group open took %.0f ms (window %d ms)" %
          ((ta - t) * 1000, window_ms))

    # Alice's answer opens a group; Bob's REGISTER comes while it is open.
    auth = digest_authorization(pick_challenge(r401a), "alice", "pw-alice", "REGISTER",
                                alice.ruri)
    br_a, t_a = send(pa, alice, ca + ["Authorization: " + auth])
    time.sleep(0.05)
    br_b, t_b = send(pb, bob, cb)
    got = receive_all([(pa, br_a), (pb, br_b)])
    (r200a, t200a), (r401b, t401b) = got[0], got[1]
    check(r200a.status == 200, "alice: %s, want 200" % r200a.start)
    check(r401b.status == 401, "bob: %s, want 401" % r401b.start)
    print("alice's 200 after %.0f ms, bob's 401 after %.0f ms (%.0f ms after his REGISTER)" %
          ((t200a - t_a) * 1000, (t401b - t_a) * 1000, (t401b - t_b) * 1000))
    check(t200a - t_a >= window * 0.9, "alice's 200 came %.0f ms after her REGISTER, before "
          "the group's %d ms" % ((t200a - t_a) * 1000, window_ms))
    check(t401b - t_b >= window * 0.5, "bob's 401 came %.0f ms after his REGISTER: it did not "
          "wait for the open group" % ((t401b - t_b) * 1000))
    check(abs(t401b - t200a) < window / 2, "bob's 401 and alice's 200 came %.0f ms apart, not "
          "with one group's end" % (abs(t401b - t200a) * 1000))

    # The held challenge is good: Bob answers it and is registered.
    auth = digest_authorization(pick_challenge(r401b), "bob", "pw-bob", "REGISTER", bob.ruri)
    br, _ = send(pb, bob, cb + ["Authorization: " + auth])
    (r200b, _), = receive_all([(pb, br)])
    check(r200b.status == 200, "bob's answer to the held challenge: %s, want 200" % r200b.start)
    check(list(Ua(pb, "bob", "pw-bob").fetch()) == ["sip:bob@127.0.0.1:%d" % pb.addr[1]],
          "bob's binding missing")

    # At most 64 challenges wait for one group (csipd's CHALLENGES_HELD);
    # beyond them a challenge goes at once.
    br, _ = send(pa, alice, ca)
    (r401a, _), = receive_all([(pa, br)])
    auth = digest_authorization(pick_challenge(r401a), "alice", "pw-alice", "REGISTER",
                                alice.ruri)
    br_a, t_a = send(pa, alice, ca + ["Authorization: " + auth])
    time.sleep(0.05)
    n = 70
    waits = [(pa, br_a)] + [(pb, send(pb, bob, cb)[0]) for _ in range(n)]
    got = receive_all(waits)
    t200a = got[0][1]
    check(got[0][0].status == 200, "alice: %s, want 200" % got[0][0].start)
    check(all(m.status == 401 for m, _ in got[1:]), "bob: not all 401")
    at_once = sum(1 for _, t in got[1:] if t < t200a - window / 2)
    print("%d challenges while a group was open: %d at once, %d with the group" %
          (n, at_once, n - at_once))
    check(at_once == n - 64, "%d of %d challenges came at once, want %d (64 held)" %
          (at_once, n, n - 64))
    pa.close()
    pb.close()
    stop_csipd(run, srv)


# ---------------------------------------------------------------------------
# Case: the database cannot be written


def case_commit_failure(run, limit=256 * 1024):
    """csipd whose files may not grow past LIMIT octets (RLIMIT_FSIZE, SIGXFSZ
    ignored: the write fails with EFBIG, as on a full disk): REGISTERs are
    acknowledged with 200 while their bindings reach the database; once a
    commit fails, each REGISTER of the group gets a 500 that names the failure
    and answers that REGISTER (its Via, From, To with a tag, Call-ID, CSeq; no
    Contact: nothing was registered), its binding is not served, those
    acknowledged before still are, and csipd goes on answering."""
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    db = run.path("db/csipd.db")
    opts = ["--db", db, "--auth", "off", "--group-commit", "5"]
    srv = start_csipd(run, "csipd", opts, preexec_fn=limited)
    peer = Peer(srv.csip_udp)
    ok, failed = [], None
    for i in range(5000):
        ua = Ua(peer, "u%04d-%s" % (i, "x" * 200))  # long AORs: pages fill fast
        contact = "<sip:u%d@127.0.0.1:%d>" % (i, peer.addr[1])
        data, br = ua.request("REGISTER", ["Contact: " + contact, "Expires: 600"])
        resp = peer.transact(data, br)
        if resp.status == 200:
            ok.append((ua, contact))
            continue
        failed = (ua, data, resp)
        break
    check(failed is not None, "5000 REGISTERs acknowledged past a %d-octet file limit" % limit)
    ua, data, resp = failed
    print("%d REGISTERs acknowledged, then: %s" % (len(ok), resp.start))
    check(len(ok) >= 10, "only %d REGISTERs acknowledged before the first failure" % len(ok))
    check(resp.status == 500 and "Location Database Failure" in resp.start,
          "want 500 Location Database Failure, got %s" % resp.start)
    req = Msg(data)
    check(resp.branch() == req.branch() and resp.get("via").startswith(req.get("via").split(";")[0]),
          "the 500's Via %r is not the REGISTER's %r" % (resp.get("via"), req.get("via")))
    for name in ("from", "call-id", "cseq"):
        check(resp.get(name) == req.get(name), "the 500's %s %r is not the REGISTER's %r" %
              (name, resp.get(name), req.get(name)))
    to = resp.get("to") or ""
    check(to.startswith(req.get("to")) and re.search(r";\s*tag=\S+", to),
          "the 500's To %r: want the REGISTER's with a tag" % to)
    check(resp.get("contact") is None, "the 500 lists a Contact: %r" % resp.get("contact"))
    check("committing" in run.log("csipd"),
          "no log line of the failed commit:\n%s" % run.log("csipd")[-2000:])
    # Nothing of the failed REGISTER is served, what was acknowledged is; a
    # fetch writes nothing and is answered.
    fetch = Ua(peer, ua.user)
    r = fetch.register()
    check(r.status == 200, "fetch of %s after the failure: %s" % (fetch.aor, r.start))
    check(not contacts_of(r), "the failed REGISTER's binding is served: %s" % contacts_of(r))
    for ua_ok, contact in (ok[0], ok[-1]):
        got = list(Ua(peer, ua_ok.user).fetch())
        want = contact.strip("<>")
        check(got == [want], "%s: bindings %s, want [%s]" % (ua_ok.aor, got, want))
    expect_alive(run, srv)
    peer.close()
    stop_csipd(run, srv)

# ---------------------------------------------------------------------------
# Case: a busy peer gets a connected socket of its own


def udp_sockets_on(port):
    """[(local (ip, port), remote (ip, port))] of the IPv4 UDP sockets bound to port."""
    out = []
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            lip, lport = fields[1].split(":")
            rip, rport = fields[2].split(":")
            if int(lport, 16) != port:
                continue

            def ip(h):
                return socket.inet_ntoa(struct.pack("<I", int(h, 16)))
            out.append(((ip(lip), int(lport, 16)), (ip(rip), int(rport, 16))))
    return out


def case_busy_peer(run):
    """A peer that takes much of the traffic (40 REGISTERs answered in one
    group) gets a UDP socket of csipd's own, connected to it on csipd's port:
    its responses still come from that port (RFC 3581), its next requests are
    read there, other peers are served by the listener as before, a peer that
    went away and came back on the same port is served again, and a second
    csipd still cannot bind the port."""
    port = free_port()
    db = run.path("db/csipd.db")
    opts = ["--db", db, "--auth", "off", "--group-commit", "200"]
    srv = start_csipd(run, "csipd", opts, listen=("udp:127.0.0.1:%d" % port,))
    rc, out, err = csipd_cli(run, ["--db", run.path("db2/csipd.db"), "--auth", "off",
                                   "-l", "udp:127.0.0.1:%d" % port], [], seconds=30)
    check(rc != 0, "a second csipd on udp port %d started (exit %d)" % (port, rc))
    print("a second csipd on the same port: exit %d: %s" %
          (rc, (err or out).strip().splitlines()[-1] if (err or out).strip() else ""))

    def burst(peer, n, tag):
        """n REGISTERs sent at once; every 200 must come from csipd's port."""
        waits = {}
        for i in range(n):
            ua = Ua(peer, "%s%02d" % (tag, i))
            data, br = ua.request("REGISTER", ["Contact: <sip:%s%02d@127.0.0.1:%d>" %
                                               (tag, i, peer.addr[1]), "Expires: 600"])
            peer.sock.sendto(data, peer.server)
            waits[br] = data
        got, deadline = {}, time.time() + 10
        while len(got) < n and time.time() < deadline:
            r, _, _ = select.select([peer.sock], [], [], max(0.0, deadline - time.time()))
            if not r:
                continue
            data, frm = peer.sock.recvfrom(65535)
            msg = Msg(data)
            if msg.branch() in waits and msg.status and msg.status >= 200:
                check(msg.status == 200, "%s: %s" % (tag, msg.start))
                check(frm == ("127.0.0.1", port), "a response from %s, not from csipd's port %d"
                      % (frm, port))
                got[msg.branch()] = msg
        check(len(got) == n, "%s: %d of %d REGISTERs answered" % (tag, len(got), n))

    a = Peer(srv.csip_udp)
    burst(a, 40, "a")
    socks = udp_sockets_on(port)
    print("sockets on port %d after the burst: %s" % (port, socks))
    check(any(r == a.addr for _, r in socks),
          "no socket on csipd's port connected to the busy peer %s: %s" % (a.addr, socks))
    check(len(socks) == 2, "want the listener and one connected socket: %s" % socks)
    burst(a, 5, "a2")      # now read on the connected socket
    b = Peer(srv.csip_udp)
    burst(b, 3, "b")       # another peer: the listener
    # The busy peer goes away (its port unreachable for a moment: an ICMP
    # error on the connected socket) and comes back on the same port.
    aport = a.addr[1]
    ua = Ua(a, "gone")
    data, _ = ua.request("REGISTER", ["Contact: <sip:gone@127.0.0.1:%d>" % aport])
    a.sock.sendto(data, a.server)
    a.close()
    time.sleep(0.5)  # its 200 meets a closed port
    a = Peer(srv.csip_udp, port=aport)
    burst(a, 20, "a3")
    burst(b, 3, "b2")
    expect_alive(run, srv)
    a.close()
    b.close()
    stop_csipd(run, srv)

# ---------------------------------------------------------------------------
# Case: SIGKILL under load, restart on the same database


def case_restart_sigkill(run, n=6000, kill_after=None):
    db = run.path("db/csipd.db")
    opts = ["--db", db, "--auth", "off", "--log-level", "warn"]
    srv = start_csipd(run, "csipd1", opts)
    peer = Peer(srv.csip_udp)
    acked, answers = {}, {}
    killed = {}
    kill_after = kill_after or random.randint(1000, 3000)

    def job(i):
        user = "load%05d" % i
        contact = "sip:%s@127.0.0.1:%d;line=%x" % (user, 20000 + i % 40000, i)
        aor = "sip:%s@localhost" % user
        data, br = build_request("REGISTER", "sip:localhost", peer.addr, aor, aor,
                                 "%x-%d@load" % (random.getrandbits(32), i), 1,
                                 ["Contact: <%s>" % contact, "Expires: 3600"])
        resp = yield data, br
        if resp is not None:
            answers[resp.status] = answers.get(resp.status, 0) + 1
            if resp.status == 200:
                acked[user] = contact

    def tick(outstanding):
        if "at" not in killed and len(acked) >= kill_after:
            srv.kill()  # SIGKILL, by PID
            killed["at"] = time.time()
            killed["outstanding"] = outstanding
            killed["acked"] = len(acked)
        return "at" in killed and time.time() - killed["at"] > 0.5

    left = pipeline(peer, (job(i) for i in range(n)), 64, 240, tick)
    check("at" in killed, "the load finished (%d acknowledged) before the kill" % len(acked))
    srv.wait(10)
    print("SIGKILL after %d acknowledgements with %d REGISTERs in flight; %d acknowledged in "
          "all, %d unanswered; answers %s" % (killed["acked"], killed["outstanding"], len(acked),
                                              left, answers))
    check(killed["outstanding"] > 0, "nothing was in flight at the kill")
    check(set(answers) == {200}, "answers other than 200 under load: %s" % answers)

    srv = start_csipd(run, "csipd2", opts)
    peer.close()
    peer = Peer(srv.csip_udp)
    got = fetch_all(peer, sorted(acked), "localhost", window=64)
    lost = []
    for user, contact in sorted(acked.items()):
        resp = got.get(user)
        check(resp is not None and resp.status == 200,
              "fetch of %s after the restart: %s" % (user, resp and resp.start))
        if contact not in contacts_of(resp):
            lost.append(user)
    check(not lost, "%d of %d acknowledged bindings lost by the restart (e.g. %s: %s)" %
          (len(lost), len(acked), lost[:3], [acked[u] for u in lost[:3]]))
    print("all %d acknowledged bindings found after the restart" % len(acked))
    # csipd still registers after the restart.
    ua = Ua(peer, "afterwards")
    resp = ua.register(["<sip:afterwards@127.0.0.1:9>"], 600)
    check(resp.status == 200, "REGISTER after the restart: %s" % resp.start)
    peer.close()
    stop_csipd(run, srv)
    # The database agrees.
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        rows = set((text_of(aor), text_of(contact))
                   for aor, contact in conn.execute("SELECT aor, contact FROM location"))
    finally:
        conn.close()
    missing = [u for u, c in acked.items() if ("sip:%s@localhost" % u, c) not in rows]
    check(not missing, "%d acknowledged bindings not in the database (e.g. %s)" %
          (len(missing), missing[:3]))


# ---------------------------------------------------------------------------
# Cases: RFC 4475 over UDP

# Domains of the torture messages' Request-URIs and AORs, all served, so that
# csipd never looks a name up.
RFC4475_DOMAINS = ["example.com", "example.org", "example.net", "company.com",
                   "chair-dnrc.example.com", "registrar.example.com"]

NONE = "none"  # no answer at all
SAME = "same"  # what csipd answers a well-formed request of the method to that Request-URI

# The answer the RFC asks of a registrar serving the messages' domains (auth
# on) that does not proxy yet; where the RFC leaves a choice, the choices of
# tests/unit/test_rfc4475.c, or every answer the RFC allows.
RFC4475_EXPECT = {
    # 3.1.1 valid: treated as any well-formed request
    "wsinv": {SAME}, "intmeth": {SAME}, "esc01": {SAME}, "escnull": {401}, "esc02": {SAME},
    "lwsdisp": {SAME}, "longreq": {SAME}, "dblreq": {401}, "semiuri": {SAME},
    "transports": {SAME}, "mpart01": {SAME, 415}, "unreason": {NONE}, "noreason": {NONE},
    # 3.1.2 invalid
    "badinv01": {400}, "clerr": {400}, "ncl": {400}, "scalar02": {400}, "scalarlg": {NONE},
    "quotbal": {400}, "ltgtruri": {400}, "lwsruri": {400}, "lwsstart": {400}, "trws": {400},
    "escruri": {400}, "baddate": {SAME}, "regbadct": {400}, "badaspec": {400}, "baddn": {400},
    "badvers": {505}, "mismatch01": {400}, "mismatch02": {501, 400}, "bigcode": {NONE},
    # 3.2
    "badbranch": {SAME},
    # 3.3
    "insuf": {400}, "unkscm": {416}, "novelsc": {416}, "unksm2": {400}, "bext01": {420},
    "invut": {SAME, 415}, "regaut01": {401}, "multi01": {400}, "mcl01": {400},
    "bcast": {NONE}, "zeromf": {483, SAME}, "cparam01": {401}, "cparam02": {401},
    "regescrt": {401}, "sdp01": {406, SAME}, "inv2543": {SAME},
}

# What csipd may answer a well-formed request that is not a REGISTER or an
# OPTIONS to itself: it proxies it (RFC 3261 §16): 407 when the From claims
# one of its domains without credentials, 404/480 for a user it does not know
# or who has no binding, 403 for another domain; 200 for OPTIONS to itself.
SAME_ALLOWED = {"OPTIONS": {200, 404, 407, 480}, "INVITE": {403, 404, 407, 480},
                "MESSAGE": {403, 404, 407, 480}, "other": {403, 404, 407, 480, 501}}


def rfc4475_messages(run):
    names = []
    with open(os.path.join(run.args.data, "rfc4475", "manifest.tsv")) as f:
        for line in f.read().splitlines()[1:]:
            name = line.split("\t", 1)[0]
            if name and name != "test":
                names.append(name)
    check(len(names) == 49 and set(names) == set(RFC4475_EXPECT),
          "the manifest does not list the 49 messages of the table")
    return names


def read_message(run, name):
    with open(os.path.join(run.args.data, "rfc4475", name + ".dat"), "rb") as f:
        return f.read()


def top_via(data):
    """(transport, sent-by host, port or None, branch or None, method) of a request,
    read loosely (folded lines joined); None for a response."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    head = re.sub(r"\r\n[ \t]+", " ", head)
    lines = head.split("\r\n")
    if lines[0].startswith("SIP/"):
        return None
    method = lines[0].split(" ", 1)[0]
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("via", "v"):
            m = re.match(r"\s*SIP\s*/\s*[0-9.]+\s*/\s*([A-Za-z]+)\s+([^;,\s]+)", value)
            br = re.search(r";\s*branch\s*=\s*([^;,\s]+)", value)
            if not m:
                return ("UDP", None, None, None, method)
            host, port = m.group(2), None
            hp = re.match(r"(.*):(\d+)$", host)
            if hp and not host.endswith("]"):
                host, port = hp.group(1), int(hp.group(2))
            return (m.group(1).upper(), host.lower(), port, br.group(1) if br else None, method)
    return ("UDP", None, None, None, method)


def answer_ports(data):
    """Where csipd may answer (RFC 3261 §18.2.2): the received address (ours) and the
    top Via's sent-by port, by default 5060, or 5061 for a Via saying TLS (RFC 3261
    §19.1.2 gives TLS that default; §18.2.2 says 5060: either is taken). With rport
    the answer goes to the source port, which is the first of these."""
    via = top_via(data)
    if via is None or via[2] is not None:
        return [via[2] if via else 5060]
    return [5060, 5061] if via[0] == "TLS" else [5060]


def foreign_via(data):
    """True when the top Via names an IPv4 address off this host's loopback."""
    via = top_via(data)
    return bool(via and via[1] and re.fullmatch(r"[0-9.]+", via[1])
                and not via[1].startswith("127."))


def txn_key(data):
    """RFC 3261 §17.2.3: requests with the same branch (magic cookie), sent-by and
    method are one transaction: csipd takes the second for a retransmission of the
    first for as long as that transaction lives (Timer J/H, 32 s)."""
    via = top_via(data)
    if not via or not via[3] or not via[3].startswith("z9hG4bK"):
        return None
    return (via[3], via[1], via[2], via[4])


def exchange(server, data, ports, want_answer, seconds=4.0, linger=0.5):
    """Sends data bit-exact from a new 127.x.y.z:ports[0] socket (also listening on
    the other ports), retransmits it like a UAC (after 0.5, 1, 2 s) until a final
    response; collects every datagram that comes back until linger after the first
    final one (or seconds without one; 2.5 s when no answer is expected)."""
    for _ in range(50):
        socks = []
        try:
            first = loopback_peer(server, ports[0])
            socks.append(first.sock)
            for p in ports[1:]:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((first.addr[0], p))
            break
        except OSError:
            for s in socks:
                s.close()
    else:
        raise Failure("no free loopback address with ports %s" % ports)
    got = []
    try:
        first.sock.sendto(data, server)
        start = time.time()
        end = start + (seconds if want_answer else 2.5)
        interval, resend = 0.5, start + 0.5
        while True:
            now = time.time()
            if now >= end:
                break
            r, _, _ = select.select(socks, [], [], max(0.0, min(end, resend) - now))
            for s in r:
                m = Msg(s.recv(65535))
                m.port = s.getsockname()[1]
                got.append(m)
                if m.status and m.status >= 200 and end > time.time() + linger:
                    end = time.time() + linger
            if not r and time.time() >= resend:
                if any(m.status and m.status >= 200 for m in got):
                    resend = end
                else:
                    first.sock.sendto(data, server)
                    interval = min(interval * 2, 4.0)
                    resend = time.time() + interval
    finally:
        for s in socks:
            s.close()
    return got


def from_domain_of(data):
    """The host of the From URI of a raw request (None when it has none)."""
    m = re.search(rb"\r\n(?:From|f)[ \t]*:[^\r\n]*?sips?:(?:[^@>;\r\n]*@)?([^:;>\s]+)", data,
                  re.I)
    return m.group(1).decode("latin-1").lower() if m else None


def control_status(server, method, ruri, cache, from_domain=None):
    """csipd's answer to a plain, well-formed request of the method to ruri,
    from the same domain (csipd challenges callers who claim its domains)."""
    dom = from_domain or "example.com"
    key = (method, ruri, dom)
    if key not in cache:
        peer = loopback_peer(server)
        data, br = build_request(method, ruri, peer.addr, "sip:control@%s" % dom,
                                 "sip:user@example.com", "%x@control" % random.getrandbits(64), 1)
        resp = peer.transact(data, br)
        peer.close()
        cls = method if method in SAME_ALLOWED else "other"
        check(resp.status in SAME_ALLOWED[cls],
              "a well-formed %s to %s: %s, want one of %s" %
              (method, ruri, resp.start, sorted(SAME_ALLOWED[cls])))
        cache[key] = resp.status
    return cache[key]


def call_id_of(data):
    m = re.search(rb"\r\n(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]*)\r\n", data, re.I)
    return m.group(1).decode("latin-1").strip() if m else None


def judge(name, data, want, got):
    """None when the answers are what RFC 4475 asks for, else why not."""
    finals = [m for m in got if m.status and m.status >= 200]
    if NONE in want:
        return "answered %r, the RFC asks for no answer" % got[0].start if got else None
    if not finals:
        via = top_via(data)
        hint = ""
        if foreign_via(data):
            hint = " (the top Via names %s; RFC 3261 §18.2.1-2: the answer goes to the " \
                "source address, as received)" % via[1]
        return "no answer to the source address, want %s%s" % (sorted(want), hint)
    codes = sorted(set(m.status for m in finals))
    if len(codes) != 1 or codes[0] not in want:
        return "answered %s, want %s" % ([m.start for m in finals[:2]], sorted(want))
    resp = finals[0]
    cid = call_id_of(data)
    if name == "dblreq" and len(finals) != 1:
        return "%d answers: the trailing INVITE was answered too?" % len(finals)
    if cid is not None and name != "multi01" and resp.get("call-id") != cid:
        return "the answer's Call-ID %r is not the request's %r" % (resp.get("call-id"), cid)
    if resp.status == 401:
        chs = challenges_of(resp)
        if not chs or not all(c["scheme"].lower() == "digest" and c.get("nonce")
                              and c.get("realm") == "example.com" for c in chs):
            return "401 without Digest challenges for realm example.com: %s" % chs
    if name == "bext01":
        unsup = set(x.strip() for x in resp.all("unsupported"))
        if unsup not in ({"nothingSupportsThis", "nothingSupportsThisEither"},
                         {"noProxiesSupportThis", "norDoAnyProxiesSupportThis"}):
            return "420 with Unsupported %s" % sorted(unsup)
    # RFC 3261 §8.2.1: a 405 lists the methods in Allow; RFC 4475 §3.1.1.2: so
    # does an endpoint's 501 to intmeth (a proxy forwards it instead).
    if resp.status in (405, 501) and not resp.get("allow"):
        return "%d without Allow" % resp.status
    return None


def case_rfc4475_udp(run):
    names = rfc4475_messages(run)
    opts = ["--db", run.path("db/csipd.db")]
    for d in RFC4475_DOMAINS:
        opts += ["-d", d]
    srv = start_csipd(run, "csipd", opts + ["--log-level", "debug"])
    server = srv.csip_udp
    cache, problems, skipped = {}, [], []
    last_use = {}  # transaction key -> when its transaction may still live
    queue = list(names)
    while queue:
        # The next message whose transaction key is free (see txn_key).
        now = time.time()
        ready = [n for n in queue if last_use.get(txn_key(read_message(run, n)), 0) <= now]
        if not ready:
            wait = min(last_use[txn_key(read_message(run, n))] for n in queue) - now
            print("(waiting %.0f s for csipd to forget a transaction with the same branch)" % wait)
            time.sleep(max(0.0, wait))
            continue
        name = ready[0]
        queue.remove(name)
        data = read_message(run, name)
        if foreign_via(data) and not run.args.isolated:
            skipped.append(name)  # a wrong answer would leave this host
            continue
        want = set(RFC4475_EXPECT[name])
        if SAME in want:
            method, ruri = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
            want.discard(SAME)
            want.add(control_status(server, method, ruri, cache, from_domain_of(data)))
        got = exchange(server, data, answer_ports(data), NONE not in want)
        if txn_key(data):
            last_use[txn_key(data)] = time.time() + 34
        finals = [m for m in got if m.status and m.status >= 200]
        print("%-10s want %-12s got %s" % (name, "/".join(sorted(str(w) for w in want)),
                                           finals[0].start if finals else
                                           (got[0].start if got else "nothing")))
        why = judge(name, data, want, got)
        if why:
            problems.append("%s: %s" % (name, why))
        expect_alive(run, srv)
    # Still serving: an OPTIONS to csipd itself.
    peer = loopback_peer(server)
    data, br = build_request("OPTIONS", "sip:%s:%d" % server, peer.addr, "sip:probe@example.com",
                             "sip:%s:%d" % server, "%x@after" % random.getrandbits(64), 1)
    resp = peer.transact(data, br)
    peer.close()
    check(resp.status == 200, "OPTIONS after the torture messages: %s" % resp.start)
    if skipped:
        print("NOT SENT (no network namespace, and csipd might answer off loopback): %s" %
              " ".join(skipped))
    check(not problems, "%d of %d messages not answered as RFC 4475 asks:\n  %s" %
          (len(problems), 49 - len(skipped), "\n  ".join(problems)))
    print("%d messages answered as RFC 4475 asks; csipd still answers OPTIONS 200" %
          (49 - len(skipped)))
    stop_csipd(run, srv)


def send_torture(run, server, name):
    data = read_message(run, name)
    check(run.args.isolated or not foreign_via(data),
          "%s not sent: no network namespace, and csipd might answer off loopback" % name)
    got = exchange(server, data, answer_ports(data), True)
    finals = [m for m in got if m.status and m.status >= 200]
    check(finals, "%s: no answer from csipd to the source address" % name)
    print("%-9s -> %s" % (name, finals[0].start))
    return finals[0], got


def case_rfc4475_registrar(run):
    """The registrar cases end to end. Messages that share a transaction key
    (cparam01 and cparam02, regescrt and escnull) go to different runs of csipd
    on the same database, which also shows that the bindings survive a restart."""
    opts = ["--db", run.path("db/csipd.db"), "-d", "example.com"]
    problems = []

    def fetch(server, user):
        peer = loopback_peer(server)
        try:
            return Ua(peer, user, domain="example.com").fetch()
        finally:
            peer.close()

    def expect_bindings(label, cs, want):
        """want: {uri: (params that must be there, params that must not)}."""
        print("  %s: %s" % (label, "; ".join("<%s>;%s" % (u, ";".join(p))
                                             for u, p in sorted(cs.items())) or "none"))
        if set(cs) != set(want):
            problems.append("%s: bindings %s, want %s" % (label, sorted(cs), sorted(want)))
            return
        for uri, (must, mustnot) in want.items():
            names = [p.partition("=")[0].lower() for p in cs[uri]]
            for p in must:
                if p not in names:
                    problems.append("%s: <%s> lacks the parameter %s" % (label, uri, p))
            for p in mustnot:
                if p in names:
                    problems.append("%s: <%s> has the parameter %s" % (label, uri, p))

    gw = "sip:+19725552222@gw1.example.net"
    escrt = "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    srv = start_csipd(run, "csipd1", opts + ["--auth", "off"])
    server = srv.csip_udp
    # cparam01 (§3.3.12): succeeds; unknownparam is a contact parameter, never a
    # url-parameter of the binding.
    resp, _ = send_torture(run, server, "cparam01")
    check(resp.status == 200, "cparam01: %s, the RFC says it should succeed" % resp.start)
    want = {gw: (["unknownparam"], [])}
    expect_bindings("cparam01, the 200", contacts_of(resp), want)
    expect_bindings("cparam01, a fetch", fetch(server, "watson"), want)
    # regescrt (§3.3.14): succeeds; the escaped Route stays in the contact URI.
    resp, _ = send_torture(run, server, "regescrt")
    check(resp.status == 200, "regescrt: %s, the RFC says it should succeed" % resp.start)
    expect_bindings("regescrt, the 200", contacts_of(resp), {escrt: ([], [])})
    expect_bindings("regescrt, a fetch", fetch(server, "user"), {escrt: ([], [])})
    # unksm2 (§3.3.4): the To is not a SIP or SIPS URI: 400.
    resp, _ = send_torture(run, server, "unksm2")
    if resp.status != 400:
        problems.append("unksm2: %s, want 400 (To must hold a SIP or SIPS URI)" % resp.start)
    # dblreq (§3.1.1.8): the REGISTER registers; the trailing octets are ignored.
    resp, got = send_torture(run, server, "dblreq")
    check(resp.status == 200, "dblreq: %s" % resp.start)
    if len([m for m in got if m.status]) != 1:
        problems.append("dblreq: %d answers, want one" % len(got))
    expect_bindings("dblreq, a fetch", fetch(server, "j.user"),
                    {"sip:j.user@host.example.com": ([], [])})
    # regaut01 (§3.3.7) without authentication: the unknown scheme is ignored.
    resp, _ = send_torture(run, server, "regaut01")
    if resp.status != 200:
        problems.append("regaut01 with auth off: %s, want 200 (scheme ignored)" % resp.start)
    stop_csipd(run, srv)

    srv = start_csipd(run, "csipd2", opts + ["--auth", "off"])
    server = srv.csip_udp
    expect_bindings("regescrt, a fetch after a restart", fetch(server, "user"),
                    {escrt: ([], [])})
    # cparam02 (§3.3.13): succeeds; unknownparam stays a url-parameter. Its URI
    # equals cparam01's (§19.1.4: a parameter in one URI only is ignored), so the
    # binding is updated: one binding, the URI as cparam02 wrote it.
    resp, _ = send_torture(run, server, "cparam02")
    check(resp.status == 200, "cparam02: %s, the RFC says it should succeed" % resp.start)
    want = {gw + ";unknownparam": ([], ["unknownparam"])}
    expect_bindings("cparam02, the 200", contacts_of(resp), want)
    expect_bindings("cparam02, a fetch", fetch(server, "watson"), want)
    # escnull (§3.1.1.4): the AOR keeps its %00; two distinct contacts.
    resp, _ = send_torture(run, server, "escnull")
    check(resp.status == 200, "escnull: %s" % resp.start)
    expect_bindings("escnull, a fetch", fetch(server, "null-%00-null"),
                    {"sip:%00@host5.example.com": ([], []),
                     "sip:%00%00@host5.example.com": ([], [])})
    stop_csipd(run, srv)

    # regaut01 with authentication: 401 with a Digest challenge; so is Digest
    # for an unknown realm, and for our realm with a nonce csipd never issued.
    rc, out, err = csipd_cli(run, opts, ["user", "add", "j.user", "pw"])
    check(rc == 0, "csipd user add: exit %d\n%s%s" % (rc, out, err))
    srv = start_csipd(run, "csipd3", opts)
    server = srv.csip_udp
    resp, _ = send_torture(run, server, "regaut01")
    chs = challenges_of(resp)
    if resp.status != 401 or not chs or any(c["scheme"].lower() != "digest" for c in chs):
        problems.append("regaut01 with auth on: %s %s, want 401 with a Digest challenge" %
                        (resp.start, chs))
    peer = loopback_peer(server)
    ua = Ua(peer, "j.user", domain="example.com")
    forged = ('Digest username="j.user", realm="elsewhere.example", nonce="bm90LWEtbm9uY2U", '
              'uri="sip:example.com", algorithm=MD5, response="%s"' % ("0" * 32))
    for label, auth in (("an unknown realm", forged),
                        ("a nonce never issued", forged.replace("elsewhere.example",
                                                                "example.com"))):
        resp = ua.register(["<sip:j.user@192.0.2.1>"], 600, extra=["Authorization: " + auth])
        chs = challenges_of(resp)
        if resp.status != 401 or not chs or any(c.get("realm") != "example.com" for c in chs):
            problems.append("Digest with %s: %s %s, want 401 with a fresh challenge" %
                            (label, resp.start, chs))
    ua.password = "pw"
    for alg in ("SHA-256", "MD5"):
        resp = ua.register(["<sip:j.user@192.0.2.1>"], 600, alg=alg)
        check(resp.status == 200, "j.user with the right password (%s): %s" % (alg, resp.start))
    peer.close()
    stop_csipd(run, srv)
    check(not problems, "%d registrar outcomes differ from RFC 4475:\n  %s" %
          (len(problems), "\n  ".join(problems)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csipd", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the case's files")
    ap.add_argument("case")
    args = ap.parse_args()
    args.csipd, args.data = os.path.abspath(args.csipd), os.path.abspath(args.data)
    fn = globals().get("case_" + args.case)
    if not fn:
        print("unknown case", args.case)
        return 2
    args.isolated = isolate_network()
    print("network: %s" % ("a namespace of its own, loopback only" if args.isolated else
                           "the host's (no network namespace could be made)"))
    run = Run(args)
    ok = False
    try:
        fn(run)
        ok = True
    except Failure as e:
        print("FAIL %s: %s" % (args.case, e))
    finally:
        run.cleanup(keep=args.keep or not ok)
    print("%d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
