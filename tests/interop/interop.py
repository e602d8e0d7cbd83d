#!/usr/bin/env python3
"""Interoperability tests against SIPp (Debian package sip-tester), on loopback.

Each case starts its own processes (SIPp, the example server txn_server, the
csip tool) on free loopback ports, bounds every wait, and stops only the
processes it started, by their PID (through their Popen objects).

    interop.py --csip PATH --server PATH --data DIR CASE

Cases:
  options_sipp_uas_udp, options_sipp_uas_tcp   csip options -> SIPp UAS (our OPTIONS scenario)
  options_sipp_uas_builtin                     csip options -> sipp -sn uas -aa (auto-answer)
  options_sipp_uas_lost10, options_sipp_uas_lost30
                                               5 csip options at once, SIPp dropping 10/30 %
  invite_sipp_uac_udp, invite_sipp_uac_tcp     sipp -sn uac -> txn_server
  options_sipp_uac_udp, options_sipp_uac_tcp   SIPp OPTIONS scenario -> txn_server
  invite_sipp_uac_lost10, invite_sipp_uac_lost30,
  options_sipp_uac_lost10, options_sipp_uac_lost30
                                               the same over UDP, SIPp dropping 10/30 %
  rfc4475_tcp_close                            ncl and mcl01 over TCP: 400, then the close
  tls_ca_file, tls_insecure, tls_name_mismatch csip options -> txn_server over TLS

Prints "1 passed, 0 failed" or the reason of the failure (exit status 1).
"""
import argparse
import csv
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def run_case(args, names, precheck=None):
    """Runs the function case_<args.case> found in names with a fresh Run, then
    cleans up (keeping the files of a failed case); prints one result line.
    precheck(args) may raise Failure before the case starts."""
    fn = names.get("case_" + args.case)
    if not fn:
        print("unknown case", args.case)
        return 2
    run = Run(args)
    ok = False
    try:
        if precheck:
            precheck(args)
        fn(run)
        ok = True
    except Failure as e:
        print("FAIL %s: %s" % (args.case, e))
    finally:
        run.cleanup(keep=args.keep or not ok)
    print("%d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
    return 0 if ok else 1


class Run:
    """The processes and files of one case; cleanup stops what is still running."""

    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="csip-interop-")
        self.procs = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def spawn(self, cmd, name, stdout=None, preexec_fn=None):
        err = open(self.path(name + ".err"), "w")
        out = stdout if stdout is not None else open(self.path(name + ".out"), "w")
        p = subprocess.Popen(cmd, cwd=self.dir, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             text=True, preexec_fn=preexec_fn)
        p.csip_name = name
        self.procs.append(p)
        return p

    def log(self, name):
        text = ""
        for ext in (".out", ".err"):
            try:
                with open(self.path(name + ext)) as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def cleanup(self, keep):
        for p in self.procs:
            if p.poll() is None:
                p.kill()  # by PID: only what this case started
                p.wait(10)
        if keep:
            print("files kept in", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    """A loopback port free for both TCP and UDP (bound, then released)."""
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            ok = True
        except OSError:
            ok = False
        u.close()
        t.close()
        if ok:
            return port
    raise Failure("no free port")


def wait_bound(port, proto, proc, seconds=10):
    """Waits until something listens on port (TCP) or holds it (UDP)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        check(proc.poll() is None, "%s exited early (%s)" % (proc.csip_name, proc.returncode))
        if proto == "tcp":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.connect(("127.0.0.1", port))
                return
            except OSError:
                pass
            finally:
                s.close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
            finally:
                s.close()
        time.sleep(0.05)
    raise Failure("nothing listens on %s port %d" % (proto, port))


# ---------------------------------------------------------------------------
# txn_server


def start_server(run, listen, extra=()):
    p = run.spawn([run.args.server] + list(extra) + list(listen), "server",
                  stdout=subprocess.PIPE)
    ports, buf = {}, b""
    fd = p.stdout.fileno()
    deadline = time.time() + 10
    while len(ports) < len(listen) and time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            check(p.poll() is None, "txn_server exited: %s" % run.log("server"))
            continue
        chunk = os.read(fd, 4096)
        check(chunk, "txn_server exited: %s" % run.log("server"))
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            parts = line.decode().split()
            if len(parts) == 3 and parts[0] == "listening":
                ports[parts[1]] = int(parts[2].rsplit(":", 1)[1])
    check(len(ports) == len(listen), "txn_server did not report its ports")
    return p, ports


def stop_server(run, p):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(20)
    except subprocess.TimeoutExpired:
        raise Failure("txn_server did not stop on SIGTERM")
    check(rc == 0, "txn_server exit status %d: %s" % (rc, run.log("server")[-4000:]))


# ---------------------------------------------------------------------------
# SIPp


def sipp_cmd(run, name, args, seconds):
    sipp = shutil.which("sipp")
    check(sipp, "sipp not found: install the Debian package sip-tester (make check does)")
    return [sipp] + args + [
        "-i", "127.0.0.1", "-nostdin", "-timeout", "%ds" % seconds, "-timeout_error",
        "-trace_stat", "-stf", run.path(name + ".csv"), "-trace_err",
        "-error_file", run.path(name + ".errors")]


def sipp_stats(run, name):
    try:
        with open(run.path(name + ".csv")) as f:
            rows = list(csv.reader(f, delimiter=";"))
    except OSError:
        raise Failure("SIPp wrote no statistics: %s" % run.log(name)[-2000:])
    check(len(rows) >= 2, "SIPp statistics are empty")
    head, last = rows[0], rows[-1]

    def get(key):
        return int(last[head.index(key)])

    return {k: get(k) for k in ("TotalCallCreated", "SuccessfulCall(C)", "FailedCall(C)",
                                "Retransmissions(C)", "OutOfCallMsgs(C)")}


def wait_sipp(run, p, name, seconds):
    try:
        rc = p.wait(seconds)
    except subprocess.TimeoutExpired:
        raise Failure("SIPp still running after %d s" % seconds)
    return rc, sipp_stats(run, name)


def expect_calls(run, name, rc, stats, calls):
    print("SIPp %s: %s, exit %d" % (name, stats, rc))
    errors = ""
    try:
        with open(run.path(name + ".errors")) as f:
            errors = f.read()[-2000:]
    except OSError:
        pass
    check(stats["SuccessfulCall(C)"] == calls and stats["FailedCall(C)"] == 0
          and stats["TotalCallCreated"] == calls,
          "SIPp counts %s, want %d successful and none failed\n%s" % (stats, calls, errors))
    check(rc == 0, "SIPp exit status %d\n%s" % (rc, errors))


# ---------------------------------------------------------------------------
# csip options


def csip_options(run, args, seconds=60):
    cmd = [run.args.csip, "options"] + args
    try:
        r = subprocess.run(cmd, cwd=run.dir, capture_output=True, text=True, timeout=seconds,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failure("csip options did not finish in %d s" % seconds)
    print("$ csip options %s  -> exit %d" % (" ".join(args), r.returncode))
    sys.stdout.write(r.stdout)
    if r.stderr:
        sys.stdout.write(r.stderr)
    return r.returncode, r.stdout + r.stderr


def expect_ok(rc, out):
    check(rc == 0, "csip options exit status %d, want 0" % rc)
    check("final: 200 OK" in out, "no 200 OK in the output")


# ---------------------------------------------------------------------------
# Cases: csip options against SIPp as the server


def uas_scenario(run, pause):
    """uas_options.xml, without its final pause when there is no loss: SIPp
    counts a call as failed when its TCP connection closes during a pause."""
    with open(os.path.join(HERE, "uas_options.xml")) as f:
        text = f.read()
    if not pause:
        text = text.replace("<pause/>", "")
    path = run.path("uas_options.xml")
    with open(path, "w") as f:
        f.write(text)
    return path


def options_sipp_uas(run, transport):
    port = free_port()
    args = ["-sf", uas_scenario(run, False), "-p", str(port), "-m", "1",
            "-t", "u1" if transport == "udp" else "t1"]
    p = run.spawn(sipp_cmd(run, "sipp", args, 60), "sipp")
    wait_bound(port, transport, p)
    uri = "sip:sipp@127.0.0.1:%d" % port
    if transport == "tcp":
        uri += ";transport=tcp"
    rc, out = csip_options(run, [uri, "--timeout", "20"])
    expect_ok(rc, out)
    check(("(%s " % transport.upper()) in out, "not sent over %s" % transport)
    rc, stats = wait_sipp(run, p, "sipp", 60)
    expect_calls(run, "sipp", rc, stats, 1)


def case_options_sipp_uas_udp(run):
    options_sipp_uas(run, "udp")


def case_options_sipp_uas_tcp(run):
    options_sipp_uas(run, "tcp")


def case_options_sipp_uas_builtin(run):
    """sipp's built-in UAS with -aa answers OPTIONS 200 on its own."""
    port = free_port()
    args = ["-sn", "uas", "-aa", "-p", str(port), "-t", "u1"]
    p = run.spawn(sipp_cmd(run, "sipp", args, 60), "sipp")
    wait_bound(port, "udp", p)
    rc, out = csip_options(run, ["sip:service@127.0.0.1:%d" % port, "--timeout", "20", "-v"])
    expect_ok(rc, out)
    check(p.poll() is None, "SIPp exited")
    p.kill()
    p.wait(10)


def options_sipp_uas_lost(run, pct, n=5):
    """n transactions at once while SIPp drops pct % of what it sends and
    receives: each completes through the client's retransmissions (Timer E).
    SIPp keeps each call for -d ms after its 200, answering retransmissions."""
    port = free_port()
    pause = 32000 if pct >= 30 else 16000
    args = ["-sf", uas_scenario(run, True), "-p", str(port), "-m", str(n),
            "-d", str(pause), "-t", "u1", "-lost", str(pct)]
    p = run.spawn(sipp_cmd(run, "sipp", args, 120), "sipp")
    wait_bound(port, "udp", p)
    clients = []
    for i in range(n):
        cmd = [run.args.csip, "options", "sip:sipp@127.0.0.1:%d" % port, "--timeout", "40"]
        clients.append(run.spawn(cmd, "csip%d" % i))
    retrans = 0
    for i, c in enumerate(clients):
        try:
            rc = c.wait(60)
        except subprocess.TimeoutExpired:
            raise Failure("csip options %d did not finish" % i)
        out = run.log("csip%d" % i)
        retrans += out.count("[retransmission]")
        check(rc == 0 and "final: 200 OK" in out, "csip options %d: exit %d\n%s" % (i, rc, out))
    print("%d transactions completed, %d retransmissions by csip" % (n, retrans))
    rc, stats = wait_sipp(run, p, "sipp", pause // 1000 + 60)
    expect_calls(run, "sipp", rc, stats, n)


def case_options_sipp_uas_lost10(run):
    options_sipp_uas_lost(run, 10)


def case_options_sipp_uas_lost30(run):
    options_sipp_uas_lost(run, 30)


# ---------------------------------------------------------------------------
# Cases: SIPp as the client against txn_server


def sipp_uac(run, scenario, transport, calls, lost=0):
    server, ports = start_server(run, ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"])
    target = "127.0.0.1:%d" % ports[transport.upper()]
    args = [target, "-p", str(free_port()), "-m", str(calls), "-r", "20", "-l", "20",
            "-t", "u1" if transport == "udp" else "t1",
            # SIPp gives up after 5 to 7 retransmissions by default (-max_retrans
            # caps them all): at 30 % loss each way that fails one call in 60.
            "-max_retrans", "15", "-max_invite_retrans", "15", "-max_non_invite_retrans", "15"]
    if scenario == "invite":
        args += ["-sn", "uac", "-d", "0"]
    else:
        args += ["-sf", os.path.join(HERE, "uac_options.xml")]
    if lost:
        args += ["-lost", str(lost)]
    # With loss, an INVITE whose first sends are all lost is retransmitted at
    # 31.5 s, 63.5 s, 127.5 s (SIPp doubles INVITE intervals without a cap).
    p = run.spawn(sipp_cmd(run, "sipp", args, 200), "sipp")
    rc, stats = wait_sipp(run, p, "sipp", 220)
    expect_calls(run, "sipp", rc, stats, calls)
    if lost:
        check(stats["Retransmissions(C)"] > 0, "no retransmission with %d %% loss" % lost)
    stop_server(run, server)


def case_invite_sipp_uac_udp(run):
    sipp_uac(run, "invite", "udp", 20)


def case_invite_sipp_uac_tcp(run):
    sipp_uac(run, "invite", "tcp", 20)


def case_options_sipp_uac_udp(run):
    sipp_uac(run, "options", "udp", 20)


def case_options_sipp_uac_tcp(run):
    sipp_uac(run, "options", "tcp", 20)


def case_invite_sipp_uac_lost10(run):
    sipp_uac(run, "invite", "udp", 20, lost=10)


def case_invite_sipp_uac_lost30(run):
    sipp_uac(run, "invite", "udp", 20, lost=30)


def case_options_sipp_uac_lost10(run):
    # 60 calls: with 20 (40 messages) SIPp lost none at all about once in 70
    # runs (0.9^40), and the check for retransmissions failed
    sipp_uac(run, "options", "udp", 60, lost=10)


def case_options_sipp_uac_lost30(run):
    sipp_uac(run, "options", "udp", 20, lost=30)


# ---------------------------------------------------------------------------
# RFC 4475 framing errors over TCP


def case_rfc4475_tcp_close(run):
    server, ports = start_server(run, ["tcp:127.0.0.1:0"])
    port = ports["TCP"]
    for name, reason in (("ncl", "Invalid Content-Length"),
                         ("mcl01", "Multiple Content-Length")):
        with open(os.path.join(run.args.data, "rfc4475", name + ".dat"), "rb") as f:
            data = f.read()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(data)
        got, closed = b"", False
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                b = s.recv(4096)
            except socket.timeout:
                break
            if not b:
                closed = True
                break
            got += b
        s.close()
        first = got.split(b"\r\n", 1)[0].decode("latin-1")
        print("%s over TCP: %r, then %s" % (name, first, "closed" if closed else "open"))
        check(first.startswith("SIP/2.0 400 ") and reason in first, "%s: got %r" % (name, first))
        check(closed, "%s: the connection stayed open" % name)
    # The server goes on serving.
    rc, out = csip_options(run, ["sip:127.0.0.1:%d;transport=tcp" % port, "--timeout", "10"])
    expect_ok(rc, out)
    stop_server(run, server)


# ---------------------------------------------------------------------------
# TLS with a certificate made by the test


def make_cert(run, name, san):
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
           "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", run.path(name + ".key"),
           "-out", run.path(name + ".pem"), "-days", "2", "-subj", "/CN=csip interop",
           "-addext", "subjectAltName=" + san]
    r = subprocess.run(cmd, cwd=run.dir, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "openssl req failed: %s" % r.stderr)
    return run.path(name + ".pem"), run.path(name + ".key")


def tls_server(run, san):
    cert, key = make_cert(run, "server", san)
    server, ports = start_server(run, ["tls:127.0.0.1:0"], ["--tls-cert", cert, "--tls-key", key])
    return server, ports["TLS"], cert


def case_tls_ca_file(run):
    server, port, cert = tls_server(run, "DNS:localhost,IP:127.0.0.1")
    for uri in ("sips:svc@localhost:%d" % port, "sips:svc@127.0.0.1:%d" % port,
                "sip:svc@localhost:%d;transport=tls" % port):
        rc, out = csip_options(run, [uri, "--ca-file", cert, "--timeout", "10"])
        expect_ok(rc, out)
        check("(TLS " in out, "not sent over TLS")
    stop_server(run, server)


def case_tls_insecure(run):
    server, port, _ = tls_server(run, "DNS:localhost,IP:127.0.0.1")
    # Not in the system's trust store: verification fails…
    rc, out = csip_options(run, ["sips:svc@localhost:%d" % port, "--timeout", "10"])
    check(rc == 1, "an untrusted certificate was accepted")
    check("TLS handshake failed" in out, "no TLS failure reported")
    # … unless told not to verify.
    rc, out = csip_options(run, ["sips:svc@localhost:%d" % port, "--insecure", "--timeout", "10"])
    expect_ok(rc, out)
    stop_server(run, server)


def case_tls_name_mismatch(run):
    server, port, cert = tls_server(run, "DNS:other.example")
    rc, out = csip_options(run, ["sips:svc@localhost:%d" % port, "--ca-file", cert,
                                 "--timeout", "10"])
    check(rc == 1, "a certificate for another name was accepted")
    check("hostname mismatch" in out, "the failure does not name the mismatch")
    rc, out = csip_options(run, ["sips:svc@127.0.0.1:%d" % port, "--ca-file", cert,
                                 "--timeout", "10"])
    check(rc == 1 and "mismatch" in out, "a certificate without the address was accepted")
    stop_server(run, server)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csip", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the case's files")
    ap.add_argument("case")
    args = ap.parse_args()
    return run_case(args, globals())


if __name__ == "__main__":
    sys.exit(main())
