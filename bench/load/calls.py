#!/usr/bin/env python3
"""SIP load benchmark, proxied calls: csipd beside Kamailio under SIPp, on loopback.

SIPp UAC -> server -> SIPp UAS: INVITE, (100), 180, 200, ACK, BYE, 200, no hold. The server
is a transaction-stateful proxy that Record-Routes the INVITE; ACK and BYE follow the route
set (SIPp keeps the 200's Record-Route). Kamailio runs tm + rr (kamailio/proxy_stateful.cfg,
the callee's address fixed with $du); csipd (--auth off) finds the callee in its location
service, where the driver REGISTERs the UAS's contact before each step.

Each step starts the server fresh on a free 127.0.0.1 UDP port, pinned to one core (taskset
-c 1); the SIPp UAS and UAC run on the other (taskset -c 0). A step passes when every call
succeeded (on both sides), UAC+UAS retransmissions stayed under 1 % of the calls, and the UAC
achieved at least 95 % of the rate. CPU: utime+stime of the server's session from /proc, just
before and just after the UAC run, per 1,000 successful calls. Memory: the server's peak
proportional set size during the step (sampled every 0.5 s).

First --cpu-repeats steps per server at --cpu-rate (1,000 calls/s, --cpu-seconds long),
the servers taking turns (the CPU figure is their median); then, per server, a search for
the highest rate passed (load.py's: where the first step's CPU per call would fill 90 % of
the core, then x1.5 until a failure, then bisection to 10 %), bounded by --max-steps per
search and --budget for the whole run. The servers take turns step by step.

    calls.py [--quick] [--servers kamailio,csipd] [--csipd PATH] [--budget S] [--out DIR]

Environment: CALLS_QUICK=1, CALLS_SERVERS, CALLS_BUDGET, CALLS_SECONDS, CALLS_CPU_SECONDS,
CALLS_CPU_REPEATS, CALLS_MAX_STEPS. Prints a table; writes OUT/calls-<time>.txt and .jsonl
(one JSON object per step) and the step files under OUT/calls-<time>/.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import load as L  # noqa: E402  (process, /proc, SIPp statistics and search helpers)

HOST = L.HOST
CALLEE = "uas"  # the callee's user: csipd's location service has its binding


class Scn:
    """What load.Search needs of a scenario."""
    name = "calls"
    title = "proxied call"


# ---------------------------------------------------------------------------------------------
# Servers


class Kamailio:
    name = "kamailio"
    cfg = os.path.join(HERE, "kamailio", "proxy_stateful.cfg")

    def __init__(self, binary):
        self.binary = binary

    def available(self):
        if not self.binary:
            return "kamailio not found (Debian package kamailio; tools/deps.sh bench installs it)"
        return None

    def start(self, stepdir, port, uas_port, rate, seconds):
        run = os.path.join(stepdir, "run")
        os.makedirs(run, exist_ok=True)
        cmd = [self.binary, "-DD", "-E", "-m", "1024", "-M", "16", "-f", self.cfg,
               "-l", "udp:%s:%d" % (HOST, port), "-Y", run,
               "-A", 'UAS="sip:%s:%d"' % (HOST, uas_port)]
        return L.Proc(L.pinned(L.SERVER_CPU, cmd), "server", stepdir)

    def ready(self, proc, port):
        if not L.udp_bound(port):
            return False
        n = len(L.session_pids(proc.pid))
        time.sleep(0.3)
        return n >= 3 and n == len(L.session_pids(proc.pid))

    def locate(self, port, uas_port):
        pass


class Csipd:
    name = "csipd"

    def __init__(self, binary):
        self.binary = binary

    def available(self):
        if not self.binary or not os.access(self.binary, os.X_OK):
            return "csipd not built (%s missing)" % self.binary
        return None

    def start(self, stepdir, port, uas_port, rate, seconds):
        d = os.path.join(stepdir, "db")
        os.makedirs(d)
        # four transactions per call (INVITE and BYE, server and client side), each kept up to
        # 32 s after its end (RFC 6026, Timer J): room for every one of the step
        txns = min(1 << 24, max(65536, int(rate * seconds * 4 * 1.2)))
        cmd = [self.binary, "--log-level", "warn", "--db", os.path.join(d, "csipd.db"),
               "--domain", L.DOMAIN, "--auth", "off", "--listen", "udp:%s:%d" % (HOST, port),
               "--max-txns", str(txns)]
        return L.Proc(L.pinned(L.SERVER_CPU, cmd), "server", stepdir)

    def ready(self, proc, port):
        return "ready" in proc.tail(4000) and L.udp_bound(port)

    def locate(self, port, uas_port):
        """REGISTER the UAS's contact as sip:uas@DOMAIN (no auth), bounded: 5 tries of 1 s."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((HOST, 0))
            s.settimeout(1.0)
            lport = s.getsockname()[1]
            for i in range(5):
                msg = ("REGISTER sip:%s:%d SIP/2.0\r\n"
                       "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKcallsreg%d\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: <sip:%s@%s>;tag=callsreg\r\n"
                       "To: <sip:%s@%s>\r\n"
                       "Call-ID: calls-register-%d@%s\r\n"
                       "CSeq: %d REGISTER\r\n"
                       "Contact: <sip:%s:%d>\r\n"
                       "Expires: 3600\r\n"
                       "Content-Length: 0\r\n\r\n") % (
                    HOST, port, HOST, lport, i, CALLEE, L.DOMAIN, CALLEE, L.DOMAIN, lport, HOST,
                    i + 1, HOST, uas_port)
                s.sendto(msg.encode(), (HOST, port))
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    try:
                        data = s.recv(65535).decode("latin-1")
                    except socket.timeout:
                        break
                    code = data.split(" ", 2)[1] if data.startswith("SIP/2.0 ") else ""
                    if code == "200":
                        return
                    if code and code[0] in "3456":
                        raise L.HarnessError("REGISTER of the callee: %s" %
                                             data.split("\r\n", 1)[0])
            raise L.HarnessError("REGISTER of the callee: no 200 in 5 s")
        finally:
            s.close()


