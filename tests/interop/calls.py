#!/usr/bin/env python3
"""Tests of `csip call`, `csip answer` and `csip message`, on loopback.

Each case starts its own processes (SIPp, csipd, the csip tool) on free
loopback ports, bounds every wait and stops only the processes it started, by
their PID. What the tool did is read from its one-line-per-message output,
from SIPp's message log and from csipd's log.

    calls.py --csip PATH [--csipd PATH] CASE

Cases:
  call_usage               bad arguments of call, answer, message: exit 2, nothing sent
  call_sipp_uas_udp, call_sipp_uas_tcp
                           csip call -> sipp -sn uas: INVITE with an SDP offer (PCMU,
                           PCMA, telephone-event, a port bound while the call lasts),
                           ACK, BYE after --duration, exit 0
  call_no_response         nothing answers: exit 1 soon after --timeout
  answer_sipp_uac_udp, answer_sipp_uac_tcp
                           sipp -sn uac -> csip answer (registered with csipd), two calls
                           at once, SIPp's BYE answered; --calls 2 ends the run
  answer_sipp_reinvite     a SIPp caller: re-INVITE with a new offer (the answer's o=
                           version goes up), UPDATE with the same (it stays), BYE, then
                           a BYE on the ended dialog gets 481
  csipd_call_udp, csipd_call_tcp
                           alice calls bob through csipd (--auth on, 407 answered); bob
                           answers, alice's BYE after 1 s; the ACK and BYE follow the
                           Record-Route
  csipd_callee_bye_udp, csipd_callee_bye_tcp
                           the same, bob hangs up (BYE from the callee)
  csipd_reject             bob rejects with 486: alice exits 1 with "final: 486"
  csipd_cancel             alice stops (SIGINT) while bob rings: CANCEL, 487, exit 3;
                           then an unanswered call with --timeout: exit 1
  csipd_reinvite_update    re-INVITE and UPDATE within a call through csipd
  csipd_message            MESSAGE through csipd (407 answered), printed by csip answer;
                           a wrong password: exit 1

Prints "1 passed, 0 failed" or the reason of the failure (exit status 1).
"""
import argparse
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

from interop import (Failure, check, expect_calls, free_port, run_case,  # noqa: E402
                     sipp_cmd, wait_bound, wait_sipp)

ALICE_PW = "alice pw"
BOB_PW = "bob pw"


# ---------------------------------------------------------------------------
# Helpers


def no_sanitizer_report(text, who):
    """An ASan/UBSan build reports with exit status 1, which some cases expect."""
    check("Sanitizer" not in text and "runtime error:" not in text,
          "%s: sanitizer report:\n%s" % (who, text[-4000:]))


