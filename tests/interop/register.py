#!/usr/bin/env python3
"""Tests of `csip register` against SIPp registrar scenarios, on loopback.

Each case starts its own processes (SIPp, the csip tool) on free loopback
ports, bounds every wait and stops only the processes it started, by their
PID. What csip sent is read from SIPp's message log and checked: digest
answers recomputed here (RFC 7616), CSeq, Call-ID, nonce counts, Expires.

    register.py --csip PATH [--csipd PATH] CASE

Cases:
  register_usage                 bad arguments exit 2 without sending anything
  register_sipp_udp, register_sipp_tcp
                                 401 (SHA-256 then MD5 offered), 200 granting 6 s,
                                 the refresh, SIGINT: the removal (Expires: 0)
  register_sipp_auth             407 offering MD5 first, 401, a stale=true 401, a
                                 423 with Min-Expires, then 200 (--once)
  register_sipp_refused          a second 401 with the same nonce: exit 1
  register_sipp_refused_new_nonce  a second 401 with a new nonce right after
                                 answering a fresh one (stateless nonces): exit 1
  register_timeout               nothing answers: exit 1 within --timeout
  register_csipd                 csipd (when built): user add, register --once
                                 twice (the 200 lists the bindings), a run that
                                 gets a 423 and refreshes, then SIGINT (the binding
                                 is gone), a wrong password
  register_csipd_tls             csipd over TLS, the certificate checked

Prints "1 passed, 0 failed" or the reason of the failure (exit status 1).
"""
import argparse
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from interop import (Failure, check, expect_calls, free_port, make_cert,  # noqa: E402
                     run_case, sipp_cmd, wait_bound, wait_sipp)

PASSWORD = "s3cret pass"


# ---------------------------------------------------------------------------
# Helpers