# ---------------------------------------------------------------------------------------------
# One step


def wait_quiet(args):
    limit = 5 if L.BUSY else args.quiet_wait
    waited, (load, top) = 0.0, L.foreign_load(0.5)
    while load > args.quiet_max and waited < limit:
        if waited == 0:
            L.log("machine busy (%.2f cores used by others: %s); waiting up to %d s" %
                  (load, top, limit))
        time.sleep(1.5)
        waited += 2.0
        load, top = L.foreign_load(0.5)
    L.BUSY = load > args.quiet_max
    return load


class PeakMem(threading.Thread):
    """Samples the PSS of a session every 0.5 s until stopped; keeps the peak (kB)."""

    def __init__(self, sid):
        super().__init__(daemon=True)
        self.pids, self.peak, self.halt = L.session_pids(sid), 0, threading.Event()
        self.start()

    def pss(self):
        total = 0
        for pid in self.pids:  # the server's processes are all up once it is ready
            try:
                with open("/proc/%d/smaps_rollup" % pid) as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
                            break
            except OSError:
                pass
        return total

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, self.pss())
            self.halt.wait(0.5)

    def stop(self):
        self.halt.set()
        self.join(5)
        self.peak = max(self.peak, self.pss())
        return self.peak


def last_stats(path):
    """The last statistics line of a SIPp -trace_stat file as a dict ({} when none)."""
    try:
        last, _, _ = L.read_stats(path)
        return last
    except (OSError, ValueError, KeyError, IndexError):
        return {}


def sipp_base(args, port, stepdir, name):
    return [args.sipp, "-i", HOST, "-p", str(port), "-bind_local", "-nostdin",
            "-buff_size", "4194304", "-trace_stat", "-stf", os.path.join(stepdir, name + ".csv"),
            "-fd", "1", "-trace_err", "-error_file", os.path.join(stepdir, name + "-errors.log")]