def csip(run, args, seconds=60):
    """Runs the tool to its end; returns (exit status, stdout + stderr)."""
    cmd = [run.args.csip] + args
    try:
        r = subprocess.run(cmd, cwd=run.dir, capture_output=True, text=True, timeout=seconds,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failure("csip %s did not finish in %d s" % (" ".join(args), seconds))
    print("$ csip %s  -> exit %d" % (" ".join(args), r.returncode))
    sys.stdout.write(r.stdout)
    if r.stderr:
        sys.stdout.write(r.stderr)
    no_sanitizer_report(r.stderr, "csip " + args[0])
    return r.returncode, r.stdout + r.stderr


def wait_output(run, name, proc, pattern, count=1, seconds=20):
    """Waits until the regular expression matches count times in the output
    of a process started with run.spawn; returns the output."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        out = run.log(name)
        if len(re.findall(pattern, out)) >= count:
            return out
        check(proc.poll() is None, "%s exited (%s) before %d x %r:\n%s"
              % (name, proc.returncode, count, pattern, out))
        time.sleep(0.05)
    raise Failure("no %d x %r from %s within %d s:\n%s" % (count, pattern, name, seconds,
                                                         run.log(name)))


def wait_exit(proc, seconds=30):
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        raise Failure("%s still running after %d s" % (proc.csip_name, seconds))


def stop_with(proc, sig, seconds=30):
    proc.send_signal(sig)
    return wait_exit(proc, seconds)


def show(run, name):
    print("--- %s" % name)
    out = run.log(name)
    sys.stdout.write(out)
    no_sanitizer_report(out, name)
    return out


def start_csipd(run, host="127.0.0.1"):
    """csipd with digest auth on, alice and bob in its users table."""
    db = run.path("csipd.db")
    for user, pw in (("alice", ALICE_PW), ("bob", BOB_PW)):
        r = subprocess.run([run.args.csipd, "--db", db, "user", "add", user, pw], cwd=run.dir,
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "csipd user add %s: %s" % (user, r.stderr))
    p = run.spawn([run.args.csipd, "--db", db, "--auth", "on", "--listen", "udp:%s:0" % host,
                   "--listen", "tcp:%s:0" % host], "csipd")
    out = wait_output(run, "csipd", p, r"ready udp:[\d.]+:\d+ tcp:[\d.]+:\d+", 1, 15)
    m = re.search(r"ready udp:[\d.]+:(\d+) tcp:[\d.]+:(\d+)", out)
    return p, int(m.group(1)), int(m.group(2))


def start_answer(run, registrar, args, name="answer", user="bob", pw=BOB_PW):
    """csip answer registered with csipd; returns (process, Contact port)."""
    p = run.spawn([run.args.csip, "answer", "sip:%s@localhost" % user, "--password", pw,
                   "--registrar", registrar, "--timeout", "10"] + args, name)
    out = wait_output(run, name, p, r"waiting for calls", 1, 20)
    m = re.search(r"registered: <sip:%s@127\.0\.0\.1:(\d+);transport=(udp|tcp)>" % user, out)
    check(m, "no Contact in the answer's output")
    return p, int(m.group(1))


def port_bound_udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def sipp_messages(run, name):
    """(direction, start line, headers text, body) of each message in SIPp's log."""
    try:
        with open(run.path(name), errors="replace") as f:
            log = f.read()
    except OSError:
        raise Failure("SIPp wrote no message log")
    msgs = []
    for block in re.split(r"^-{20,}.*$", log, flags=re.M):
        m = re.match(r"\s*\w+ message (received|sent) \[\d+\] bytes :\n\n", block)
        if not m:
            continue
        text = block[m.end():].replace("\r", "")
        head, _, body = text.partition("\n\n")
        start = head.split("\n", 1)[0]
        msgs.append((m.group(1), start, head, body.strip()))
    return msgs


def cseq_of(head):
    m = re.search(r"^CSeq:\s*(\d+)\s+(\w+)", head, flags=re.M | re.I)
    return (int(m.group(1)), m.group(2)) if m else (None, None)


def sdp_version(body):
    m = re.search(r"^o=\S+ \d+ (\d+) IN IP4", body, flags=re.M)
    check(m, "no o= line in %r" % body)
    return int(m.group(1))


def check_offer(body, out):
    """Our offer: PCMU, PCMA, telephone-event, on the RTP port we printed."""
    m = re.search(r"^m=audio (\d+) RTP/AVP 0 8 101$", body, flags=re.M)
    check(m, "offer without m=audio PORT RTP/AVP 0 8 101: %r" % body)
    for line in ("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
                 "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "c=IN IP4 127.0.0.1"):
        check(line in body, "offer without %s: %r" % (line, body))
    port = int(m.group(1))
    check(port != 0 and "our RTP port %d" % port in out,
          "the offer's port %d is not the one printed" % port)
    return port


# ---------------------------------------------------------------------------
# Cases without csipd


def case_call_usage(run):
    for args, what in ((["call"], "call: no target"),
                       (["call", "bob@example.com"], "call: not a URI"),
                       (["call", "sip:bob@localhost", "--duration", "0"], "call: zero duration"),
                       (["call", "sip:bob@localhost", "--duration", "x"], "call: bad duration"),
                       (["call", "sip:bob@localhost", "--from", "alice"], "call: bad From"),
                       (["call", "sip:bob@localhost", "--proxy", "mailto:a@b"], "call: bad proxy"),
                       (["call", "sip:bob@localhost", "--transport", "sctp"], "call: transport"),
                       (["call", "sip:bob@localhost", "--bogus"], "call: unknown option"),
                       (["answer"], "answer: no AOR"),
                       (["answer", "sip:localhost"], "answer: no user"),
                       (["answer", "sip:bob@localhost", "--reject", "200"], "answer: 2xx reject"),
                       (["answer", "sip:bob@localhost", "--reject", "7000"], "answer: bad code"),
                       (["answer", "sip:bob@localhost", "--calls", "0"], "answer: zero calls"),
                       (["answer", "sip:bob@localhost", "--ring", "-1"], "answer: bad ring"),
                       (["message", "sip:bob@localhost"], "message: no text"),
                       (["message", "sip:bob@localhost", "x" * 1301], "message: too long"),
                       (["message", "sip:bob@localhost", "hi", "more"], "message: extra"),
                       (["message", "bob", "hi"], "message: not a URI")):
        rc, out = csip(run, args, 20)
        check(rc == 2, "%s: exit %d, want 2" % (what, rc))
        check("-->" not in out, "%s: something was sent" % what)
    for sub in ("call", "answer", "message"):
        rc, out = csip(run, [sub, "--help"], 20)
        check(rc == 0 and "--password" in out and "exit status" in out, "%s --help" % sub)
    rc, out = csip(run, ["help"], 20)
    check(rc == 0 and all(c in out for c in ("  call ", "  answer ", "  message ")),
          "csip help does not list call, answer and message")


def builtin_without_timewait(run, name):
    """SIPp's built-in scenario without its final timewait: SIPp counts a call
    as failed when its TCP connection closes during it (the peer is done)."""
    r = subprocess.run(sipp_cmd(run, "dump", ["-sd", name], 10)[:3], capture_output=True,
                       text=True, timeout=30)
    check("<timewait" in r.stdout, "sipp -sd %s printed no scenario" % name)  # it exits 99
    path = run.path(name + ".xml")
    with open(path, "w") as f:
        f.write(re.sub(r"<timewait[^>]*/>", "", r.stdout))
    return path


def call_sipp_uas(run, transport):
    port = free_port()
    scen = ["-sn", "uas"] if transport == "udp" else ["-sf", builtin_without_timewait(run, "uas")]
    args = scen + ["-p", str(port), "-m", "1", "-t", "u1" if transport == "udp" else "t1",
                   "-trace_msg", "-message_file", run.path("sipp.msg")]
    p = run.spawn(sipp_cmd(run, "sipp", args, 60), "sipp")
    wait_bound(port, transport, p)
    target = "sip:service@127.0.0.1:%d" % port
    if transport == "tcp":
        target += ";transport=tcp"
    c = run.spawn([run.args.csip, "call", target, "--duration", "1.5", "--timeout", "10"], "call")
    out = wait_output(run, "call", c, r"call: answered", 1, 20)
    m = re.search(r"our RTP port (\d+)", out)
    check(m and port_bound_udp(int(m.group(1))), "the RTP port is not bound during the call")
    rc = wait_exit(c, 30)
    out = show(run, "call")
    check(rc == 0, "csip call exit %d, want 0" % rc)
    for pat in (r"--> INVITE sip:service@127\.0\.0\.1:%d\S* \(%s 127\.0\.0\.1:%d\) CSeq 1 "
                r"Call-ID \S+ \[SDP offer\]" % (port, transport.upper(), port),
                r"<-- 180 Ringing \(%s " % transport.upper(),
                r"<-- 200 OK \(\S+ \S+\) CSeq 1 INVITE Call-ID \S+ \[SDP\]",
                r"--> ACK sip:\S+ \(\S+ \S+\) CSeq 1 ",
                r"call: media: audio PCMU/8000 with 127\.0\.0\.1:\d+ sendrecv",
                r"--> BYE sip:\S+ \(\S+ \S+\) CSeq 2 ",
                r"<-- 200 OK \(\S+ \S+\) CSeq 2 BYE ",
                r"call: ended \(our BYE answered 200\)"):
        check(re.search(pat, out), "no %r in the output" % pat)
    rc, stats = wait_sipp(run, p, "sipp", 30)
    expect_calls(run, "sipp", rc, stats, 1)
    got = [(s, h, b) for d, s, h, b in sipp_messages(run, "sipp.msg") if d == "received"]
    starts = [s.split(" ")[0] for s, _, _ in got]
    check(starts[:3] == ["INVITE", "ACK", "BYE"], "SIPp received %r" % starts)
    check_offer(got[0][2], out)
    check(re.search(r"^Contact: <sip:anonymous@127\.0\.0\.1:\d+;transport=%s>$" % transport,
                    got[0][1], flags=re.M), "INVITE Contact: %r" % got[0][1])


def case_call_sipp_uas_udp(run):
    call_sipp_uas(run, "udp")


def case_call_sipp_uas_tcp(run):
    call_sipp_uas(run, "tcp")


def case_call_no_response(run):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        t0 = time.time()
        rc, out = csip(run, ["call", "sip:nobody@127.0.0.1:%d" % port, "--timeout", "1.5"], 30)
        took = time.time() - t0
        sock.settimeout(0)
        got = sock.recv(65535)
    finally:
        sock.close()
    check(got.startswith(b"INVITE sip:nobody@127.0.0.1:%d SIP/2.0" % port), "no INVITE sent")
    check(rc == 1, "exit %d, want 1" % rc)
    check("no answer within 1500 ms" in out and "final: no response yet" in out,
          "no timeout reported")
    check("--> CANCEL" not in out, "a CANCEL before any provisional response")
    check(took < 10, "took %.1f s" % took)


def answer_sipp_uac(run, transport):
    d, udp, tcp = start_csipd(run)
    reg = "sip:127.0.0.1:%d" % udp if transport == "udp" else \
        "sip:127.0.0.1:%d;transport=tcp" % tcp
    a, contact_port = start_answer(run, reg, ["--ring", "0.3", "--calls", "2"])
    args = ["-sn", "uac", "-s", "bob", "127.0.0.1:%d" % contact_port, "-m", "2", "-l", "2",
            "-r", "2", "-t", "u1" if transport == "udp" else "t1", "-p", str(free_port())]
    s = run.spawn(sipp_cmd(run, "sipp", args, 60), "sipp")
    rc, stats = wait_sipp(run, s, "sipp", 60)
    expect_calls(run, "sipp", rc, stats, 2)
    rc = wait_exit(a, 30)
    out = show(run, "answer")
    check(rc == 0, "csip answer exit %d, want 0" % rc)
    tp = transport.upper()
    for n in (1, 2):
        for pat in (r"call %d: from sip:sipp@127\.0\.0\.1:\d+, ringing" % n,
                    r"call %d: media: audio PCMU/8000" % n,
                    r"call %d: confirmed \(ACK received\)" % n,
                    r"call %d: ended by the caller \(BYE\)" % n):
            check(re.search(pat, out), "no %r in the output" % pat)
    for pat in (r"<-- INVITE sip:bob@127\.0\.0\.1:%d \(%s " % (contact_port, tp),
                r"--> 100 Trying \(%s " % tp, r"--> 180 Ringing \(%s " % tp,
                r"--> 200 OK \(%s \S+\) CSeq 1 INVITE Call-ID \S+ \[SDP answer\]" % tp,
                r"<-- BYE ", r"--> 200 OK \(\S+ \S+\) CSeq 2 BYE ",
                r"2 calls handled: removing the binding", r"unregistered: "):
        check(re.search(pat, out), "no %r in the output" % pat)
    check(out.count("[SDP answer]") == 2, "not two SDP answers")
    check(stop_with(d, signal.SIGTERM) == 0, "csipd exit status")


def case_answer_sipp_uac_udp(run):
    answer_sipp_uac(run, "udp")


def case_answer_sipp_uac_tcp(run):
    answer_sipp_uac(run, "tcp")


def case_answer_sipp_reinvite(run):
    d, udp, _ = start_csipd(run)
    a, contact_port = start_answer(run, "sip:127.0.0.1:%d" % udp, ["--ring", "0", "--calls", "1"])
    args = ["-sf", os.path.join(HERE, "uac_reinvite.xml"), "-s", "bob",
            "127.0.0.1:%d" % contact_port, "-m", "1", "-t", "u1", "-p", str(free_port()),
            "-trace_msg", "-message_file", run.path("sipp.msg")]
    s = run.spawn(sipp_cmd(run, "sipp", args, 60), "sipp")
    rc, stats = wait_sipp(run, s, "sipp", 60)
    expect_calls(run, "sipp", rc, stats, 1)
    rc = wait_exit(a, 30)
    out = show(run, "answer")
    check(rc == 0, "csip answer exit %d, want 0" % rc)
    answers = {}
    for direction, start, head, body in sipp_messages(run, "sipp.msg"):
        if direction == "received" and start.startswith("SIP/2.0 "):
            code = int(start.split(" ")[1])
            answers.setdefault(cseq_of(head), []).append((code, body))
    inv, reinv, upd = answers.get((1, "INVITE")), answers.get((2, "INVITE")), \
        answers.get((3, "UPDATE"))
    check(inv and reinv and upd, "responses %r" % sorted(answers))
    ok1, ok2, ok3 = [[b for c, b in r if c == 200][0] for r in (inv, reinv, upd)]
    # RFC 3264 §8: a changed description gets the next version, the same one keeps it.
    check(sdp_version(ok1) == 1 and sdp_version(ok2) == 2 and sdp_version(ok3) == 2,
          "o= versions %d, %d, %d; want 1, 2, 2" % (sdp_version(ok1), sdp_version(ok2),
                                                    sdp_version(ok3)))
    check(re.search(r"^m=audio \d+ RTP/AVP 0 101$", ok1, flags=re.M), "first answer %r" % ok1)
    check(re.search(r"^m=audio \d+ RTP/AVP 8$", ok2, flags=re.M), "re-INVITE answer %r" % ok2)
    check(ok3 == ok2, "the UPDATE's answer differs from the re-INVITE's")
    check(answers.get((5, "BYE")) and answers[(5, "BYE")][0][0] == 481,
          "the BYE on the ended dialog got %r" % answers.get((5, "BYE")))
    check(re.search(r"call 1: media: audio PCMA/8000 .*o= version: ours 2, peer's 2", out),
          "the re-INVITE's media not printed")
    check(stop_with(d, signal.SIGTERM) == 0, "csipd exit status")


# ---------------------------------------------------------------------------
# Through csipd


def csipd_call(run, transport, callee_hangs_up):
    host = "127.0.0.1"
    d, udp, tcp = start_csipd(run, host)
    port = udp if transport == "udp" else tcp
    server = "sip:%s:%d" % (host, port) + (";transport=tcp" if transport == "tcp" else "")
    a, _ = start_answer(run, server, ["--ring", "0.5", "--calls", "1"] +
                        (["--duration", "1"] if callee_hangs_up else []))
    rc, out = csip(run, ["call", "sip:bob@localhost", "--from", "sip:alice@localhost",
                         "--password", ALICE_PW, "--proxy", server, "--timeout", "10", "-v"] +
                   ([] if callee_hangs_up else ["--duration", "1"]), 60)
    check(rc == 0, "csip call exit %d, want 0" % rc)
    rc = wait_exit(a, 30)
    aout = show(run, "answer")
    check(rc == 0, "csip answer exit %d, want 0" % rc)
    tp = transport.upper()
    at = r"\(%s %s:%d\)" % (tp, re.escape(host), port)
    # what csipd sends to the callee comes from its listening port over UDP,
    # from a connection of its own over TCP
    at_callee = at if transport == "udp" else r"\(TCP %s:\d+\)" % re.escape(host)
    for pat in (r"--> INVITE sip:bob@localhost %s CSeq 1 " % at,
                r"<-- 407 Proxy Authentication Required %s CSeq 1 INVITE" % at,
                r"--> ACK sip:bob@localhost %s CSeq 1 .*\[sent by the transaction layer\]" % at,
                r"--> INVITE sip:bob@localhost %s CSeq 2 .*\[Proxy-Authorization \S+ nc=1\] "
                r"\[SDP offer\]" % at,
                r"<-- 180 Ringing %s CSeq 2 INVITE" % at, r"call: ringing",
                r"<-- 200 OK %s CSeq 2 INVITE .*\[SDP\]" % at,
                # the ACK follows the route set: to csipd, with its Record-Route as Route
                r"--> ACK sip:bob@127\.0\.0\.1:\d+;transport=%s %s CSeq 2 " % (transport, at),
                r"Route: <sip:%s:%d;lr" % (re.escape(host), port),
                r"call: media: audio PCMU/8000 with 127\.0\.0\.1:\d+ sendrecv, telephone-event "
                r"101"):
        check(re.search(pat, out), "caller: no %r in the output" % pat)
    for pat in (r"<-- INVITE sip:bob@127\.0\.0\.1:\d+;transport=%s %s CSeq 2 " % (transport,
                                                                              at_callee),
                r"call 1: from sip:alice@localhost, ringing for 0\.500 s",
                r"--> 180 Ringing %s" % r"\(%s \S+\)" % tp,
                r"--> 200 OK \(%s \S+\) CSeq 2 INVITE .*\[SDP answer\]" % tp,
                r"<-- ACK sip:bob@127\.0\.0\.1:\d+;transport=%s %s CSeq 2 " % (transport,
                                                                           at_callee),
                r"call 1: confirmed \(ACK received\)", r"unregistered: "):
        check(re.search(pat, aout), "callee: no %r in the output" % pat)
    if callee_hangs_up:
        check(re.search(r"--> BYE sip:alice@127\.0\.0\.1:\d+;transport=%s %s CSeq 1 " % (
            transport, at_callee if transport == "udp" else r"\(TCP \S+\)"), aout),
            "callee: no BYE through csipd")
        check("call 1: ended (our BYE answered 200)" in aout, "callee: BYE not answered 200")
        check(re.search(r"<-- BYE sip:alice@127\.0\.0\.1:\d+;transport=%s %s CSeq 1 " % (
            transport, at_callee), out), "caller: no BYE received")
        check("call: ended by the peer (BYE)" in out, "caller: the callee's BYE not taken")
    else:
        check(re.search(r"--> BYE sip:bob@127\.0\.0\.1:\d+;transport=%s %s CSeq 3 " % (
            transport, at), out), "caller: no BYE through csipd")
        check("call: ended (our BYE answered 200)" in out, "caller: BYE not answered 200")
        check("call 1: ended by the caller (BYE)" in aout, "callee: the caller's BYE not taken")
    # csipd logs a proxied transaction when it ends (an INVITE's 32 s later):
    # only its challenge is read here
    check(re.search(r"INVITE sip:bob@localhost from %s:127\.0\.0\.1:\d+ cid=\S+ -> 407" % tp,
                    run.log("csipd")), "csipd did not log its challenge")
    check(stop_with(d, signal.SIGTERM) == 0, "csipd exit status")
    show(run, "csipd")


def case_csipd_call_udp(run):
    csipd_call(run, "udp", False)


def case_csipd_call_tcp(run):
    csipd_call(run, "tcp", False)


def case_csipd_callee_bye_udp(run):
    csipd_call(run, "udp", True)


def case_csipd_callee_bye_tcp(run):
    csipd_call(run, "tcp", True)


def case_csipd_reject(run):
    d, udp, _ = start_csipd(run)
    server = "sip:127.0.0.1:%d" % udp
    a, _ = start_answer(run, server, ["--ring", "0.2", "--reject", "486", "--calls", "1"])
    rc, out = csip(run, ["call", "sip:bob@localhost", "--from", "sip:alice@localhost",
                         "--password", ALICE_PW, "--proxy", server, "--timeout", "10"])
    check(rc == 1, "csip call exit %d, want 1 (rejected)" % rc)
    check(re.search(r"<-- 486 Busy Here \(UDP 127\.0\.0\.1:%d\) CSeq 2 INVITE" % udp, out)
          and "final: 486 Busy Here" in out, "the 486 not reported")
    check("--> BYE" not in out, "a BYE after a rejection")
    rc = wait_exit(a, 30)
    aout = show(run, "answer")
    check(rc == 0, "csip answer exit %d" % rc)
    check(re.search(r"--> 486 Busy Here \(UDP \S+\) CSeq 2 INVITE", aout) and
          "call 1: rejected (486 Busy Here)" in aout, "the callee did not reject")
    # an unknown user: csipd's 404 ends the call at once
    rc, out = csip(run, ["call", "sip:carol@localhost", "--from", "sip:alice@localhost",
                         "--password", ALICE_PW, "--proxy", server, "--timeout", "10"])
    check(rc == 1 and "final: 404" in out, "a call to an unknown user: exit %d" % rc)
    check(stop_with(d, signal.SIGTERM) == 0, "csipd exit status")


def case_csipd_cancel(run):
    d, udp, _ = start_csipd(run)
    server = "sip:127.0.0.1:%d" % udp
    a, _ = start_answer(run, server, ["--ring", "20", "--calls", "2"])
    c = run.spawn([run.args.csip, "call", "sip:bob@localhost", "--from", "sip:alice@localhost",
                   "--password", ALICE_PW, "--proxy", server, "--timeout", "30"], "call")
    wait_output(run, "call", c, r"call: ringing", 1, 20)
    rc = stop_with(c, signal.SIGINT)
    out = show(run, "call")
    check(rc == 3, "csip call exit %d after SIGINT while ringing, want 3" % rc)
    for pat in (r"signal 2: cancelling the call",
                r"--> CANCEL sip:bob@localhost \(UDP 127\.0\.0\.1:%d\) CSeq 2 " % udp,
                r"<-- 200 OK \(UDP 127\.0\.0\.1:%d\) CSeq 2 CANCEL" % udp,
                r"<-- 487 Request Terminated \(UDP 127\.0\.0\.1:%d\) CSeq 2 INVITE" % udp,
                r"final: 487 Request Terminated \(cancelled: stopped\)"):
        check(re.search(pat, out), "caller: no %r in the output" % pat)
    aout = wait_output(run, "answer", a, r"call 1: cancelled by the caller", 1, 10)
    for pat in (r"<-- CANCEL sip:bob@127\.0\.0\.1:\d+;transport=udp \(UDP ",
                r"--> 200 OK \(UDP \S+\) CSeq 2 CANCEL",
                r"--> 487 Request Terminated \(UDP \S+\) CSeq 2 INVITE"):
        check(re.search(pat, aout), "callee: no %r in the output" % pat)
    # not answered within --timeout: cancelled, exit 1
    rc, out = csip(run, ["call", "sip:bob@localhost", "--from", "sip:alice@localhost",
                         "--password", ALICE_PW, "--proxy", server, "--timeout", "1.5"])
    check(rc == 1, "unanswered call: exit %d, want 1" % rc)
    check("call: no answer within 1500 ms: cancelling" in out and "--> CANCEL" in out and
          "final: 487 Request Terminated (cancelled: no answer in time)" in out,
          "the unanswered call was not cancelled")
    rc = wait_exit(a, 30)
    show(run, "answer")
    check(rc == 0, "csip answer exit %d" % rc)
    check(stop_with(d, signal.SIGTERM) == 0, "csipd exit status")


def case_csipd_reinvite_update(run):
    d, udp, _ = start_csipd(run)
    server = "sip:127.0.0.1:%d" % udp
    a, _ = start_answer(run, server, ["--ring", "0", "--calls", "1"])
    rc, out = csip(run, ["call", "sip:bob@localhost", "--from", "sip:alice@localhost",
                         "--password", ALICE_PW, "--proxy", server, "--timeout", "10",
                         "--reinvite", "0.5", "--update", "1", "--duration", "2"])
    check(rc == 0, "csip call exit %d, want 0" % rc)
    at = r"\(UDP 127\.0\.0\.1:%d\)" % udp
    for pat in (r"--> INVITE sip:bob@127\.0\.0\.1:\d+;transport=udp %s CSeq 3 .*\[SDP offer\]"
                % at,
                r"<-- 200 OK %s CSeq 3 INVITE .*\[SDP\]" % at,
                r"--> ACK sip:bob@127\.0\.0\.1:\d+;transport=udp %s CSeq 3 " % at,
                r"--> UPDATE sip:bob@127\.0\.0\.1:\d+;transport=udp %s CSeq 4 .*\[SDP offer\]"
                % at,
                r"<-- 200 OK %s CSeq 4 UPDATE .*\[SDP\]" % at,
                r"--> BYE sip:\S+ %s CSeq 5 " % at, r"call: ended \(our BYE answered 200\)"):
        check(re.search(pat, out), "caller: no %r in the output" % pat)
    # the same offer again: the same o= versions (RFC 3264 §8)
    check(out.count("(o= version: ours 1, peer's 1)") == 3, "versions changed")
    rc = wait_exit(a, 30)
    aout = show(run, "answer")
    check(rc == 0, "csip answer exit %d" % rc)
    for pat in (r"<-- INVITE \S+ \(UDP \S+\) CSeq 3 .*\[SDP\]",
                r"--> 200 OK \(UDP \S+\) CSeq 3 INVITE .*\[SDP answer\]",
                r"<-- ACK \S+ \(UDP \S+\) CSeq 3 ",
                r"<-- UPDATE \S+ \(UDP \S+\) CSeq 4 .*\[SDP\]",
                r"--> 200 OK \(UDP \S+\) CSeq 4 UPDATE .*\[SDP answer\]",
                r"call 1: ended by the caller \(BYE\)"):
        check(re.search(pat, aout), "callee: no %r in the output" % pat)
    check(stop_with(d, signal.SIGTERM) == 0, "csipd exit status")


def case_csipd_message(run):
    d, udp, tcp = start_csipd(run)
    server = "sip:127.0.0.1:%d" % udp
    a, _ = start_answer(run, server, ["--ring", "0"])
    text = "hello bob, \u00e7a va? \u20ac"
    rc, out = csip(run, ["message", "sip:bob@localhost", text, "--from", "sip:alice@localhost",
                         "--password", ALICE_PW, "--proxy", server, "--timeout", "10"])
    check(rc == 0, "csip message exit %d, want 0" % rc)
    at = r"\(UDP 127\.0\.0\.1:%d\)" % udp
    for pat in (r"--> MESSAGE sip:bob@localhost %s CSeq 1 " % at,
                r"<-- 407 Proxy Authentication Required %s CSeq 1 " % at,
                r"--> MESSAGE sip:bob@localhost %s CSeq 2 .*\[Proxy-Authorization \S+ nc=1\]" % at,
                r"<-- 200 OK %s CSeq 2 " % at, r"final: 200 OK"):
        check(re.search(pat, out), "sender: no %r in the output" % pat)
    aout = wait_output(run, "answer", a, r"message from sip:alice@localhost: ", 1, 10)
    check("message from sip:alice@localhost: %s\n" % text in aout, "the text is not printed")
    check(re.search(r"--> 200 OK \(UDP \S+\) CSeq 2 MESSAGE", aout), "MESSAGE not answered 200")
    # over TCP, a line break in the text shows as \n
    rc, out = csip(run, ["message", "sip:bob@localhost", "two\nlines", "--from",
                         "sip:alice@localhost", "--password", ALICE_PW, "--proxy",
                         "sip:127.0.0.1:%d;transport=tcp" % tcp, "--timeout", "10"])
    check(rc == 0, "csip message over TCP exit %d" % rc)
    wait_output(run, "answer", a, r"message from sip:alice@localhost: two\\nlines\n", 1, 10)
    rc, out = csip(run, ["message", "sip:bob@localhost", "hi", "--from", "sip:alice@localhost",
                         "--password", "wrong", "--proxy", server, "--timeout", "10"])
    check(rc == 1 and "were refused" in out, "wrong password: exit %d" % rc)
    check(out.count("--> MESSAGE") == 2, "wrong password: not exactly two MESSAGEs")
    rc = stop_with(a, signal.SIGINT)
    show(run, "answer")
    check(rc == 0, "csip answer exit %d after SIGINT" % rc)
    check(stop_with(d, signal.SIGTERM) == 0, "csipd exit status")


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
    return run_case(args, globals(), precheck=need_csipd)


def need_csipd(args):
    if (args.case.startswith("csipd_") or args.case.startswith("answer_")) and not args.csipd:
        raise Failure("--csipd not given")


if __name__ == "__main__":
    sys.exit(main())
