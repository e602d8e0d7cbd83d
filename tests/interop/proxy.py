#!/usr/bin/env python3
"""Interoperability tests of csipd as a proxy (RFC 3261 section 16), on loopback.

Each case starts its own csipd (database in the case's temporary directory,
ports read back from its "ready" line), its own SIPp user agents from the
Debian package sip-tester, and where needed its own dnsmasq and Kamailio,
bounds every wait, and stops only the processes it started, by their PID.

The user agents live on loopback addresses of their own (the caller on
127.0.0.10, the callee on 127.0.0.20, Kamailio on 127.0.0.30), csipd on
127.0.0.1: other hosts, as far as the Request-URIs and Vias can tell.

    proxy.py --csipd PATH CASE

Cases:
  calls_udp, calls_tcp       200 calls (50 calls/s, at most 100 at once) from SIPp
                             through csipd to a SIPp callee that registered itself
                             with digest; each caller is a csipd user who answers a
                             407 with digest; every call succeeds
  caller_dialog_udp, caller_dialog_tcp
                             the caller sends a re-INVITE, an UPDATE and the BYE
                             along the Record-Route set: csipd's Record-Route is in
                             the 200, each in-dialog request reaches the callee
                             through csipd (its Via) and is in csipd's log
  callee_dialog_udp, callee_dialog_tcp
                             the same with the callee sending them
  lossy_callee_udp           20 calls while the callee's SIPp loses 20 % of what it
                             sends and receives: every call completes
  same_host_udp              a caller dialog with the callee on csipd's own address
                             (another port): csipd is not that port, so the ACK and
                             the BYE to the callee's Contact must be forwarded to it
  kamailio_a_to_b            users of a.test (csipd, with digest) call bob@b.test, a
                             SIPp callee registered at Kamailio: csipd finds b.test by
                             DNS (dnsmasq: SRV of _sip._udp.b.test, then A) and
                             forwards; both proxies Record-Route; the BYE follows both
  kamailio_b_to_a            carol@b.test calls callee@a.test through Kamailio, which
                             forwards a.test to csipd; csipd lets a caller of another
                             domain reach its user without digest
  no_open_relay              INVITEs for b.test: without credentials 407, from a
                             domain that is not csipd's 403, and nothing reaches
                             b.test's server; with credentials it does

Prints "1 passed, 0 failed" or the reason of the failure (exit status 1).
"""
import argparse
import hashlib
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from interop import Failure, Run, check, sipp_stats  # noqa: E402

CSIPD_HOST = "127.0.0.1"
CALLER_HOST = "127.0.0.10"
CALLEE_HOST = "127.0.0.20"
KAMAILIO_HOST = "127.0.0.30"
B_SERVER_HOST = "127.0.0.31"  # no_open_relay: what b.test resolves to

# SIPp 3.6.1 answers only the first challenge and computes MD5 only: csipd
# offers MD5 first for it (SHA-256 is still offered).
SIPP_ALGS = ["--auth-algorithms", "MD5,SHA-256"]

# ---------------------------------------------------------------------------
# Processes