def run_step(args, server, rate, seconds, workdir, index):
    total = rate * seconds
    stepdir = os.path.join(workdir, "%03d-calls-%s-%d" % (index, server.name, rate))
    os.makedirs(stepdir)
    res = {"server": server.name, "rate": rate, "seconds": seconds, "calls": total,
           "dir": stepdir, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "loadavg": [round(x, 2) for x in os.getloadavg()]}
    res["load_before"] = round(wait_quiet(args), 2)

    port, uas_port = L.free_port(), L.free_port()
    while uas_port == port:
        uas_port = L.free_port()
    uas = L.Proc(L.pinned(L.SIPP_CPU, sipp_base(args, uas_port, stepdir, "uas") + [
        "-sf", os.path.join(HERE, "uas_call.xml"), "-m", str(total),
        "-timeout", "%ds" % (seconds + args.tail + 10)]), "uas", stepdir)
    srv = server.start(stepdir, port, uas_port, rate, seconds)
    uac = mem = None
    try:
        deadline = time.monotonic() + 20
        while not (server.ready(srv, port) and L.udp_bound(uas_port)):
            for p, what in ((srv, server.name), (uas, "SIPp UAS")):
                if not p.alive():
                    raise L.HarnessError("%s exited at start (%s): %s" % (what, p.rc, p.tail()))
            if time.monotonic() > deadline:
                raise L.HarnessError("%s not ready on udp %s:%d after 20 s: %s" %
                                     (server.name, HOST, port, srv.tail()))
            time.sleep(0.05)
        server.locate(port, uas_port)
        time.sleep(args.settle)

        cmd = sipp_base(args, L.free_port(), stepdir, "uac") + [
            "%s:%d" % (HOST, port), "-sf", os.path.join(HERE, "uac_call.xml"), "-s", CALLEE,
            "-r", str(rate), "-rp", "1000", "-m", str(total),
            "-timeout", "%ds" % (seconds + args.tail), "-recv_timeout", "5000"]
        mem = PeakMem(srv.pid)
        cpu0, uas0 = L.session_cpu(srv.pid), L.session_cpu(uas.pid)
        busy0, soft0, udp0, w0 = L.cpu_busy(), L.ksoftirqd_ticks(), L.udp_errors(), \
            time.monotonic()
        uac = L.Proc(L.pinned(L.SIPP_CPU, cmd), "uac", stepdir)
        if not uac.wait(seconds + args.tail + 15):
            L.log("SIPp UAC still running %d s after its end: stopped" % (args.tail + 15))
            uac.stop()
        cpu1, uas1 = L.session_cpu(srv.pid), L.session_cpu(uas.pid)
        busy1, soft1, udp1, w1 = L.cpu_busy(), L.ksoftirqd_ticks(), L.udp_errors(), \
            time.monotonic()
        peak = mem.stop()
        mem = None
        alive = srv.alive()
        # the UAS ends by itself once its calls are done (4 s time-wait after the last BYE)
        if not uas.wait(10):
            uas.stop()
    finally:
        if mem is not None:
            mem.stop()
        srv.stop()
        for p in (uac, uas):
            if p is not None and p.rc is None:
                p.stop()
    for f in ("uac-errors.log", "uas-errors.log", "server.log", "uac.log", "uas.log"):
        L.truncate(os.path.join(stepdir, f))

    def delta(a, b):
        return (sum(b.get(p, 0) - t for p, t in a.items() if p in b) +
                sum(t for p, t in b.items() if p not in a)) / L.HZ

    wall = w1 - w0
    server_s = delta(cpu0, cpu1)
    sipp_s = delta(uas0, uas1) + \
        ((uac.rusage.ru_utime + uac.rusage.ru_stime) if uac.rusage else 0.0)
    res.update({
        "server_alive": alive, "server_exit": srv.rc, "uac_exit": uac.rc, "uas_exit": uas.rc,
        "server_cpu_s": round(server_s, 3),
        "server_core_pct": round(100 * server_s / wall, 1) if wall > 0 else 0,
        "sipp_cpu_s": round(sipp_s, 3),
        "sipp_core_pct": round(100 * sipp_s / wall, 1) if wall > 0 else 0,
        "others_cores": round(max(0.0, (busy1 - busy0 - soft1 + soft0) / L.HZ - server_s -
                                  sipp_s) / wall, 2) if wall > 0 else 0,
        "ksoftirqd_cores": round((soft1 - soft0) / L.HZ / wall, 2) if wall > 0 else 0,
        "udp_rcvbuf_errors": udp1 - udp0, "wall_s": round(wall, 2),
        "server_peak_pss_mb": round(peak / 1024.0, 1)})
    try:
        last, start, series = L.read_stats(os.path.join(stepdir, "uac.csv"))
        ok = int(last["SuccessfulCall(C)"])
        end = L.send_end(start, series, total)
        achieved = total / (end - start) if end and end > start else 0.0
        uas_last = last_stats(os.path.join(stepdir, "uas.csv"))
        uas_failed = int(uas_last.get("FailedCall(C)", 0) or 0)
        retrans = int(last["Retransmissions(C)"]) + \
            int(uas_last.get("Retransmissions(C)", 0) or 0)
        res.update({"successful": ok, "failed": total - ok, "uas_failed": uas_failed,
                    "retrans": retrans, "retrans_pct": round(100.0 * retrans / total, 3),
                    "achieved": round(achieved, 1),
                    "rtt_ms": L.duration_ms(last.get("ResponseTime1(C)", ""))})
    except (OSError, ValueError, KeyError, IndexError) as e:
        res.update({"successful": 0, "failed": total, "uas_failed": 0, "retrans": 0,
                    "retrans_pct": 0.0, "achieved": 0.0, "rtt_ms": 0.0, "stats_error": str(e)})
    ok = res["successful"]
    res["cpu_ms_per_1000"] = round(server_s * 1e6 / ok, 1) if ok else None
    why = []
    if res["failed"]:
        why.append("%d failed" % res["failed"])
    if res["uas_failed"]:
        why.append("%d failed at the UAS" % res["uas_failed"])
    if res["retrans_pct"] >= args.max_retrans_pct:
        why.append("retransmissions %.2f %%" % res["retrans_pct"])
    if res["achieved"] < args.min_achieved_pct / 100.0 * rate:
        why.append("achieved %.0f/s" % res["achieved"])
    if not alive:
        why.append("server exited (%s)" % srv.rc)
    if "stats_error" in res:
        why.append("no SIPp statistics (%s)" % res["stats_error"])
    if why:
        res["sipp_first_error"] = L.first_error(os.path.join(stepdir, "uac-errors.log")) or \
            L.first_error(os.path.join(stepdir, "uas-errors.log"))
    res["pass"] = not why
    res["why"] = ", ".join(why)
    return res