def scenario(run, name, **subst):
    """A scenario of this directory with its placeholders replaced."""
    with open(os.path.join(HERE, name)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace(k, v)
    path = run.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def start_sipp(run, xml, transport, seconds=60):
    port = free_port()
    args = ["-sf", xml, "-p", str(port), "-m", "1", "-t", "u1" if transport == "udp" else "t1",
            "-trace_msg", "-message_file", run.path("sipp.msg")]
    p = run.spawn(sipp_cmd(run, "sipp", args, seconds), "sipp")
    wait_bound(port, transport, p)
    return p, port


def csip_register(run, args, seconds=60):
    cmd = [run.args.csip, "register"] + args
    try:
        r = subprocess.run(cmd, cwd=run.dir, capture_output=True, text=True, timeout=seconds,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failure("csip register did not finish in %d s" % seconds)
    print("$ csip register %s  -> exit %d" % (" ".join(args), r.returncode))
    sys.stdout.write(r.stdout)
    if r.stderr:
        sys.stdout.write(r.stderr)
    return r.returncode, r.stdout, r.stderr


def wait_output(run, name, proc, pattern, count, seconds):
    """Waits until pattern occurs count times in the process's output."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        out = run.log(name)
        if out.count(pattern) >= count:
            return out
        check(proc.poll() is None, "%s exited (%s) before %d x %r:\n%s"
              % (name, proc.returncode, count, pattern, out))
        time.sleep(0.05)
    raise Failure("no %d x %r from %s within %d s:\n%s"
                  % (count, pattern, name, seconds, run.log(name)))


def stop_with(proc, sig, seconds=20):
    proc.send_signal(sig)
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not end within %d s of signal %d" % (proc.csip_name, seconds, sig))


class Msg:
    """A SIP message as SIPp logged it: start line and (name, value) headers."""

    def __init__(self, text):
        head = text.split("\n\n", 1)[0].replace("\r", "")
        lines = head.split("\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + " " + line.strip())
            elif ":" in line:
                n, v = line.split(":", 1)
                self.headers.append((n.strip().lower(), v.strip()))

    def all(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def get(self, name):
        v = self.all(name)
        return v[0] if v else None


def received_requests(run):
    """The requests SIPp received, in order, retransmissions dropped."""
    try:
        with open(run.path("sipp.msg"), errors="replace") as f:
            log = f.read()
    except OSError:
        raise Failure("SIPp wrote no message log")
    msgs, seen = [], set()
    for block in re.split(r"^-{20,}.*$", log, flags=re.M):
        m = re.match(r"\s*\w+ message received \[\d+\] bytes :\n\n", block)
        if not m:
            continue
        msg = Msg(block[m.end():])
        if msg.start.startswith("SIP/2.0"):
            continue
        key = msg.get("via")
        if key in seen:
            continue
        seen.add(key)
        msgs.append(msg)
    return msgs


def auth_params(value):
    check(value.startswith("Digest "), "not Digest credentials: %r" % value)
    params = {}
    for m in re.finditer(r'(\w+)=("((?:[^"\\]|\\.)*)"|[^,\s]+)', value[7:]):
        params[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return params


HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def check_digest(value, user, realm, alg, nonce, nc, uri, method="REGISTER"):
    """Checks credentials answering (realm, nonce, alg) with qop=auth and the
    nonce count nc; recomputes the response (RFC 7616 §3.4.1)."""
    p = auth_params(value)
    for k, want in (("username", user), ("realm", realm), ("nonce", nonce), ("uri", uri),
                    ("algorithm", alg), ("qop", "auth"), ("nc", "%08x" % nc)):
        check(p.get(k) == want, "%s is %r, want %r in %s" % (k, p.get(k), want, value))
    check(re.fullmatch(r"[0-9a-f]{32}", p.get("cnonce", "")), "cnonce %r" % p.get("cnonce"))
    h = HASHES[alg]

    def hx(s):
        return h(s.encode()).hexdigest()

    ha1 = hx("%s:%s:%s" % (user, realm, PASSWORD))
    ha2 = hx("%s:%s" % (method, uri))
    want = hx("%s:%s:%s:%s:auth:%s" % (ha1, nonce, p["nc"], p["cnonce"], ha2))
    check(p.get("response") == want, "wrong digest response in %s" % value)
    return p


def check_dialog(reqs, first_cseq=1):
    """One Call-ID and From tag, CSeq going up by one (RFC 3261 §10.2.4)."""
    check(len({r.get("call-id") for r in reqs}) == 1, "the Call-ID changed")
    check(len({r.get("from") for r in reqs}) == 1, "the From changed")
    for i, r in enumerate(reqs):
        check(r.start.startswith("REGISTER "), "not a REGISTER: %r" % r.start)
        check(r.get("cseq") == "%d REGISTER" % (first_cseq + i),
              "request %d has CSeq %r" % (i + 1, r.get("cseq")))


# ---------------------------------------------------------------------------
# Cases


def case_register_usage(run):
    for args, what in (([], "no AOR"),
                       (["alice@example.com"], "not a URI"),
                       (["sip:alice@localhost", "--expires", "0"], "zero expiry"),
                       (["sip:alice@localhost", "--expires", "12x"], "bad expiry"),
                       (["sip:alice@localhost", "--transport", "sctp"], "transport"),
                       (["sip:alice@localhost", "--registrar", "mailto:x@y"], "registrar"),
                       (["sip:localhost"], "no user"),
                       (["sip:alice@localhost", "--contact-host", "a;b"], "contact host"),
                       (["sip:alice@localhost", "--bogus"], "unknown option")):
        rc, out, err = csip_register(run, args, 20)
        check(rc == 2, "%s: exit %d, want 2" % (what, rc))
        check(out == "" and err != "", "%s: message on stderr only" % what)
    rc, out, _ = csip_register(run, ["--help"], 20)
    check(rc == 0 and "--password" in out, "register --help")


def register_sipp(run, transport):
    nonce = "a7f3c0de%d" % os.getpid()
    p, port = start_sipp(run, scenario(run, "uas_register.xml", NONCE=nonce), transport)
    registrar = "sip:127.0.0.1:%d" % port
    if transport == "tcp":
        registrar += ";transport=tcp"
    cmd = [run.args.csip, "register", "sip:alice@sipp.test", "--registrar", registrar,
           "--password", PASSWORD, "--expires", "300", "--timeout", "20"]
    c = run.spawn(cmd, "csip")
    # 200 granting 6 s: the refresh goes 1 s later (5 s before the end).
    out = wait_output(run, "csip", c, "registered:", 2, 30)
    check("for 6 s, refresh in 1.000 s" in out, "refresh not planned 5 s before the end")
    check("for 60 s, refresh in 30.000 s" in out, "refresh not planned at half")
    check(out.count("(this one)") == 2 and "binding: <sip:alice@192.0.2.9:5060>" in out,
          "bindings not listed")
    rc = stop_with(c, signal.SIGINT)
    out = run.log("csip")
    print(out)
    check(rc == 0, "csip register exit status %d after SIGINT, want 0" % rc)
    check("unregistered:" in out, "no removal reported")
    rc, stats = wait_sipp(run, p, "sipp", 30)
    expect_calls(run, "sipp", rc, stats, 1)

    reqs = received_requests(run)
    check(len(reqs) == 4, "SIPp got %d REGISTERs, want 4" % len(reqs))
    check_dialog(reqs)
    contact = reqs[0].get("contact")
    m = re.fullmatch(r"<sip:alice@127\.0\.0\.1:(\d+);transport=%s>" % transport, contact)
    check(m, "Contact %r is not our socket" % contact)
    check(reqs[0].get("authorization") is None, "credentials before any challenge")
    uri = "sip:sipp.test"
    cnonces = set()
    for i, nc in ((1, 1), (2, 2), (3, 3)):
        cred = reqs[i].get("authorization")
        check(cred, "REGISTER %d has no Authorization" % (i + 1))
        p = check_digest(cred, "alice", "sipp.test", "SHA-256", nonce, nc, uri)
        check(p.get("opaque") == "op4a", "opaque not echoed")
        cnonces.add(p["cnonce"])
    check(len(cnonces) == 3, "a cnonce was reused")
    for i in (0, 1, 2):
        check(reqs[i].get("expires") == "300", "REGISTER %d: Expires %r" % (i + 1,
                                                                          reqs[i].get("expires")))
        check(reqs[i].get("contact") == contact, "the Contact changed")
    check(reqs[3].get("expires") == "0", "the removal has Expires %r" % reqs[3].get("expires"))
    check(reqs[3].get("contact") == contact[:-1] + ">;expires=0" or
          reqs[3].get("contact") == contact + ";expires=0",
          "the removal's Contact is %r" % reqs[3].get("contact"))


def case_register_sipp_udp(run):
    register_sipp(run, "udp")


def case_register_sipp_tcp(run):
    register_sipp(run, "tcp")


def case_register_sipp_auth(run):
    p, port = start_sipp(run, scenario(run, "uas_register_auth.xml"), "udp")
    rc, out, _ = csip_register(run, ["sip:bob@sipp.test", "--registrar",
                                     "sip:127.0.0.1:%d" % port, "--user", "bob-auth",
                                     "--password", PASSWORD, "--expires", "30", "--once",
                                     "--timeout", "20", "-v"])
    check(rc == 0, "exit %d, want 0" % rc)
    check("registered: " in out and "for 120 s" in out, "not registered for 120 s")
    check("unregistered" not in out, "--once removed the binding")
    rc, stats = wait_sipp(run, p, "sipp", 30)
    expect_calls(run, "sipp", rc, stats, 1)

    reqs = received_requests(run)
    check(len(reqs) == 5, "SIPp got %d REGISTERs, want 5" % len(reqs))
    check_dialog(reqs)
    uri = "sip:sipp.test"
    r1, r2, r3, r4, r5 = reqs
    check(r1.get("authorization") is None and r1.get("proxy-authorization") is None,
          "credentials before any challenge")
    # 407 offered MD5 first: MD5.
    check_digest(r2.get("proxy-authorization"), "bob-auth", "proxy.test", "MD5", "p1", 1, uri)
    check(r2.get("authorization") is None, "Authorization before a 401")
    # 401: SHA-256; the proxy nonce is reused with the next count.
    check_digest(r3.get("proxy-authorization"), "bob-auth", "proxy.test", "MD5", "p1", 2, uri)
    check_digest(r3.get("authorization"), "bob-auth", "sipp.test", "SHA-256", "w1", 1, uri)
    # stale=true: answered again with the new nonce from 1.
    check_digest(r4.get("authorization"), "bob-auth", "sipp.test", "SHA-256", "w2", 1, uri)
    check_digest(r4.get("proxy-authorization"), "bob-auth", "proxy.test", "MD5", "p1", 3, uri)
    check(r4.get("expires") == "30", "Expires %r before the 423" % r4.get("expires"))
    # 423 Min-Expires 120: asked again for 120 s.
    check(r5.get("expires") == "120", "Expires %r after the 423" % r5.get("expires"))
    check_digest(r5.get("authorization"), "bob-auth", "sipp.test", "SHA-256", "w2", 2, uri)


def register_refused(run, second_nonce):
    xml = scenario(run, "uas_register_refused.xml", NONCE2=second_nonce)
    p, port = start_sipp(run, xml, "udp")
    rc, out, _ = csip_register(run, ["sip:carol@sipp.test", "--registrar",
                                     "sip:127.0.0.1:%d" % port, "--password", PASSWORD,
                                     "--timeout", "20"])
    check(rc == 1, "exit %d, want 1" % rc)
    check("credentials of 'carol' were refused" in out, "refusal not reported")
    rc, stats = wait_sipp(run, p, "sipp", 30)
    expect_calls(run, "sipp", rc, stats, 1)
    reqs = received_requests(run)
    check(len(reqs) == 2, "SIPp got %d REGISTERs, want 2 (no third try)" % len(reqs))
    check_dialog(reqs)
    check_digest(reqs[1].get("authorization"), "carol", "sipp.test", "MD5", "r1", 1,
                 "sip:sipp.test")


def case_register_sipp_refused(run):
    register_refused(run, "r1")


def case_register_sipp_refused_new_nonce(run):
    register_refused(run, "r2")


def case_register_timeout(run):
    # A UDP socket of the test's own that never answers.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        t0 = time.time()
        rc, out, _ = csip_register(run, ["sip:dave@sipp.test", "--registrar",
                                         "sip:127.0.0.1:%d" % port, "--password", PASSWORD,
                                         "--timeout", "1.5"], 30)
        took = time.time() - t0
        sock.settimeout(0)
        got = sock.recv(65535)
    finally:
        sock.close()
    check(got.startswith(b"REGISTER sip:sipp.test SIP/2.0"), "no REGISTER sent")
    check(rc == 1, "exit %d, want 1" % rc)
    check("final: no final response within 1500 ms" in out, "no timeout reported")
    check("[retransmission]" in out, "no retransmission over UDP")
    check(took < 10, "took %.1f s" % took)


# ---------------------------------------------------------------------------
# csipd, end to end


def start_csipd(run, extra=()):
    db = run.path("csipd.db")
    p = run.spawn([run.args.csipd, "--db", db, "--listen", "udp:127.0.0.1:0",
                   "--listen", "tcp:127.0.0.1:0"] + list(extra), "csipd")
    deadline = time.time() + 15
    while time.time() < deadline:
        text = run.log("csipd")
        m = re.search(r"ready udp:127\.0\.0\.1:(\d+) tcp:127\.0\.0\.1:(\d+)", text)
        if m:
            return p, int(m.group(1)), int(m.group(2))
        check(p.poll() is None, "csipd exited: %s" % text)
        time.sleep(0.05)
    raise Failure("csipd did not report ready: %s" % run.log("csipd"))


def start_csipd_tls(run):
    cert, key = make_cert(run, "server", "DNS:localhost,IP:127.0.0.1")
    db = run.path("csipd.db")
    p = run.spawn([run.args.csipd, "--db", db, "--listen", "tls:127.0.0.1:0",
                   "--tls-cert", cert, "--tls-key", key], "csipd")
    deadline = time.time() + 15
    while time.time() < deadline:
        text = run.log("csipd")
        m = re.search(r"ready tls:127\.0\.0\.1:(\d+)", text)
        if m:
            return p, int(m.group(1)), cert
        check(p.poll() is None, "csipd exited: %s" % text)
        time.sleep(0.05)
    raise Failure("csipd did not report ready: %s" % run.log("csipd"))


def csipd_cmd(run, args, stdin=None):
    r = subprocess.run([run.args.csipd, "--db", run.path("csipd.db")] + args, cwd=run.dir,
                       capture_output=True, text=True, timeout=30, input=stdin)
    print("$ csipd %s  -> exit %d" % (" ".join(args), r.returncode))
    check(r.returncode == 0, "csipd %s: exit %d: %s" % (args, r.returncode, r.stderr))
    return r.stdout


def bindings(out):
    return [line for line in out.splitlines() if line.startswith("binding: ")]


def case_register_csipd(run):
    check(run.args.csipd, "--csipd not given")
    csipd_cmd(run, ["user", "add", "alice", PASSWORD])
    check("alice@localhost" in csipd_cmd(run, ["user", "list"]), "user not listed")
    d, port, tcp_port = start_csipd(run, ["--min-expires", "2"])
    reg = "sip:127.0.0.1:%d" % port
    base = ["sip:alice@localhost", "--registrar", reg, "--password", PASSWORD, "--timeout", "10"]

    # --once twice: two runs, two Contacts (each its own socket), both listed.
    rc, out1, _ = csip_register(run, base + ["--once"])
    check(rc == 0, "first --once: exit %d" % rc)
    check("[Authorization SHA-256 nc=1]" in out1, "csipd's SHA-256 challenge not answered")
    rc, out2, _ = csip_register(run, ["sip:alice@localhost", "--registrar",
                                      "sip:127.0.0.1:%d;transport=tcp" % tcp_port,
                                      "--password", PASSWORD, "--timeout", "10", "--once"])
    check(rc == 0, "second --once: exit %d" % rc)
    check(len(bindings(out1)) == 1 and len(bindings(out2)) == 2,
          "bindings %r then %r" % (bindings(out1), bindings(out2)))

    # A running registration asking for 1 s: 423, then 2 s granted, refreshed
    # after 1 s under the same nonce; then SIGINT: its binding goes.
    c = run.spawn([run.args.csip, "register"] + base + ["--expires", "1"], "csip")
    out = wait_output(run, "csip", c, "registered:", 2, 20)
    check("<-- 423 " in out and "at least 2 s (Min-Expires)" in out, "no 423 obeyed")
    check("[Authorization SHA-256 nc=2]" in out and "[Authorization SHA-256 nc=3]" in out,
          "the retry and the refresh did not reuse the nonce")
    mine = [b for b in bindings(out) if b.endswith("(this one)")]
    check(len(bindings(out)) == 6 and len(set(mine)) == 1, "bindings %r" % bindings(out))
    rc = stop_with(c, signal.SIGINT)
    out = run.log("csip")
    print(out)
    check(rc == 0 and "unregistered:" in out, "removal failed: exit %d" % rc)
    contact = mine[0].split(">", 1)[0][len("binding: "):] + ">"
    rc, out3, _ = csip_register(run, base + ["--once"])
    check(rc == 0, "third --once: exit %d" % rc)
    check(not any(contact in b for b in bindings(out3)),
          "%s still listed after SIGINT: %r" % (contact, bindings(out3)))
    check(len(bindings(out3)) == 3, "bindings %r" % bindings(out3))

    # Wrong password: exit 1, no loop.
    rc, out, _ = csip_register(run, ["sip:alice@localhost", "--registrar", reg,
                                     "--password", "wrong", "--once", "--timeout", "10"])
    check(rc == 1 and "were refused" in out, "wrong password: exit %d" % rc)
    check(out.count("--> REGISTER") == 2, "wrong password: not exactly two REGISTERs")
    rc = stop_with(d, signal.SIGTERM)
    check(rc == 0, "csipd exit status %d" % rc)


def case_register_csipd_tls(run):
    check(run.args.csipd, "--csipd not given")
    csipd_cmd(run, ["user", "add", "bob"], stdin=PASSWORD + "\n")
    d, port, cert = start_csipd_tls(run)
    base = ["sip:bob@localhost", "--registrar", "sip:127.0.0.1:%d" % port, "--transport", "tls",
            "--password", PASSWORD, "--timeout", "10", "--once"]
    # The certificate is checked against the AOR's domain, localhost.
    rc, out, _ = csip_register(run, base)
    check(rc == 1 and "final: 503" in out, "an untrusted certificate was accepted: exit %d" % rc)
    rc, out, _ = csip_register(run, base + ["--ca-file", cert])
    check(rc == 0, "exit %d, want 0" % rc)
    check("(TLS 127.0.0.1:%d)" % port in out and ";transport=tls> for 3600 s" in out,
          "not registered over TLS")
    rc = stop_with(d, signal.SIGTERM)
    check(rc == 0, "csipd exit status %d" % rc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csip", required=True)
    ap.add_argument("--csipd")
    ap.add_argument("--keep", action="store_true", help="keep the case's files")
    ap.add_argument("case")
    args = ap.parse_args()
    args.csip = os.path.abspath(args.csip)
    if args.csipd:
        args.csipd = os.path.abspath(args.csipd)
    return run_case(args, globals())


if __name__ == "__main__":
    sys.exit(main())