def free_port(host):
    """A port free on host for both TCP and UDP (bound, then released)."""
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind((host, 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((host, port))
            ok = True
        except OSError:
            ok = False
        u.close()
        t.close()
        if ok:
            return port
    raise Failure("no free port on %s" % host)


def wait_bound(host, port, proto, proc, seconds=10):
    """Waits until proc listens on host:port (TCP) or holds it (UDP)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        check(proc.poll() is None, "%s exited early (status %s)" % (proc.csip_name, proc.returncode))
        if proto == "tcp":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.connect((host, port))
                return
            except OSError:
                pass
            finally:
                s.close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((host, port))
            except OSError:
                return
            finally:
                s.close()
        time.sleep(0.05)
    raise Failure("nothing listens on %s %s:%d" % (proto, host, port))


def read(run, name):
    try:
        with open(run.path(name), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# csipd


def csipd_cli(run, opts, args, seconds=60):
    """Runs "csipd OPTS ARGS" (user add, user import) to completion."""
    try:
        r = subprocess.run([run.args.csipd] + opts + args, cwd=run.dir, capture_output=True,
                           text=True, timeout=seconds, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failure("csipd %s did not finish in %d s" % (" ".join(args[:2]), seconds))
    check(r.returncode == 0, "csipd %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout,
                                                          r.stderr))


READY_ADDR = re.compile(r"\b(udp|tcp|tls):([0-9.]+):(\d+)")


def start_csipd(run, opts, transports=("udp", "tcp"), name="csipd", seconds=30):
    """csipd on CSIPD_HOST, ports picked by the kernel; waits for its "ready" line.
    Logs every transaction (info) to NAME.err."""
    cmd = [run.args.csipd] + opts
    for t in transports:
        cmd += ["-l", "%s:%s:0" % (t, CSIPD_HOST)]
    p = run.spawn(cmd, name)
    deadline = time.time() + seconds
    while time.time() < deadline:
        for line in read(run, name + ".err").splitlines():
            if " ready " in line:
                p.csip_addrs = {proto: (host, int(port))
                                for proto, host, port in READY_ADDR.findall(line)}
                for t in transports:
                    check(t in p.csip_addrs, "no %s address in: %r" % (t, line))
                print("csipd: %s" % line.strip())
                return p
        check(p.poll() is None, "csipd exited (status %s) before ready:\n%s" %
              (p.returncode, read(run, name + ".err")[-3000:]))
        time.sleep(0.05)
    raise Failure("csipd printed no ready line in %d s" % seconds)


def stop_csipd(run, p):
    """SIGTERM, then a clean exit 0 (with ASan: and no leak or error report)."""
    check(p.poll() is None, "csipd exited (status %s):\n%s" %
          (p.returncode, read(run, p.csip_name + ".err")[-3000:]))
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(30)
    except subprocess.TimeoutExpired:
        raise Failure("csipd did not stop on SIGTERM in 30 s")
    check(rc == 0, "csipd exit status %d:\n%s" % (rc, read(run, p.csip_name + ".err")[-4000:]))


def expect_alive(run, p):
    check(p.poll() is None, "%s exited (status %s):\n%s" %
          (p.csip_name, p.returncode, read(run, p.csip_name + ".err")[-4000:]))


# A csipd log line of a proxied request: "INVITE sip:bob@a.test from UDP:127.0.0.10:5555
# cid=1-2345@1 -> 200 (proxied, 1 branch)". Logged when the request's context ends
# (its server transaction terminated: at once over TCP, after Timer J/L over UDP).
PROXIED = re.compile(r" info  ([A-Z]+) (\S*) from ([A-Z]+):(\S+) cid=(\S+) -> (\d+) \(proxied, "
                     r"(\d+) branch")


def proxied_lines(run, name="csipd"):
    return [m.groups() for m in map(PROXIED.search, read(run, name + ".err").splitlines()) if m]


def wait_proxied(run, want, seconds, name="csipd"):
    """Waits until csipd's log has, for each (method, status) of want, at least that many
    proxied lines; returns {(method, status): count} of what it has."""
    deadline = time.time() + seconds
    while True:
        count = {}
        for method, _, _, _, _, status, _ in proxied_lines(run, name):
            count[(method, int(status))] = count.get((method, int(status)), 0) + 1
        if all(count.get(k, 0) >= n for k, n in want.items()) or time.time() >= deadline:
            return count
        time.sleep(0.5)


# ---------------------------------------------------------------------------
# Users

CALLERS = [("caller%02d" % i, "pw-caller-%02d-%x" % (i, random.getrandbits(24)))
           for i in range(10)]


def write_users(run, name, users):
    """The file for "csipd user import" (user;password) and SIPp's injection file
    (user;[authentication ...]: SIPp 3.6 does not expand fields inside a keyword)."""
    imp, inf = run.path(name + ".users"), run.path(name + ".inf")
    with open(imp, "w") as f:
        f.write("".join("%s;%s\n" % u for u in users))
    with open(inf, "w") as f:
        f.write("SEQUENTIAL\n")
        f.write("".join("%s;[authentication username=%s password=%s]\n" % (u, u, pw)
                        for u, pw in users))
    return imp, inf


# ---------------------------------------------------------------------------
# SIPp


def sipp_cmd(run, name, host, args, seconds):
    sipp = shutil.which("sipp")
    check(sipp, "sipp not found: install the Debian package sip-tester (make check does)")
    return [sipp] + args + [
        "-i", host, "-nostdin", "-timeout", "%ds" % seconds, "-timeout_error",
        "-trace_stat", "-stf", run.path(name + ".csv"), "-trace_err",
        "-error_file", run.path(name + ".errors"), "-trace_msg",
        "-message_file", run.path(name + ".msg"),
        # an aborted call is not followed by a BYE of SIPp's own (noise in the traces)
        "-default_behaviors", "all,-bye"]


def sipp_transport(transport):
    return ["-t", "u1" if transport == "udp" else "t1"]


def sipp_wait(run, p, name, seconds):
    try:
        rc = p.wait(seconds)
    except subprocess.TimeoutExpired:
        raise Failure("SIPp %s still running after %d s" % (name, seconds))
    stats = sipp_stats(run, name)
    print("SIPp %s: %s, exit %d" % (name, stats, rc))
    return rc, stats


def sipp_errors(run, name):
    """A summary of SIPp's error log: how many of each kind of event (with the first
    line of the message it was about), then the first event in full."""
    text = read(run, name + ".errors")
    events = re.split(r"\n?(?=\d{4}-\d\d-\d\d\t[\d:.]+\t[\d.]+: )", text)
    events = [e.split(": ", 1)[1] for e in events if re.match(r"\d{4}-\d\d-\d\d\t", e)]
    if not events:
        return text[-2000:]
    kinds = {}
    for e in events:
        k = re.sub(r"'[^']*@[^']*'", "'…'", e.split("\n", 1)[0])
        kinds[k] = kinds.get(k, 0) + 1
    out = ["SIPp %s reported %d events:" % (name, len(events))]
    out += ["  %d × %s" % (n, k) for k, n in sorted(kinds.items(), key=lambda x: -x[1])[:6]]
    out.append("the first one:\n" + events[0].strip()[:1500])
    return "\n".join(out)


def expect_calls(run, name, rc, stats, calls):
    errors = sipp_errors(run, name)
    check(stats["SuccessfulCall(C)"] == calls and stats["FailedCall(C)"] == 0
          and stats["TotalCallCreated"] == calls,
          "SIPp %s: %s, want %d successful calls and none failed\n%s" %
          (name, stats, calls, errors))
    check(rc == 0, "SIPp %s exit status %d\n%s" % (name, rc, errors))


def sipp_register(run, registrar, transport, user, password, domain, contact, name="register"):
    """SIPp registers contact for user@domain at registrar (host, port), with digest when
    challenged (proxy_register.xml)."""
    _, inf = write_users(run, name, [(user, password or "-")])
    args = ["%s:%d" % registrar, "-sf", os.path.join(HERE, "proxy_register.xml"),
            "-inf", inf, "-key", "domain", domain, "-key", "contact", contact,
            "-p", str(free_port(CALLEE_HOST)), "-m", "1"] + sipp_transport(transport)
    p = run.spawn(sipp_cmd(run, name, CALLEE_HOST, args, 30), name)
    rc, stats = sipp_wait(run, p, name, 60)
    expect_calls(run, name, rc, stats, 1)


# SIPp gives up after 5 retransmissions by default (about 11 s): with loss, as
# long as a SIP transaction (Timer B/F, 32 s) instead.
PATIENT = ["-max_retrans", "15", "-max_invite_retrans", "15", "-max_non_invite_retrans", "15"]


def start_uas(run, scenario, transport, calls, hold_ms=0, lost=0, name="uas"):
    """A SIPp callee on CALLEE_HOST; returns (process, port)."""
    port = free_port(CALLEE_HOST)
    args = ["-sf", os.path.join(HERE, scenario), "-p", str(port), "-m", str(calls),
            "-d", str(hold_ms)] + sipp_transport(transport)
    if lost:
        args += ["-lost", str(lost)] + PATIENT
    p = run.spawn(sipp_cmd(run, name, CALLEE_HOST, args, 240), name)
    wait_bound(CALLEE_HOST, port, transport, p)
    return p, port


def contact_of(port, transport, user="callee", host=CALLEE_HOST):
    uri = "sip:%s@%s:%d" % (user, host, port)
    return uri + ";transport=tcp" if transport == "tcp" else uri


def run_uac(run, scenario, target, transport, inf, domain, callee, calls, rate, limit,
            hold_ms, seconds, name="uac", extra=()):
    """A SIPp caller on CALLER_HOST sending to target (host, port); the digest uri is the
    Request-URI, sip:CALLEE (-auth_uri)."""
    args = ["%s:%d" % target, "-sf", os.path.join(HERE, scenario), "-inf", inf,
            "-key", "domain", domain, "-key", "callee", callee, "-auth_uri", callee,
            "-p", str(free_port(CALLER_HOST)), "-m", str(calls), "-r", str(rate),
            "-l", str(limit), "-d", str(hold_ms)] + sipp_transport(transport) + list(extra)
    p = run.spawn(sipp_cmd(run, name, CALLER_HOST, args, seconds), name)
    return sipp_wait(run, p, name, seconds + 30)


# ---------------------------------------------------------------------------
# SIP messages

COMPACT = {"m": "contact", "i": "call-id", "v": "via", "f": "from", "t": "to",
           "l": "content-length", "c": "content-type", "k": "supported", "r": "refer-to"}


def split_commas(value):
    """Splits a header value at the commas outside quotes and <>."""
    out, cur, quoted, angle = [], "", False, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            angle = True
        elif not quoted and ch == ">":
            angle = False
        elif ch == "," and not quoted and not angle:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


class Msg:
    """A SIP message: start line, headers (lowercase long names, in order)."""

    def __init__(self, data, direction=None):
        self.direction = direction
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        data = data.replace("\r\n", "\n")
        head = data.split("\n\n", 1)[0]
        head = re.sub(r"\n[ \t]+", " ", head)
        lines = head.split("\n")
        self.start = lines[0].strip()
        self.headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                name = name.strip().lower()
                self.headers.append((COMPACT.get(name, name), value.strip()))
        parts = self.start.split(" ", 2) + ["", ""]
        self.status = int(parts[1]) if parts[0] == "SIP/2.0" and parts[1].isdigit() else None
        self.method = None if self.status else parts[0]
        cseq = (self.get("cseq") or "").split()
        self.cseq_method = cseq[-1] if cseq else None

    def get(self, name):
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def all(self, name):
        out = []
        for n, v in self.headers:
            if n == name:
                out += split_commas(v)
        return out

    def top_via(self):
        vias = self.all("via")
        m = re.match(r"SIP/2\.0/([A-Za-z]+)\s+([^;\s]+)", vias[0]) if vias else None
        return (m.group(1).upper(), m.group(2)) if m else (None, None)

    def __str__(self):
        return self.start


def sipp_trace(run, name):
    """What SIPp sent and received (its -trace_msg log), as Msg objects with direction
    "sent" or "received", in order."""
    text = read(run, name + ".msg")
    out = []
    for block in re.split(r"\n?-{20,} [^\n]*\n", text):
        m = re.match(r"(?:UDP|TCP) message (sent|received) [\[(]\d+[\])] bytes ?:\n\n(.*)",
                     block, re.S)
        if m and m.group(2).strip():
            out.append(Msg(m.group(2), m.group(1)))
    return out


def uri_hostport(value):
    """(host, port or None, params) of the URI in a name-addr or addr-spec."""
    uri = value[value.index("<") + 1:value.index(">")] if "<" in value else value
    m = re.match(r"sips?:(?:[^@;]*@)?(\[[^\]]*\]|[^:;?>]+)(?::(\d+))?([^?>]*)", uri)
    if not m:
        return None, None, ""
    return m.group(1).lower(), int(m.group(2)) if m.group(2) else None, m.group(3)


def is_csipd(value, addr):
    host, port, _ = uri_hostport(value)
    return host == addr[0] and port == addr[1]


# ---------------------------------------------------------------------------
# Dialog checks


def check_record_route(trace, who, csipd_addr, transport, calls):
    """In each call, the first dialog-creating message who received (the 200 to the
    INVITE for the caller, the INVITE for the callee) has csipd's Record-Route."""
    firsts = {}
    for m in trace:
        if m.direction == "received" and (
                (m.status == 200 and m.cseq_method == "INVITE") or
                (m.method == "INVITE" and not re.search(r";\s*tag=", m.get("to") or ""))):
            firsts.setdefault(m.get("call-id"), m)
    check(len(firsts) == calls, "%s received an INVITE or its 200 in %d calls, want %d" %
          (who, len(firsts), calls))
    for cid, m in firsts.items():
        rr = m.all("record-route")
        mine = [v for v in rr if is_csipd(v, csipd_addr)]
        check(mine, "%s: %s of call %s has no Record-Route of csipd (%s:%d): %s" %
              (who, m.start, cid, csipd_addr[0], csipd_addr[1], rr))
        _, _, params = uri_hostport(mine[0])
        check(re.search(r";lr(?:[;=]|$)", params, re.I),
              "%s: csipd's Record-Route %s lacks lr (RFC 3261 section 16.6 step 4)" %
              (who, mine[0]))
        if transport == "tcp":
            check(re.search(r";transport=tcp", params, re.I),
                  "%s: csipd's Record-Route %s, reached over TCP, does not say transport=tcp" %
                  (who, mine[0]))


def check_in_dialog(trace, who, csipd_addr, methods, calls):
    """Each of methods (in-dialog requests) reached who through csipd once per call:
    its top Via is csipd's, and the request carries no Route of csipd any more."""
    got = {}
    for m in trace:
        if m.direction != "received" or m.method not in methods:
            continue
        if m.method == "INVITE" and not re.search(r";\s*tag=", m.get("to") or ""):
            continue  # the initial INVITE
        _, sent_by = m.top_via()
        check(sent_by == "%s:%d" % csipd_addr,
              "%s received %s %s with top Via %s, not csipd's %s:%d" %
              (who, m.method, m.get("call-id"), sent_by, csipd_addr[0], csipd_addr[1]))
        stale = [v for v in m.all("route") if is_csipd(v, csipd_addr)]
        check(not stale, "%s received %s with csipd's own Route still in it: %s" %
              (who, m.method, stale))
        got.setdefault(m.method, set()).add(m.get("call-id"))
    for method in methods:
        n = len(got.get(method, ()))
        check(n == calls, "%s received an in-dialog %s through csipd in %d calls, want %d" %
              (who, method, n, calls))
    print("%s: %s of each of %d calls came through csipd" % (who, ", ".join(methods), calls))


def check_log(run, want):
    """csipd's log has a proxied line for each (method, status): count of want. A line
    comes when the request's server transaction ends: 32 s after a 2xx to an INVITE
    (Timer L, RFC 6026), and over UDP 32 s after any other final response (Timer J)."""
    count = wait_proxied(run, want, 45)
    print("csipd's log, proxied requests: %s" %
          ", ".join("%s %d: %d" % (k[0], k[1], v) for k, v in sorted(count.items())))
    for (method, status), n in sorted(want.items()):
        check(count.get((method, status), 0) >= n,
              "csipd's log shows %d %s proxied with %d, want %d" %
              (count.get((method, status), 0), method, status, n))


# ---------------------------------------------------------------------------
# Cases: calls through csipd


def setup_a(run, transport, callers=CALLERS, opts=()):
    """csipd for a.test with the callers and the callee "callee" as users."""
    db = ["--db", run.path("db/csipd.db"), "-d", "a.test"]
    imp, inf = write_users(run, "callers", callers)
    csipd_cli(run, db, ["user", "import", imp])
    csipd_cli(run, db, ["user", "add", "callee", "callee-secret"])
    srv = start_csipd(run, db + SIPP_ALGS + list(opts))
    return srv, srv.csip_addrs[transport], inf


def calls(run, transport, n=200, rate=50, limit=100):
    srv, addr, inf = setup_a(run, transport)
    uas, port = start_uas(run, "proxy_uas.xml", transport, n)
    sipp_register(run, addr, transport, "callee", "callee-secret", "a.test",
                  contact_of(port, transport))
    rc, stats = run_uac(run, "proxy_uac.xml", addr, transport, inf, "a.test", "callee@a.test",
                        n, rate, limit, 1000, 120)
    expect_alive(run, srv)  # first: a crash explains the calls that failed
    expect_calls(run, "uac", rc, stats, n)
    rc, stats = sipp_wait(run, uas, "uas", 60)
    expect_calls(run, "uas", rc, stats, n)
    trace = sipp_trace(run, "uac")
    challenged = [m for m in trace if m.status == 407]
    check(len(set(m.get("call-id") for m in challenged)) == n,
          "%d calls challenged with 407, want every one of %d" % (len(challenged), n))
    check_record_route(trace, "the caller", addr, transport, n)
    expect_alive(run, srv)
    stop_csipd(run, srv)


def case_calls_udp(run):
    calls(run, "udp")


def case_calls_tcp(run):
    calls(run, "tcp")


def dialog(run, transport, who, n=10, host=CALLEE_HOST):
    """who = "caller" or "callee": the side that sends re-INVITE, UPDATE and BYE."""
    srv, addr, inf = setup_a(run, transport)
    if who == "caller":
        uac_sf, uas_sf, uac_hold, uas_hold = ("proxy_uac_reinvite.xml", "proxy_uas_reinvite.xml",
                                              200, 0)
    else:
        uac_sf, uas_sf, uac_hold, uas_hold = ("proxy_uac_callee_bye.xml",
                                              "proxy_uas_callee_bye.xml", 0, 200)
    port = free_port(host)
    args = ["-sf", os.path.join(HERE, uas_sf), "-p", str(port), "-m", str(n),
            "-d", str(uas_hold)] + sipp_transport(transport)
    uas = run.spawn(sipp_cmd(run, "uas", host, args, 120), "uas")
    wait_bound(host, port, transport, uas)
    sipp_register(run, addr, transport, "callee", "callee-secret", "a.test",
                  contact_of(port, transport, host=host))
    rc, stats = run_uac(run, uac_sf, addr, transport, inf, "a.test", "callee@a.test", n, 5, 10,
                        uac_hold, 45)
    expect_alive(run, srv)  # first: a crash explains the calls that failed
    expect_calls(run, "uac", rc, stats, n)
    rc, stats = sipp_wait(run, uas, "uas", 60)
    expect_calls(run, "uas", rc, stats, n)
    uac_trace, uas_trace = sipp_trace(run, "uac"), sipp_trace(run, "uas")
    check_record_route(uac_trace, "the caller", addr, transport, n)
    check_record_route(uas_trace, "the callee", addr, transport, n)
    methods = ["ACK", "INVITE", "UPDATE", "BYE"]
    if who == "caller":
        check_in_dialog(uas_trace, "the callee", addr, methods, n)
    else:
        check_in_dialog(uac_trace, "the caller", addr, ["INVITE", "UPDATE", "BYE"], n)
        check_in_dialog(uas_trace, "the callee", addr, ["ACK"], n)
    # ACK is forwarded statelessly (no line); the rest each have theirs.
    check_log(run, {("INVITE", 200): 2 * n, ("UPDATE", 200): n, ("BYE", 200): n})
    expect_alive(run, srv)
    stop_csipd(run, srv)


def case_caller_dialog_udp(run):
    dialog(run, "udp", "caller")


def case_caller_dialog_tcp(run):
    dialog(run, "tcp", "caller")


def case_callee_dialog_udp(run):
    dialog(run, "udp", "callee")


def case_callee_dialog_tcp(run):
    dialog(run, "tcp", "callee")


def case_same_host_udp(run):
    """The callee on csipd's own address, another port (RFC 3261 section 16.4: the
    Request-URI names another port, so it is not csipd's to locate): a caller dialog."""
    dialog(run, "udp", "caller", n=3, host=CSIPD_HOST)


def uas_without_180(run):
    """proxy_uas.xml without its 180: SIPp answers a retransmitted request by sending
    again only the first message it sent after receiving it, so a callee that sends
    180 then 200 cannot answer a retransmitted INVITE (a lost 200) with its 200."""
    with open(os.path.join(HERE, "proxy_uas.xml")) as f:
        text = f.read()
    start = text.index("  <send>\n    <![CDATA[\n\n      SIP/2.0 180 Ringing")
    end = text.index("  <send", start + 1)
    path = run.path("proxy_uas_no180.xml")
    with open(path, "w") as f:
        f.write(text[:start] + text[end:])
    return path


def case_lossy_callee_udp(run, n=20, lost=20):
    srv, addr, inf = setup_a(run, "udp")
    # The callee keeps each call 32 s after its 200 to the BYE, to answer the BYE's
    # retransmissions as a UAS does (Timer J, RFC 3261 section 17.2.2): csipd goes on
    # retransmitting until a 200 gets through, for up to 32 s (Timer F).
    uas, port = start_uas(run, uas_without_180(run), "udp", n, hold_ms=32000, lost=lost)
    sipp_register(run, addr, "udp", "callee", "callee-secret", "a.test", contact_of(port, "udp"))
    # Calls held 3 s, so that a lost ACK is retransmitted (the 200 again) before the BYE.
    start = time.time()
    rc, stats = run_uac(run, "proxy_uac.xml", addr, "udp", inf, "a.test", "callee@a.test", n, 2,
                        n, 3000, 150, extra=PATIENT)
    expect_alive(run, srv)  # first: a crash explains the calls that failed
    expect_calls(run, "uac", rc, stats, n)
    rc, ustats = sipp_wait(run, uas, "uas", 120)
    expect_calls(run, "uas", rc, ustats, n)
    # Loss happened: csipd retransmitted INVITEs, or the callee its 200s.
    received = [m for m in sipp_trace(run, "uas") if m.direction == "received"]
    invites = [m for m in received if m.method == "INVITE"]
    print("%d calls in %.0f s; the callee received %d INVITEs and retransmitted %d times" %
          (n, time.time() - start, len(invites), ustats["Retransmissions(C)"]))
    check(len(invites) > n or ustats["Retransmissions(C)"] > 0,
          "no retransmission towards or from the callee with %d %% loss" % lost)
    expect_alive(run, srv)
    stop_csipd(run, srv)


# ---------------------------------------------------------------------------
# DNS and Kamailio


def start_dnsmasq(run, records):
    """dnsmasq on CSIPD_HOST, a free port, authoritative for .test; returns its port."""
    exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    check(os.path.exists(exe), "dnsmasq not found: install the Debian package dnsmasq-base")
    for _ in range(5):
        port = free_port(CSIPD_HOST)
        cmd = [exe, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
               "--bind-interfaces", "--listen-address=" + CSIPD_HOST, "--port=%d" % port,
               "--log-facility=-", "--log-queries", "--pid-file=", "--cache-size=0",
               "--local=/test/"] + list(records)
        if os.geteuid() == 0:
            cmd.append("--user=root")  # otherwise it switches to nobody
        p = run.spawn(cmd, "dnsmasq")
        try:
            wait_bound(CSIPD_HOST, port, "udp", p, 5)
            return port
        except Failure:
            if p.poll() is None:
                raise
    raise Failure("dnsmasq did not start:\n%s" % read(run, "dnsmasq.err")[-2000:])


def start_kamailio(run, port, csipd_addr):
    exe = shutil.which("kamailio") or "/usr/sbin/kamailio"
    check(os.path.exists(exe), "kamailio not found: install the Debian package kamailio "
          "(make check does)")
    rundir = run.path("kamailio")
    os.makedirs(rundir, exist_ok=True)
    cmd = [exe, "-DD", "-E", "-f", os.path.join(HERE, "proxy_kamailio.cfg"),
           "-l", "udp:%s:%d" % (KAMAILIO_HOST, port), "-Y", rundir,
           "-P", os.path.join(rundir, "kamailio.pid"), "-w", rundir, "-m", "32", "-M", "4",
           "-A", 'CSIPD="sip:%s:%d"' % csipd_addr]
    err = open(run.path("kamailio.err"), "w")
    # Its own process group: the workers it forks can be found again by it.
    p = subprocess.Popen(cmd, cwd=run.dir, stdout=err, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    p.csip_name = "kamailio"
    run.procs.append(p)
    wait_bound(KAMAILIO_HOST, port, "udp", p, 20)
    return p


def stop_kamailio(run, p):
    """SIGTERM to Kamailio's main process; its workers go with it. Whatever is left of
    its process group (its own, started here) is killed."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kamailio_setup(run):
    kport = free_port(KAMAILIO_HOST)
    dport = start_dnsmasq(run, ["--address=/b.test/%s" % KAMAILIO_HOST,
                                "--srv-host=_sip._udp.b.test,b.test,%d" % kport])
    srv, addr, inf = setup_a(run, "udp", opts=["--dns-servers", "%s:%d" % (CSIPD_HOST, dport)])
    kam = start_kamailio(run, kport, addr)
    return srv, addr, inf, kam, (KAMAILIO_HOST, kport)


def kamailio_requests(run):
    """Kamailio's log lines of the requests it saw (its xlog line)."""
    return [line for line in read(run, "kamailio.err").splitlines() if "proxy.py: " in line]


def case_kamailio_a_to_b(run, n=10):
    srv, addr, inf, kam, kaddr = kamailio_setup(run)
    try:
        uas, port = start_uas(run, "proxy_uas.xml", "udp", n)
        # The callee registers at Kamailio (no digest there) as bob@b.test.
        sipp_register(run, kaddr, "udp", "bob", None, "b.test", contact_of(port, "udp", "bob"))
        rc, stats = run_uac(run, "proxy_uac.xml", addr, "udp", inf, "a.test", "bob@b.test", n, 5,
                            10, 500, 90)
        expect_alive(run, srv)  # first: a crash explains the calls that failed
        expect_calls(run, "uac", rc, stats, n)
        rc, stats = sipp_wait(run, uas, "uas", 60)
        expect_calls(run, "uas", rc, stats, n)
        trace = sipp_trace(run, "uac")
        check_record_route(trace, "the caller", addr, "udp", n)
        for m in trace:
            if m.status == 200 and m.cseq_method == "INVITE":
                rr = m.all("record-route")
                check(any(is_csipd(v, kaddr) for v in rr),
                      "the 200 has no Record-Route of Kamailio: %s" % rr)
        uas_trace = sipp_trace(run, "uas")
        for m in uas_trace:
            if m.direction == "received" and m.method in ("INVITE", "BYE"):
                vias = [v.split(";")[0].split()[-1] for v in m.all("via")]
                check(len(vias) == 3 and vias[0] == "%s:%d" % kaddr and
                      vias[1] == "%s:%d" % addr,
                      "the callee received %s with Vias %s, want Kamailio's, csipd's, the "
                      "caller's" % (m.method, vias))
        lines = kamailio_requests(run)
        check(sum(" BYE " in x for x in lines) >= n,
              "Kamailio's log shows %d BYEs, want %d" % (sum(" BYE " in x for x in lines), n))
        dns = read(run, "dnsmasq.err") + read(run, "dnsmasq.out")
        check("query[SRV] _sip._udp.b.test" in dns,
              "csipd did not ask the DNS server for _sip._udp.b.test:\n%s" % dns[-1500:])
        expect_alive(run, srv)
        stop_csipd(run, srv)
    finally:
        stop_kamailio(run, kam)


def case_kamailio_b_to_a(run, n=10):
    srv, addr, inf, kam, kaddr = kamailio_setup(run)
    try:
        uas, port = start_uas(run, "proxy_uas.xml", "udp", n)
        sipp_register(run, addr, "udp", "callee", "callee-secret", "a.test",
                      contact_of(port, "udp"))
        # carol@b.test, a user of Kamailio's domain: no digest anywhere.
        _, binf = write_users(run, "carol", [("carol", "unused")])
        rc, stats = run_uac(run, "proxy_uac.xml", kaddr, "udp", binf, "b.test",
                            "callee@a.test", n, 5, 10, 500, 90)
        expect_alive(run, srv)  # first: a crash explains the calls that failed
        expect_calls(run, "uac", rc, stats, n)
        rc, stats = sipp_wait(run, uas, "uas", 60)
        expect_calls(run, "uas", rc, stats, n)
        trace = sipp_trace(run, "uac")
        check(not [m for m in trace if m.status in (401, 407)],
              "a caller of another domain was challenged")
        check_record_route(trace, "the caller", addr, "udp", n)
        uas_trace = sipp_trace(run, "uas")
        check_in_dialog(uas_trace, "the callee", addr, ["ACK", "BYE"], n)
        expect_alive(run, srv)
        stop_csipd(run, srv)
    finally:
        stop_kamailio(run, kam)


# ---------------------------------------------------------------------------
# No open relay


def digest(ch, user, password, method, uri):
    """A Proxy-Authorization value for a challenge (dict), MD5 or SHA-256, qop=auth."""
    alg = ch.get("algorithm", "MD5").upper()
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[alg]

    def H(s):
        return h(s.encode()).hexdigest()

    cnonce = "%016x" % random.getrandbits(64)
    ha1 = H("%s:%s:%s" % (user, ch["realm"], password))
    ha2 = H("%s:%s" % (method, uri))
    resp = H("%s:%s:00000001:%s:auth:%s" % (ha1, ch["nonce"], cnonce, ha2))
    parts = ['username="%s"' % user, 'realm="%s"' % ch["realm"], 'nonce="%s"' % ch["nonce"],
             'uri="%s"' % uri, "algorithm=%s" % alg, "qop=auth", "nc=00000001",
             'cnonce="%s"' % cnonce, 'response="%s"' % resp]
    if "opaque" in ch:
        parts.append('opaque="%s"' % ch["opaque"])
    return "Digest " + ", ".join(parts)


def challenges(msg):
    out = []
    for v in [v for n, v in msg.headers if n == "proxy-authenticate"]:
        scheme, _, rest = v.partition(" ")
        ch = {"scheme": scheme}
        for k, val in re.findall(r'([A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)', rest):
            ch[k.lower()] = val.strip('"')
        out.append(ch)
    return out


class Client:
    """A UDP user agent client on CALLER_HOST sending INVITEs to csipd."""

    def __init__(self, server):
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((CALLER_HOST, 0))
        self.addr = self.sock.getsockname()

    def close(self):
        self.sock.close()

    def invite(self, ruri, from_uri, call_id, cseq, tag, extra=()):
        branch = "z9hG4bK%016x" % random.getrandbits(64)
        lines = ["INVITE %s SIP/2.0" % ruri,
                 "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (self.addr[0], self.addr[1], branch),
                 "Max-Forwards: 70", "From: <%s>;tag=%s" % (from_uri, tag), "To: <%s>" % ruri,
                 "Call-ID: %s" % call_id, "CSeq: %d INVITE" % cseq,
                 "Contact: <sip:caller@%s:%d>" % self.addr] + list(extra) + ["Content-Length: 0"]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return self.transact(data, branch)

    def transact(self, data, branch, seconds=10):
        """Sends, retransmits (T1 doubling) until a final response with the branch."""
        self.sock.sendto(data, self.server)
        deadline, interval = time.time() + seconds, 0.5
        resend = time.time() + interval
        while time.time() < deadline:
            r, _, _ = select.select([self.sock], [], [],
                                    max(0.0, min(resend, deadline) - time.time()))
            if r:
                msg = Msg(self.sock.recv(65535))
                vias = msg.all("via")
                if msg.status and msg.status >= 200 and vias and branch in vias[0]:
                    return msg
            elif time.time() >= resend:
                self.sock.sendto(data, self.server)
                interval = min(2 * interval, 4.0)
                resend = time.time() + interval
        raise Failure("no final response in %d s to %s" %
                      (seconds, data.split(b"\r\n", 1)[0].decode()))

    def ack(self, ruri, resp, cseq):
        """The ACK of a non-2xx final response (same branch)."""
        via = resp.all("via")[0]
        lines = ["ACK %s SIP/2.0" % ruri, "Via: " + via, "Max-Forwards: 70",
                 "From: " + resp.get("from"), "To: " + resp.get("to"),
                 "Call-ID: " + resp.get("call-id"), "CSeq: %d ACK" % cseq, "Content-Length: 0"]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), self.server)