# ---------------------------------------------------------------------------------------------
# Report


def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def converged(s, args):
    return s.best and s.fail is not None and s.fail - s.best <= args.resolution * s.best


def report(runs, args, started, budget_hit, load_start, interrupted=False):
    """runs: [(server, search, [CPU steps at --cpu-rate])]."""
    lines = []
    w = lines.append
    w("Proxied calls: SIPp UAC -> server -> SIPp UAS, INVITE/180/200/ACK/BYE/200, "
      "stateful with Record-Route (SIPp on CPU %s, server on CPU %s, UDP 127.0.0.1)" %
      (L.SIPP_CPU if L.PIN else "any", L.SERVER_CPU if L.PIN else "any"))
    w("pass = no failed call (UAC and UAS), retransmissions < %g %%, achieved >= %g %% of the "
      "rate; %d s search steps, %d x %d s at %d/s" % (
          args.max_retrans_pct, args.min_achieved_pct, args.seconds, args.cpu_repeats,
          args.cpu_seconds, args.cpu_rate))
    w("")
    hdr = "%-9s %11s %10s %26s %22s %16s" % (
        "server", "max calls/s", "first fail", "CPU ms/1000 @%d/s (n)" % args.cpu_rate,
        "CPU ms/1000 @max (core)", "peak PSS MB @1k/@max")
    w(hdr)
    w("-" * len(hdr))
    fig = {}
    for srv, s, cpu in runs:
        good = [x["cpu_ms_per_1000"] for x in cpu if x["pass"]]
        med = statistics.median(good) if good else None
        spread = " (%d: %.0f-%.0f)" % (len(good), min(good), max(good)) if good else " (0)"
        top = s.top()
        mem1 = max([x["server_peak_pss_mb"] for x in cpu if x["pass"]] or [0]) or None
        note = ""
        if s.limited_by_sipp():
            note = " (SIPp near its limit)"
        elif s.cut:
            note = " (search cut: %s)" % s.cut
        maxr = ("%d" % s.best) if s.best else "none"
        if s.fail is None and s.best:
            maxr = ">=" + maxr
        w("%-9s %11s %10s %26s %22s %16s%s" % (
            srv.name, maxr, fmt(s.fail, "%d"), fmt(med) + spread,
            "%s (%s%%)" % (fmt(top["cpu_ms_per_1000"] if top else None),
                           fmt(top["server_core_pct"] if top else None, "%.0f")),
            "%s / %s" % (fmt(mem1, "%.0f"), fmt(top["server_peak_pss_mb"] if top else None,
                                                "%.0f")), note))
        sat = top["cpu_ms_per_1000"] if top and top["server_core_pct"] >= 75 else None
        fig[srv.name] = (s.best or None, med, top["cpu_ms_per_1000"] if top else None,
                         converged(s, args), s.limited_by_sipp(), sat)
    if "csipd" in fig and "kamailio" in fig:
        c, k = fig["csipd"], fig["kamailio"]
        w("%-9s %11s %10s %26s %22s" % ("csipd/kam", L.ratio(c[0], k[0]), "",
                                        L.ratio(c[1], k[1]), L.ratio(c[2], k[2])))
        w("")

        def verdict(a, b, ok):
            return "no figure" if a is None or b is None else "met" if ok(a, b) else "NOT met"

        rate_v = verdict(c[0], k[0], lambda x, y: x >= 2 * y)
        if not k[3]:
            rate_v = "undecided (Kamailio's search did not converge)"
        elif not c[3] and rate_v != "met":
            rate_v = "undecided (csipd's search did not converge)"
        elif c[4] and rate_v != "met":
            rate_v += " (csipd's figure is SIPp's limit)"
        w("Goal: csipd CPU per call <= 1/3 of Kamailio's at %d/s: %s; near saturation: %s; "
          "sustained rate >= 2x Kamailio's: %s" % (
              args.cpu_rate, verdict(c[1], k[1], lambda x, y: x <= y / 3.0),
              verdict(c[5], k[5], lambda x, y: x <= y / 3.0), rate_v))
    w("")
    w("CPU = utime+stime of every process of the server, per 1,000 successful calls; @%d/s = "
      "median of the passed steps at that rate (n: min-max); @max = the step at the highest "
      "rate passed, (core) its share of the server's core (the near-saturation verdict needs "
      ">= 75 %% for both). PSS = proportional set size of the server's processes, peak over "
      "the step." % args.cpu_rate)
    noisy = [x for _, s, cpu in runs for x in s.steps + cpu[1:] if x.get("others_cores", 0) > 0.15]
    w("Load average at start %s, at end %s; %d step(s) ran while other processes used > 0.15 "
      "cores." % (" ".join("%.2f" % x for x in load_start),
                  " ".join("%.2f" % x for x in os.getloadavg()), len(noisy)))
    if interrupted:
        w("Note: INTERRUPTED: the searches did not finish.")
    if budget_hit:
        w("Note: the time budget (%d s) ran out; searches marked 'cut' did not converge." %
          args.budget)
    w("Run: %s, %.0f s." % (time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
                          time.time() - started))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def parse_args():
    quick = os.environ.get("CALLS_QUICK", "") not in ("", "0")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csipd", default=None, help="csipd binary (default: build/bench/...)")
    ap.add_argument("--kamailio", default=shutil.which("kamailio") or
                    (os.path.exists("/usr/sbin/kamailio") and "/usr/sbin/kamailio") or None)
    ap.add_argument("--sipp", default=shutil.which("sipp"))
    ap.add_argument("--servers", default=os.environ.get("CALLS_SERVERS", "kamailio,csipd"))
    ap.add_argument("--quick", action="store_true", default=quick,
                    help="short steps and searches (a smoke test, not a measurement)")
    ap.add_argument("--seconds", type=int, default=None,
                    help="length of a search step (5; quick 2)")
    ap.add_argument("--cpu-seconds", type=int, default=None,
                    help="length of a step at --cpu-rate (10; quick 3)")
    ap.add_argument("--cpu-repeats", type=int, default=None,
                    help="steps per server at --cpu-rate, for the median (3; quick 1)")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="search steps per server after the first (8; quick 3)")
    ap.add_argument("--budget", type=int, default=None,
                    help="seconds for the whole run, then searches stop (480; quick 120)")
    ap.add_argument("--cpu-rate", type=int, default=1000)
    ap.add_argument("--growth", type=float, default=1.5)
    ap.add_argument("--max-rate", type=int, default=16000,
                    help="highest rate tried (the SIPp floor for calls is ~11,000/s here)")
    ap.add_argument("--min-rate", type=int, default=100)
    ap.add_argument("--resolution", type=float, default=0.1)
    ap.add_argument("--max-retrans-pct", type=float, default=1.0)
    ap.add_argument("--min-achieved-pct", type=float, default=95.0)
    ap.add_argument("--settle", type=float, default=0.5)
    ap.add_argument("--quiet-max", type=float, default=0.3)
    ap.add_argument("--quiet-wait", type=int, default=20)
    ap.add_argument("--tail", type=int, default=10,
                    help="seconds SIPp may run past the step's length (then open calls fail)")
    ap.add_argument("--noise", type=float, default=0.3,
                    help="a step that failed while others used more cores is run once more")
    ap.add_argument("--out", default=os.path.join("build", "bench", "load"))
    a = ap.parse_args()
    a.seconds = a.seconds or L.env_int("CALLS_SECONDS", 2 if a.quick else 5)
    a.cpu_seconds = a.cpu_seconds or L.env_int("CALLS_CPU_SECONDS", 3 if a.quick else 10)
    a.cpu_repeats = a.cpu_repeats or L.env_int("CALLS_CPU_REPEATS", 1 if a.quick else 3)
    a.max_steps = a.max_steps or L.env_int("CALLS_MAX_STEPS", 3 if a.quick else 8)
    a.max_steps += 1  # load.Search counts the first step at --cpu-rate
    a.budget = a.budget or L.env_int("CALLS_BUDGET", 120 if a.quick else 480)
    return a