class BServer:
    """b.test's server in no_open_relay: a UDP socket on B_SERVER_HOST, in a thread,
    keeping what reaches it and answering 486 to each INVITE (through its Vias)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((B_SERVER_HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.reached = []
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            data, src = self.sock.recvfrom(65535)
            m = Msg(data)
            self.reached.append(m)
            if m.method == "INVITE":
                lines = ["SIP/2.0 486 Busy Here"] + ["Via: " + v for v in m.all("via")] + [
                    "From: " + m.get("from"), "To: %s;tag=b1" % m.get("to"),
                    "Call-ID: " + m.get("call-id"), "CSeq: " + m.get("cseq"),
                    "Content-Length: 0"]
                self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), src)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def case_no_open_relay(run):
    b = BServer()
    dport = start_dnsmasq(run, ["--address=/b.test/%s" % B_SERVER_HOST,
                                "--srv-host=_sip._udp.b.test,b.test,%d" % b.port])
    user, password = CALLERS[0]
    srv, addr, _ = setup_a(run, "udp", opts=["--dns-servers", "%s:%d" % (CSIPD_HOST, dport)])
    c = Client(addr)
    ruri = "sip:bob@b.test"
    try:
        # 1. One of csipd's users, without credentials: 407 (RFC 3261 section 22.3).
        cid = "%x@relay" % random.getrandbits(48)
        resp = c.invite(ruri, "sip:%s@a.test" % user, cid, 1, "t1")
        print("INVITE %s from %s@a.test, no credentials -> %s" % (ruri, user, resp.start))
        check(resp.status == 407, "an INVITE for b.test without credentials: %s, want 407" %
              resp.start)
        chs = challenges(resp)
        check(chs and all(ch.get("realm") == "a.test" for ch in chs),
              "the 407 has no Proxy-Authenticate for realm a.test: %s" % chs)
        md5 = [ch for ch in chs if ch.get("algorithm", "MD5").upper() == "MD5"]
        check(md5, "no MD5 challenge in the 407: %s" % chs)
        c.ack(ruri, resp, 1)
        # 2. A caller of another domain: 403 (csipd is no open relay), even with valid
        #    credentials of one of csipd's users.
        for from_uri in ("sip:mallory@c.test", "sip:carol@b.test"):
            auth = digest(md5[0], user, password, "INVITE", ruri)
            resp2 = c.invite(ruri, from_uri, "%x@relay" % random.getrandbits(48), 1, "t2",
                             ["Proxy-Authorization: " + auth])
            print("INVITE %s from %s -> %s" % (ruri, from_uri, resp2.start))
            check(resp2.status == 403, "an INVITE for b.test from %s: %s, want 403" %
                  (from_uri, resp2.start))
            c.ack(ruri, resp2, 1)
        time.sleep(1.0)
        check(not b.reached, "b.test's server received %s" % [str(m) for m in b.reached])
        # 3. With credentials: csipd finds b.test (SRV) and forwards; the 486 comes back.
        auth = digest(md5[0], user, password, "INVITE", ruri)
        resp = c.invite(ruri, "sip:%s@a.test" % user, cid, 2, "t1",
                        ["Proxy-Authorization: " + auth])
        print("INVITE %s from %s@a.test with credentials -> %s" % (ruri, user, resp.start))
        invites = [m for m in b.reached if m.method == "INVITE"]
        check(invites, "an authenticated INVITE for b.test did not reach b.test's server "
              "(%s:%d, SRV of _sip._udp.b.test); csipd answered %s" %
              (B_SERVER_HOST, b.port, resp.start))
        check(resp.status == 486, "the 486 of b.test came back as %s" % resp.start)
        c.ack(ruri, resp, 2)
    finally:
        c.close()
        b.close()
    expect_alive(run, srv)
    stop_csipd(run, srv)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csipd", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the case's files")
    ap.add_argument("case")
    args = ap.parse_args()
    args.csipd = os.path.abspath(args.csipd)
    fn = globals().get("case_" + args.case)
    if not fn:
        print("unknown case", args.case)
        return 2
    run = Run(args)
    ok = False
    try:
        fn(run)
        ok = True
    except Failure as e:
        print("FAIL %s: %s" % (args.case, e))
    finally:
        for p in run.procs:
            if getattr(p, "csip_name", "") == "kamailio":
                stop_kamailio(run, p)
        run.cleanup(keep=args.keep or not ok)
    print("%d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