def main():
    args = parse_args()
    root = os.path.abspath(os.path.join(HERE, "..", ".."))
    if args.csipd is None:
        args.csipd = os.path.join(root, "build", "bench", "apps", "csipd", "csipd")
    args.csipd = os.path.abspath(args.csipd)
    args.out = os.path.abspath(args.out)
    if not args.sipp:
        L.log("sipp not found (Debian package sip-tester; tools/deps.sh bench installs it)")
        return 1
    L.PIN = L.pinning_possible()
    if not L.PIN:
        L.log("warning: cannot pin to CPUs 0 and 1 (need 2 CPUs and taskset): running unpinned")
    else:
        # the driver (its memory sampler) stays off the server's core
        os.sched_setaffinity(0, {int(L.SIPP_CPU)})
    known = {"kamailio": Kamailio(args.kamailio), "csipd": Csipd(args.csipd)}
    servers = []
    for name in args.servers.split(","):
        name = name.strip()
        if name not in known:
            L.log("unknown server %r (kamailio, csipd)" % name)
            return 2
        why = known[name].available()
        if why:
            L.log("%s: left out: %s" % (name, why))
        else:
            servers.append(known[name])
    if not servers:
        L.log("no server to measure")
        return 1

    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(args.out, exist_ok=True)
    stepsdir = os.path.join(args.out, "calls-" + stamp)
    os.makedirs(stepsdir)
    raw = os.path.join(args.out, "calls-%s.jsonl" % stamp)
    started, load_start = time.time(), os.getloadavg()
    end = started + args.budget
    budget_hit = interrupted = False
    runs = [(srv, L.Search(Scn, srv, args), []) for srv in servers]
    index = [0]
    L.log("proxied calls: servers %s, %d x %d s at %d/s, then %d s steps, <= %d steps per "
          "search, budget %d s, load average %s; steps in %s" % (
              ",".join(s.name for s in servers), args.cpu_repeats, args.cpu_seconds,
              args.cpu_rate, args.seconds, args.max_steps - 1, args.budget,
              " ".join("%.2f" % x for x in load_start), stepsdir))

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)

    def step(rawf, srv, rate, secs):
        index[0] += 1
        res = run_step(args, srv, rate, secs, stepsdir, index[0])
        if not res["pass"] and res["others_cores"] > args.noise and time.time() < end:
            L.log("failed while other processes used %.2f cores: once more" %
                  res["others_cores"])
            index[0] += 1
            res = run_step(args, srv, rate, secs, stepsdir, index[0])
        rawf.write(json.dumps(res) + "\n")
        rawf.flush()
        L.log("calls %-8s %6d/s %s: ok %d/%d, retrans %.2f %%, achieved %.0f/s, server %.2f s "
              "CPU = %s ms/1000 (%.0f %% core), peak PSS %.0f MB, sipp %.0f %% core, others "
              "%.2f cores, load avg %.2f, udp drops %d%s" % (
                  srv.name, rate, "PASS" if res["pass"] else "FAIL", res["successful"],
                  res["calls"], res["retrans_pct"], res["achieved"], res["server_cpu_s"],
                  fmt(res["cpu_ms_per_1000"]), res["server_core_pct"],
                  res["server_peak_pss_mb"], res["sipp_core_pct"], res["others_cores"],
                  res["loadavg"][0], res["udp_rcvbuf_errors"],
                  "" if res["pass"] else " (%s%s)" % (
                      res["why"], "; SIPp: " + res["sipp_first_error"]
                      if res.get("sipp_first_error") else "")))
        return res

    try:
        with open(raw, "w") as rawf:
            rawf.write(json.dumps({"run": stamp, "pinned": L.PIN, "seconds": args.seconds,
                                   "cpu_seconds": args.cpu_seconds, "cpu_rate": args.cpu_rate,
                                   "cpu_repeats": args.cpu_repeats, "sipp": args.sipp,
                                   "kamailio": args.kamailio, "csipd": args.csipd,
                                   "loadavg": load_start}) + "\n")
            # the fixed-rate CPU steps, the servers taking turns
            for rep in range(args.cpu_repeats):
                for srv, s, cpu in runs:
                    if rep > 0 and time.time() > end:
                        budget_hit = True
                        break
                    try:
                        res = step(rawf, srv, args.cpu_rate, args.cpu_seconds)
                    except L.HarnessError as e:
                        L.log("%s: %s" % (srv.name, e))
                        s.cut = "error, see the log"
                        continue
                    cpu.append(res)
                    if rep == 0:
                        s.record(res)
            # the searches, step by step in turn
            active = [r for r in runs if r[1].steps]
            while active:
                for r in list(active):
                    srv, s, _ = r
                    if time.time() > end:
                        budget_hit = True
                        s.cut = s.cut or "time budget"
                        active.remove(r)
                        continue
                    rate = s.next_rate()
                    if rate is None:
                        active.remove(r)
                        continue
                    try:
                        s.record(step(rawf, srv, rate, args.seconds))
                    except L.HarnessError as e:
                        L.log("%s: %s" % (srv.name, e))
                        s.cut = "error, see the log"
                        active.remove(r)
    except KeyboardInterrupt:
        L.log("interrupted")
        interrupted = True
        return 130
    except L.HarnessError as e:
        L.log("error: %s" % e)
        return 1
    finally:
        if any(s.steps or cpu for _, s, cpu in runs):
            table = report(runs, args, started, budget_hit, load_start, interrupted)
            with open(os.path.join(args.out, "calls-%s.txt" % stamp), "w") as f:
                f.write(table + "\n")
            print(table)
            print("raw results: %s" % raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
