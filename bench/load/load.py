#!/usr/bin/env python3
"""SIP load benchmark: csipd beside Kamailio under SIPp, on loopback.

For each scenario (REGISTER without and with digest authentication), each server
is started fresh for every step on a free 127.0.0.1 UDP port, pinned to one core
(taskset -c 1), and SIPp, pinned to the other (taskset -c 0), sends RATE calls
per second for the step's length. A step passes when every call succeeded,
retransmissions stayed under 1 % of the calls, and SIPp achieved at least 95 %
of the rate. The server's CPU time is utime+stime (+ that of reaped children) of
every process of its session, read from /proc/PID/stat just before and just
after the SIPp run.

For each (scenario, server) a search finds the highest rate passed: the first
--cpu-repeats steps (5) are at --cpu-rate (1,000/s, the fixed rate at which CPU
per 1,000 calls is compared, their median reported; --cpu-seconds long), then
the rate at which the server would fill
90 % of its core at that CPU per call, then x --growth (1.5) until a step
fails, then bisection until the gap is under --resolution (10 %). The servers
of a scenario take turns step by step (the host's drift hits them alike). Steps
per search and the searches are bounded (--max-steps, --budget, shared evenly
by the scenarios; the steps at one rate after them are not counted); a
search cut short is reported as such. When both searches
of a scenario are done, both run --equal-repeats more steps each, in turn, at
the highest rate Kamailio passed, so that CPU per call near Kamailio's
saturation is compared at one rate (CPU per call falls as the rate rises),
as the medians of their passed steps there.

    load.py [--csipd PATH] [--servers kamailio,csipd] [--scenarios register,register_auth]
            [--seconds S] [--cpu-seconds S] [--cpu-repeats N] [--equal-repeats N]
            [--max-steps N] [--budget S] [--quick]
            [--out DIR]

Defaults may also come from the environment: LOAD_SECONDS, LOAD_CPU_SECONDS,
LOAD_CPU_REPEATS, LOAD_MAX_STEPS, LOAD_BUDGET, LOAD_QUICK=1, LOAD_SERVERS, LOAD_SCENARIOS. Prints
a table at the end and writes every step to OUT/results-<time>.jsonl and the
table to OUT/results-<time>.txt (step files in OUT/<time>/). Exit status 0 unless
the harness itself failed (a missing server is reported and left out).
"""
import argparse
import csv
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HZ = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
DOMAIN = "127.0.0.1"  # the AORs' domain (csipd --domain; Kamailio's realm is the To host)
PASSWORD = "load-pass"  # the same in kamailio/registrar_auth.cfg
SERVER_CPU = "1"
SIPP_CPU = "0"


class HarnessError(Exception):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# /proc


def proc_stat(pid):
    """Fields of /proc/PID/stat after the command name (index 0 = state), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def session_pids(sid):
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st is not None and int(st[3]) == sid:
            pids.append(int(name))
    return pids


def session_cpu(sid):
    """{pid: ticks} for every process of session sid: utime+stime+cutime+cstime."""
    out = {}
    for pid in session_pids(sid):
        st = proc_stat(pid)
        if st is not None:
            out[pid] = sum(int(x) for x in st[11:15])
    return out


def session_pss_kb(sid):
    """Proportional set size of the session's processes, summed (shared memory once)."""
    total = 0
    for pid in session_pids(sid):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_busy():
    """Ticks the whole machine spent in processes: user+nice+system. Interrupt and softirq
    time (much of it the loopback traffic of the benchmark itself) and steal are left out."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2]


def steal_ticks():
    """{cpu: steal ticks} per core: time the hypervisor gave this machine's cores to others."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            v = line.split()
            if v and v[0].startswith("cpu") and v[0] != "cpu":
                out[v[0][3:]] = int(v[8])
    return out


def ksoftirqd_ticks():
    """utime+stime of the ksoftirqd threads: mostly the loopback traffic of the step itself."""
    return sum(t for c, t in all_ticks().values() if c.startswith("ksoftirqd"))


def all_ticks():
    """{pid: (name, utime+stime)} of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None:
                try:
                    with open("/proc/%s/comm" % name) as f:
                        comm = f.read().strip()
                except OSError:
                    comm = "?"
                out[int(name)] = (comm, int(st[11]) + int(st[12]))
    return out


def udp_errors():
    """Host-wide UDP RcvbufErrors (datagrams dropped on a full receive buffer)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def udp_bound(port):
    want = ":%04X" % port
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    if line.split()[1].endswith(want):
                        return True
        except OSError:
            pass
    return False


def free_port():
    """A UDP port of 127.0.0.1 that nothing holds (bound, then released)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        port = s.getsockname()[1]
        s.close()
        if not udp_bound(port):
            return port
    raise HarnessError("no free UDP port on 127.0.0.1")


def pinning_possible():
    try:
        return os.cpu_count() >= 2 and shutil.which("taskset") is not None and \
            {0, 1} <= os.sched_getaffinity(0)
    except OSError:
        return False


PIN = False  # set in main()
BUSY = False  # the last wait for a quiet machine ran out


def pinned(cpu, cmd):
    return (["taskset", "-c", cpu] if PIN else []) + cmd


def foreign_load(seconds):
    """Cores used by processes over `seconds` (nothing of ours runs then), and the busiest."""
    p0, b0, t0 = all_ticks(), cpu_busy(), time.monotonic()
    time.sleep(seconds)
    p1, b1, t1 = all_ticks(), cpu_busy(), time.monotonic()
    busy = sorted(((t - p0[p][1] if p in p0 else t, c) for p, (c, t) in p1.items()),
                  reverse=True)
    top = ", ".join("%s %.0f%%" % (c, 100.0 * d / HZ / (t1 - t0)) for d, c in busy[:3] if d > 0)
    return (b1 - b0) / HZ / (t1 - t0), top


# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """One process started by the benchmark, in a session of its own (pid = sid)."""

    def __init__(self, cmd, name, stepdir, cwd=None):
        self.name = name
        self.out = os.path.join(stepdir, name + ".log")
        self.f = open(self.out, "w")
        self.p = subprocess.Popen(cmd, stdout=self.f, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=cwd or stepdir,
                                  start_new_session=True)
        self.pid = self.p.pid
        self.rusage = None
        self.rc = None

    def alive(self):
        if self.rc is not None:
            return False
        try:
            pid, status, ru = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
        self.rc = os.waitstatus_to_exitcode(status)
        self.rusage = ru
        self.p.returncode = self.rc  # Popen must not wait for it again
        return False

    def wait(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return not self.alive()

    def stop(self, seconds=10):
        """SIGTERM, then SIGKILL to each process left in its session (all of them ours)."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.wait(seconds)
        deadline = time.monotonic() + seconds
        while session_pids(self.pid) and time.monotonic() < deadline:
            self.alive()
            time.sleep(0.05)
        for pid in session_pids(self.pid):
            log("%s: process %d still there after SIGTERM: SIGKILL" % (self.name, pid))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.wait(5)
        self.f.close()

    def tail(self, n=2000):
        try:
            with open(self.out, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""


def first_error(path):
    """The first event SIPp reported in its error file, on one line."""
    try:
        with open(path, errors="replace") as f:
            text = f.read(8192)
    except OSError:
        return ""
    lines = [x for x in text.splitlines() if x.strip() and "following events" not in x]
    return lines[0].split(": ", 1)[-1][:200] if lines else ""


def truncate(path, limit=1 << 20):
    try:
        if os.path.getsize(path) > limit:
            os.truncate(path, limit)
            with open(path, "a") as f:
                f.write("\n[truncated to 1 MiB by load.py]\n")
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# Scenarios: what SIPp sends. Each server knows how to serve each scenario it takes part in.


class Scenario:
    """One SIPp client scenario against the server. A proxied scenario adds a SIPp UAS behind
    the server (on SIPp's core), whose address each server's start() is then given."""

    def __init__(self, name, title, uac, msgs, users=False):
        self.name = name
        self.title = title
        self.uac = os.path.join(HERE, uac)
        self.msgs = msgs  # requests the server receives per call, a transaction each
        self.users = users  # needs the injection file of users


SCENARIOS = {
    "register": Scenario("register", "REGISTER", "register.xml", 1),
    "register_auth": Scenario("register_auth", "REGISTER+digest", "register_auth.xml", 2,
                              users=True),
}


def write_users(path, n):
    """SIPp injection file: one line per user, "user;password"; calls take them in turn."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(n):
            f.write("load%d;%s\n" % (i, PASSWORD))


# ---------------------------------------------------------------------------------------------
# Servers


class Server:
    name = "?"

    def available(self):
        """None when usable, else the reason why not."""
        return None

    def prepare(self, scn, workdir, users_csv):
        """Once per scenario, before its steps."""

    def start(self, scn, stepdir, port, rate, seconds):
        raise NotImplementedError

    def ready(self, proc, port):
        return udp_bound(port)


class Kamailio(Server):
    name = "kamailio"
    CFG = {"register": "registrar.cfg", "register_auth": "registrar_auth.cfg"}

    def __init__(self, binary):
        self.binary = binary

    def available(self):
        if not self.binary:
            return "kamailio not found (Debian package kamailio; tools/deps.sh bench installs it)"
        return None

    def start(self, scn, stepdir, port, rate, seconds):
        run = os.path.join(stepdir, "run")
        os.makedirs(run, exist_ok=True)
        cfg = os.path.join(HERE, "kamailio", self.CFG[scn.name])
        # -DD: foreground, workers are its children; -E: log to stderr (errors only, see cfg);
        # -m/-M: shared and per-process memory in MB (usrloc holds every binding).
        cmd = [self.binary, "-DD", "-E", "-m", "1024", "-M", "16", "-f", cfg,
               "-l", "udp:%s:%d" % (HOST, port), "-Y", run]
        return Proc(pinned(SERVER_CPU, cmd), "server", stepdir)

    def ready(self, proc, port):
        # bound, and its process count (attendant, 2 receivers, timers) steady for 0.3 s
        if not udp_bound(port):
            return False
        n = len(session_pids(proc.pid))
        time.sleep(0.3)
        return n >= 3 and n == len(session_pids(proc.pid))


class Csipd(Server):
    name = "csipd"

    def __init__(self, binary):
        self.binary = binary
        self.template = None
        self.tmp = tempfile.gettempdir()

    def available(self):
        if not self.binary or not os.access(self.binary, os.X_OK):
            return "csipd not built (%s missing; `cmake --build --preset bench` builds it " \
                   "once apps/csipd exists)" % self.binary
        return None

    def base(self, db):
        return [self.binary, "--log-level", "warn", "--db", db, "--domain", DOMAIN]

    def prepare(self, scn, workdir, users_csv):
        """A database with every user of the injection file, copied for each step."""
        self.template = None
        self.tmp = workdir
        if not scn.users:
            return
        d = os.path.join(workdir, "csipd-template")
        os.makedirs(d, exist_ok=True)
        db = os.path.join(d, "csipd.db")
        t0 = time.monotonic()
        r = subprocess.run(self.base(db) + ["user", "import", users_csv],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise HarnessError("csipd user import failed (%d): %s" %
                               (r.returncode, (r.stderr or r.stdout)[-1000:]))
        log("csipd: %s users imported in %.1f s" % (users_csv_count(users_csv),
                                                     time.monotonic() - t0))
        self.template = d

    def start(self, scn, stepdir, port, rate, seconds):
        # in the temporary directory, one step's database at a time (they reach 100s of MB)
        d = os.path.join(self.tmp, "db-step")
        shutil.rmtree(d, ignore_errors=True)
        if self.template:
            shutil.copytree(self.template, d)
        else:
            os.makedirs(d)
        cmd = self.base(os.path.join(d, "csipd.db")) + ["--listen", "udp:%s:%d" % (HOST, port)]
        # A server transaction over UDP lives 32 s after its response (Timer J), longer than
        # a step: room for every transaction of the step (Kamailio's registrar keeps none).
        cmd += ["--max-txns", str(min(1 << 24, max(65536, int(rate * seconds * scn.msgs * 1.1))))]
        if not scn.users:
            cmd += ["--auth", "off"]
        else:
            # SIPp 3.6 answers the first challenge of a 401 only, and only with MD5
            cmd += ["--auth-algorithms", "MD5"]
        return Proc(pinned(SERVER_CPU, cmd), "server", stepdir)

    def ready(self, proc, port):
        return "ready" in proc.tail(4000) and udp_bound(port)


class Floor(Server):
    """A SIPp responder in the server's place: the load generator's and harness's limit."""
    name = "floor"
    XML = {"register": "responder.xml", "register_auth": "responder_auth.xml"}

    def __init__(self, sipp):
        self.sipp = sipp

    def start(self, scn, stepdir, port, rate, seconds):
        cmd = [self.sipp, "-sf", os.path.join(HERE, self.XML[scn.name]), "-i", HOST,
               "-p", str(port), "-bind_local", "-nostdin", "-buff_size", "4194304",
               "-timeout", "600s"]
        return Proc(pinned(SERVER_CPU, cmd), "server", stepdir)


def users_csv_count(path):
    with open(path) as f:
        return sum(1 for _ in f) - 1


# ---------------------------------------------------------------------------------------------
# One step


def read_stats(path):
    """Columns of the last line of SIPp's statistics file, and every line's (time, calls)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        raise ValueError("no statistics line")
    head = rows[0]

    def epoch(cell):  # "date<TAB>time<TAB>epoch"
        return float(cell.split("\t")[-1])

    last = dict(zip(head, rows[-1]))
    series = [(epoch(r[head.index("CurrentTime")]), int(r[head.index("OutgoingCall(C)")]))
              for r in rows[1:]]
    return last, epoch(last["StartTime"]), series


def duration_ms(cell):
    """SIPp's "HH:MM:SS:uuuuuu" in milliseconds (0 when absent)."""
    try:
        h, m, sec, us = (int(x) for x in cell.split(":"))
    except ValueError:
        return 0.0
    return round((h * 3600 + m * 60 + sec) * 1000 + us / 1000, 3)


def send_end(start, series, total):
    """When the total-th call was started, interpolated between the 1 s statistics lines."""
    pt, pc = start, 0
    for t, c in series:
        if c >= total:
            return pt + (total - pc) / (c - pc) * (t - pt) if c > pc else t
        pt, pc = t, c
    return None


def run_step(args, scn, server, rate, seconds, workdir, users_csv, index):
    total = rate * seconds
    stepdir = os.path.join(workdir, "%03d-%s-%s-%d" % (index, scn.name, server.name, rate))
    os.makedirs(stepdir)
    res = {"scenario": scn.name, "server": server.name, "rate": rate, "seconds": seconds,
           "calls": total, "dir": stepdir, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}

    # a quiet machine first (bounded): others' builds would steal the server's core
    # (after a wait that ran out, the next steps wait 5 s at most until the machine is quiet)
    global BUSY
    limit = 5 if BUSY else args.quiet_wait
    waited, (load, top) = 0.0, foreign_load(0.5)
    while load > args.quiet_max and waited < limit:
        if waited == 0:
            log("machine busy (%.2f cores used by others: %s); waiting up to %d s" %
                (load, top, limit))
        time.sleep(1.5)
        waited += 2.0
        load, top = foreign_load(0.5)
    BUSY = load > args.quiet_max
    res["load_before"] = round(load, 2)

    port = free_port()
    srv = server.start(scn, stepdir, port, rate, seconds)
    sipp = None
    try:
        deadline = time.monotonic() + 20
        while not server.ready(srv, port):
            if not srv.alive():
                raise HarnessError("%s exited at start (%s): %s" %
                                   (server.name, srv.rc, srv.tail()))
            if time.monotonic() > deadline:
                raise HarnessError("%s not ready on udp %s:%d after 20 s: %s" %
                                   (server.name, HOST, port, srv.tail()))
            time.sleep(0.05)
        time.sleep(args.settle)

        stat = os.path.join(stepdir, "sipp.csv")
        errors = os.path.join(stepdir, "sipp-errors.log")
        cmd = [args.sipp, "%s:%d" % (HOST, port), "-sf", scn.uac, "-i", HOST,
               "-p", str(free_port()), "-bind_local", "-nostdin", "-buff_size", "4194304",
               "-key", "domain", DOMAIN, "-r", str(rate), "-rp", "1000", "-m", str(total),
               "-timeout", "%ds" % (seconds + args.tail), "-recv_timeout", "5000",
               "-trace_stat", "-stf", stat, "-fd", "1", "-trace_err", "-error_file", errors]
        if scn.users:
            cmd += ["-inf", users_csv]
        cpu0 = session_cpu(srv.pid)
        busy0, soft0, udp0, w0 = cpu_busy(), ksoftirqd_ticks(), udp_errors(), time.monotonic()
        steal0 = steal_ticks()
        sipp = Proc(pinned(SIPP_CPU, cmd), "sipp", stepdir)
        if not sipp.wait(seconds + args.tail + 15):
            log("sipp still running %d s after its end: stopped" % (args.tail + 15))
            sipp.stop()
        cpu1 = session_cpu(srv.pid)
        busy1, soft1, udp1, w1 = cpu_busy(), ksoftirqd_ticks(), udp_errors(), time.monotonic()
        steal1 = steal_ticks()
        alive = srv.alive()
        pss = session_pss_kb(srv.pid)
    finally:
        srv.stop()
        if sipp is not None and sipp.rc is None:
            sipp.stop()
    for f in ("sipp-errors.log", "server.log", "sipp.log"):
        truncate(os.path.join(stepdir, f))

    wall = w1 - w0
    server_s = sum(cpu1.get(p, 0) - t for p, t in cpu0.items() if p in cpu1) / HZ + \
        sum(t for p, t in cpu1.items() if p not in cpu0) / HZ
    sipp_s = (sipp.rusage.ru_utime + sipp.rusage.ru_stime) if sipp.rusage else 0.0
    res.update({"server_alive": alive, "server_exit": srv.rc, "sipp_exit": sipp.rc,
                "server_procs": len(cpu1), "server_cpu_s": round(server_s, 3),
                "server_core_pct": round(100 * server_s / wall, 1) if wall > 0 else 0,
                "sipp_cpu_s": round(sipp_s, 3),
                "sipp_core_pct": round(100 * sipp_s / wall, 1) if wall > 0 else 0,
                "others_cores": round(max(0.0, (busy1 - busy0 - soft1 + soft0) / HZ - server_s -
                                          sipp_s) / wall, 2) if wall > 0 else 0,
                "ksoftirqd_cores": round((soft1 - soft0) / HZ / wall, 2) if wall > 0 else 0,
                "steal_pct": max([round(100.0 * (steal1[c] - t) / HZ / wall, 1)
                                  for c, t in steal0.items() if c in steal1] or [0.0])
                if wall > 0 else 0,
                "udp_rcvbuf_errors": udp1 - udp0, "wall_s": round(wall, 2),
                "server_pss_mb": round(pss / 1024.0, 1)})
    try:
        last, start, series = read_stats(os.path.join(stepdir, "sipp.csv"))
        ok = int(last["SuccessfulCall(C)"])
        retrans = int(last["Retransmissions(C)"])
        end = send_end(start, series, total)
        achieved = total / (end - start) if end and end > start else 0.0
        res.update({"successful": ok, "failed": total - ok, "retrans": retrans,
                    "retrans_pct": round(100.0 * retrans / total, 3),
                    "achieved": round(achieved, 1),
                    "rtt_ms": duration_ms(last.get("ResponseTime1(C)", ""))})
    except (OSError, ValueError, KeyError, IndexError) as e:
        res.update({"successful": 0, "failed": total, "retrans": 0, "retrans_pct": 0.0,
                    "achieved": 0.0, "rtt_ms": 0.0, "stats_error": str(e)})
    # CPU ms per 1,000 successful calls
    ok = res["successful"]
    res["cpu_ms_per_1000"] = round(server_s * 1e6 / ok, 1) if ok else None
    why = []
    if res["failed"]:
        why.append("%d failed" % res["failed"])
    if res["retrans_pct"] >= args.max_retrans_pct:
        why.append("retransmissions %.2f %%" % res["retrans_pct"])
    if res["achieved"] < args.min_achieved_pct / 100.0 * rate:
        why.append("achieved %.0f/s" % res["achieved"])
    if not alive:
        why.append("server exited (%s)" % srv.rc)
    if "stats_error" in res:
        why.append("no SIPp statistics (%s)" % res["stats_error"])
    if why:
        res["sipp_first_error"] = first_error(os.path.join(stepdir, "sipp-errors.log"))
        if "must use MD5" in res["sipp_first_error"]:
            why.append("SIPp answers only the first challenge, and only with MD5")
    res["pass"] = not why
    res["why"] = ", ".join(why)
    return res


# ---------------------------------------------------------------------------------------------
# Search for the highest rate passed


def rounded(rate, down=False):
    """A rate rounded to 100/s (500/s from 10,000/s on)."""
    step = 100 if rate < 10000 else 500
    return int(rate // step * step) if down else int((rate + step / 2) // step * step)


class Search:
    def __init__(self, scn, server, args):
        self.scn, self.server, self.args = scn, server, args
        self.best = 0      # highest rate passed
        self.fail = None   # lowest rate failed
        self.steps = []
        self.cut = None    # why the search stopped before converging
        self.equal_steps = []  # steps at Kamailio's highest passed rate (both servers)

    def next_rate(self):
        a = self.args
        if len(self.steps) >= a.max_steps + a.cpu_repeats - 1:
            self.cut = self.cut or "step limit"
            return None
        if len(self.steps) < a.cpu_repeats and all(x["pass"] for x in self.steps):
            return a.cpu_rate
        if self.fail is None:
            first = self.steps[0]
            if len(self.steps) == a.cpu_repeats and first["server_core_pct"] > 0:
                # the rate at which the server would fill 90 % of its core at the CPU per call
                # of the first step (an underestimate: CPU per call falls as the rate rises)
                r = max(self.best * 2, rounded(first["rate"] * 90.0 / first["server_core_pct"]))
            else:
                r = rounded(self.best * a.growth)
            if r > a.max_rate:
                if self.best >= a.max_rate:
                    self.cut = self.cut or "rate limit %d/s" % a.max_rate
                    return None
                r = a.max_rate
            return r
        lo = self.best if self.best else 0
        if lo == 0:  # nothing passed yet: halve
            r = self.fail // 2
            return r if r >= a.min_rate else None
        if (self.fail - lo) <= a.resolution * lo:
            return None
        r = rounded((lo + self.fail) / 2, down=True)
        return r if lo < r < self.fail else None

    def record(self, res):
        self.steps.append(res)
        if res["pass"]:
            self.best = max(self.best, res["rate"])
        else:
            self.fail = res["rate"] if self.fail is None else min(self.fail, res["rate"])

    def passed(self, rate):
        return [s for s in self.steps if s["pass"] and s["rate"] == rate]

    def top(self):
        ok = self.passed(self.best)
        return ok[-1] if ok else None

    def limited_by_sipp(self):
        """SIPp's core was nearly full at the highest pass or at the first failure: the limit
        found may be SIPp's own."""
        top = self.top()
        bad = [s for s in self.steps if not s["pass"] and s["rate"] == self.fail]
        return (top is not None and top.get("sipp_core_pct", 0) >= 80) or \
            (bool(bad) and bad[0].get("sipp_core_pct", 0) >= 90)


# ---------------------------------------------------------------------------------------------
# Report


def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else "-"


def report(searches, args, started, budget_hit):
    lines = []
    w = lines.append
    w("SIP load benchmark (SIPp on CPU %s, server on CPU %s, UDP 127.0.0.1, %d s steps; "
      "pass = no failed call, retransmissions < %g %%, achieved >= %g %% of the rate)" %
      (SIPP_CPU if PIN else "any", SERVER_CPU if PIN else "any", args.seconds,
       args.max_retrans_pct, args.min_achieved_pct))
    w("")
    hdr = "%-16s %-9s %12s %12s %18s %22s" % ("scenario", "server", "max calls/s",
                                              "first fail", "CPU ms/1000 @%d/s" % args.cpu_rate,
                                              "CPU ms/1000 @max (core)")
    w(hdr)
    w("-" * len(hdr))
    goals = []
    by_scn = {}
    for s in searches:
        by_scn.setdefault(s.scn.name, []).append(s)
    equal_lines = []
    paired_lines = []
    for name, ss in by_scn.items():
        fig = {}
        for s in ss:
            at = s.passed(args.cpu_rate)
            cpu_fixed = statistics.median([x["cpu_ms_per_1000"] for x in at]) if at else None
            top = s.top()
            cpu_top = top["cpu_ms_per_1000"] if top else None
            note = ""
            if s.limited_by_sipp():
                note = " (SIPp near its limit)"
            elif s.cut:
                note = " (search cut: %s)" % s.cut
            maxr = ("%d" % s.best) if s.best else "none"
            if s.fail is None and s.best:
                maxr = ">=" + maxr
            w("%-16s %-9s %12s %12s %18s %22s%s" % (
                s.scn.title, s.server.name, maxr, fmt(s.fail, "%d"), fmt(cpu_fixed),
                "%s (%s%%)" % (fmt(cpu_top), fmt(top["server_core_pct"] if top else None,
                                                   "%.0f")), note))
            fig[s.server.name] = (s.best or None, cpu_fixed, cpu_top,
                                  s.fail is not None or s.best >= args.max_rate)
        if "csipd" in fig and "kamailio" in fig:
            # the same steps paired in the order they ran (Kamailio's, then csipd's):
            # the median of the step ratios cancels slow drifts of the machine's load
            kat = [x for x in next(t for t in ss if t.server.name == "kamailio").steps
                   if x["rate"] == args.cpu_rate]
            cat = [x for x in next(t for t in ss if t.server.name == "csipd").steps
                   if x["rate"] == args.cpu_rate]
            pr = [x["cpu_ms_per_1000"] / y["cpu_ms_per_1000"] for x, y in zip(cat, kat)
                  if x["pass"] and y["pass"] and y["cpu_ms_per_1000"]]
            if pr:
                paired_lines.append("%s at %d/s: %s (%s)" % (
                    ss[0].scn.title, args.cpu_rate, "%.2f" % statistics.median(pr),
                    ", ".join("%.2f" % r for r in pr)))
            c, k = fig["csipd"], fig["kamailio"]
            w("%-16s %-9s %12s %12s %18s %22s" % (
                "", "csipd/kam", ratio(c[0], k[0]), "", ratio(c[1], k[1]), ratio(c[2], k[2])))
            ke = [x for x in next(t for t in ss if t.server.name == "kamailio").equal_steps
                  if x["pass"]]
            ce = [x for x in next(t for t in ss if t.server.name == "csipd").equal_steps
                  if x["pass"]]
            if ke and ce:
                # near saturation at one rate: the medians of both servers' passed steps at
                # Kamailio's highest passed rate (its search's step there and the repeats)
                km = statistics.median([x["cpu_ms_per_1000"] for x in ke])
                cm = statistics.median([x["cpu_ms_per_1000"] for x in ce])
                pairs = {}
                for x in ke + ce:
                    if "equal_pair" in x:
                        pairs.setdefault(x["equal_pair"], {})[x["server"]] = x
                pr = [p["csipd"]["cpu_ms_per_1000"] / p["kamailio"]["cpu_ms_per_1000"]
                      for _, p in sorted(pairs.items())
                      if "csipd" in p and "kamailio" in p and p["kamailio"]["cpu_ms_per_1000"]]
                equal_lines.append(
                    "%s at %d/s (Kamailio's highest): kamailio %s ms/1000 (median of %d: %s; "
                    "%s%% core), csipd %s ms/1000 (median of %d: %s; %s%% core): %s%s" % (
                        ss[0].scn.title, ke[0]["rate"], fmt(km), len(ke),
                        ", ".join(fmt(x["cpu_ms_per_1000"]) for x in ke),
                        fmt(statistics.median([x["server_core_pct"] for x in ke]), "%.0f"),
                        fmt(cm), len(ce), ", ".join(fmt(x["cpu_ms_per_1000"]) for x in ce),
                        fmt(statistics.median([x["server_core_pct"] for x in ce]), "%.0f"),
                        ratio(cm, km),
                        "; paired %.2f (%s)" % (statistics.median(pr),
                                                ", ".join("%.2f" % r for r in pr))
                        if pr else ""))
                c = c[:2] + (cm,) + c[3:]
                k = k[:2] + (km,) + k[3:]

            def verdict(a, b, ok):
                return "no figure" if a is None or b is None else "met" if ok(a, b) else "NOT met"

            goals.append("%s: CPU <= 1/2 of Kamailio's at %d/s: %s; near saturation: %s; "
                         "rate >= Kamailio's: %s" % (
                             ss[0].scn.title, args.cpu_rate,
                             verdict(c[1], k[1], lambda x, y: x <= 0.5 * y),
                             verdict(c[2], k[2], lambda x, y: x <= 0.5 * y),
                             verdict(c[0], k[0], lambda x, y: x >= y) if c[3] and k[3]
                             else "undecided (a search ended before a failure)"))
    w("")
    w("CPU = utime+stime of every process of the server, per 1,000 calls (a call is one "
      "REGISTER transaction; with digest, two).")
    w("@%d/s = median of the passed steps at that rate; @max = the step at the highest rate "
      "passed; (core) = share of its core then." % args.cpu_rate)
    if equal_lines:
        w("Equal rate near saturation (csipd/kam; this figure is the 'near saturation' one "
          "below):")
        for e in equal_lines:
            w("  " + e)
    if paired_lines:
        w("Paired steps (csipd/kam of each step at %d/s against Kamailio's step run just "
          "before it; median, then each):" % args.cpu_rate)
        for e in paired_lines:
            w("  " + e)
    if goals:
        w("Goal (csipd at most half of Kamailio's CPU per REGISTER, never fewer REGISTER/s):")
        for g in goals:
            w("  " + g)
    noisy = [s for ss in searches for s in ss.steps if s.get("others_cores", 0) > 0.15]
    if noisy:
        w("Note: %d step(s) ran while other processes used > 0.15 cores (see the raw file)." %
          len(noisy))
    if budget_hit:
        w("Note: the time budget (%d s) ran out; searches marked 'cut' did not converge." %
          args.budget)
    w("Run: %s, %.0f s." % (time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
                          time.time() - started))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def parse_args():
    quick = os.environ.get("LOAD_QUICK", "") not in ("", "0")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csipd", default=None, help="csipd binary (default: build/bench/...)")
    ap.add_argument("--kamailio", default=shutil.which("kamailio") or
                    (os.path.exists("/usr/sbin/kamailio") and "/usr/sbin/kamailio") or None)
    ap.add_argument("--sipp", default=shutil.which("sipp"))
    ap.add_argument("--servers", default=os.environ.get("LOAD_SERVERS", "kamailio,csipd"),
                    help="comma-separated: kamailio, csipd, floor (a SIPp responder)")
    ap.add_argument("--scenarios", default=os.environ.get("LOAD_SCENARIOS",
                                                          "register,register_auth"))
    ap.add_argument("--quick", action="store_true", default=quick,
                    help="short steps and searches (a smoke test, not a measurement)")
    ap.add_argument("--seconds", type=int, default=None, help="length of a step (5; quick 2)")
    ap.add_argument("--cpu-seconds", type=int, default=None,
                    help="length of the step at --cpu-rate (10; quick 3)")
    ap.add_argument("--cpu-repeats", type=int, default=None,
                    help="steps at --cpu-rate per search, their median reported (5; quick 1)")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="steps per search (10; quick 3)")
    ap.add_argument("--equal-repeats", type=int, default=None,
                    help="pairs of steps (Kamailio, then csipd) at Kamailio's highest passed "
                         "rate after each scenario's searches, medians reported (5; quick 1)")
    ap.add_argument("--budget", type=int, default=None,
                    help="seconds for the whole run, then searches stop (540; quick 120)")
    ap.add_argument("--cpu-rate", type=int, default=1000,
                    help="fixed rate at which CPU is compared; first step of each search")
    ap.add_argument("--growth", type=float, default=1.5,
                    help="rate factor from one passed step to the next until one fails "
                         "(after the second step, which is where the first step's CPU per "
                         "call would fill 90 %% of the core)")
    ap.add_argument("--max-rate", type=int, default=64000)
    ap.add_argument("--min-rate", type=int, default=100)
    ap.add_argument("--resolution", type=float, default=0.1,
                    help="stop bisecting when (fail - pass) <= this x pass")
    ap.add_argument("--users", type=int, default=100000,
                    help="users in the injection file (calls beyond reuse them in turn)")
    ap.add_argument("--max-retrans-pct", type=float, default=1.0)
    ap.add_argument("--min-achieved-pct", type=float, default=95.0)
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds between the server's readiness and the load")
    ap.add_argument("--quiet-max", type=float, default=0.3,
                    help="cores others may use before a step starts without waiting")
    ap.add_argument("--quiet-wait", type=int, default=30,
                    help="longest wait for a quiet machine before a step (s)")
    ap.add_argument("--max-steal", type=float, default=2.0,
                    help="a step that failed while the hypervisor took more than this %% of a "
                         "core (steal time) is run once more")
    ap.add_argument("--suspect-core", type=float, default=75.0,
                    help="a step that failed while neither the server's core nor SIPp's was "
                         "this %% busy (a stall of the host rather than a saturation) is run "
                         "once more")
    ap.add_argument("--tail", type=int, default=10,
                    help="seconds SIPp may run past the step's length (then open calls fail)")
    ap.add_argument("--noise", type=float, default=0.3,
                    help="a step that failed while other processes used more cores than "
                         "this is run once more")
    ap.add_argument("--out", default=os.path.join("build", "bench", "load"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    a.seconds = a.seconds or env_int("LOAD_SECONDS", 2 if a.quick else 5)
    a.cpu_seconds = a.cpu_seconds or env_int("LOAD_CPU_SECONDS", 3 if a.quick else 10)
    a.max_steps = a.max_steps or env_int("LOAD_MAX_STEPS", 3 if a.quick else 10)
    a.cpu_repeats = max(1, a.cpu_repeats or env_int("LOAD_CPU_REPEATS", 1 if a.quick else 5))
    a.budget = a.budget or env_int("LOAD_BUDGET", 120 if a.quick else 540)
    if a.equal_repeats is None:
        a.equal_repeats = env_int("LOAD_EQUAL_REPEATS", 1 if a.quick else 5)
    if a.quick:
        a.users = min(a.users, 20000)
    return a


def main():
    global PIN
    args = parse_args()
    root = os.path.abspath(os.path.join(HERE, "..", ".."))
    if args.csipd is None:
        args.csipd = os.path.join(root, "build", "bench", "apps", "csipd", "csipd")
    args.csipd = os.path.abspath(args.csipd)
    args.out = os.path.abspath(args.out)
    if not args.sipp:
        log("sipp not found (Debian package sip-tester; tools/deps.sh bench installs it)")
        return 1
    PIN = pinning_possible()
    if PIN:
        os.sched_setaffinity(0, {int(SIPP_CPU)})  # this driver stays off the server's core
    else:
        log("warning: cannot pin to CPUs 0 and 1 (need 2 CPUs and taskset): running unpinned")

    known = {"kamailio": Kamailio(args.kamailio), "csipd": Csipd(args.csipd),
             "floor": Floor(args.sipp)}
    servers = []
    for name in args.servers.split(","):
        name = name.strip()
        if name not in known:
            log("unknown server %r (kamailio, csipd, floor)" % name)
            return 2
        why = known[name].available()
        if why:
            log("%s: left out: %s" % (name, why))
        else:
            servers.append(known[name])
    scenarios = []
    for name in args.scenarios.split(","):
        if name.strip() not in SCENARIOS:
            log("unknown scenario %r (%s)" % (name, ", ".join(SCENARIOS)))
            return 2
        scenarios.append(SCENARIOS[name.strip()])
    if not servers:
        log("no server to measure")
        return 1

    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(args.out, exist_ok=True)
    stepsdir = os.path.join(args.out, stamp)
    os.makedirs(stepsdir)
    raw = os.path.join(args.out, "results-%s.jsonl" % stamp)
    tmp = tempfile.mkdtemp(prefix="csip-load-")
    started = time.time()
    budget_hit = False
    searches = []
    index = 0
    log("load benchmark: servers %s, scenarios %s, %d s steps, <= %d steps per search, "
        "budget %d s; steps in %s" % (",".join(s.name for s in servers),
                                      ",".join(s.name for s in scenarios), args.seconds,
                                      args.max_steps, args.budget, stepsdir))

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored
    interrupted = False
    try:
        with open(raw, "w") as rawf:
            rawf.write(json.dumps({"run": stamp, "pinned": PIN, "seconds": args.seconds,
                                   "cpu_seconds": args.cpu_seconds, "growth": args.growth,
                                   "cpu_rate": args.cpu_rate, "users": args.users,
                                   "sipp": args.sipp, "kamailio": args.kamailio,
                                   "csipd": args.csipd, "ncpu": os.cpu_count(),
                                   "rmem_max": open("/proc/sys/net/core/rmem_max").read().strip()})
                       + "\n")
            repeats_s = 0.0  # time of the steps at Kamailio's highest rate: not the searches'
            for n, scn in enumerate(scenarios):
                # each scenario's share of what is left of the budget (for its searches)
                end = time.time() + (args.budget - (time.time() - started - repeats_s)) / \
                    (len(scenarios) - n)
                users_csv = None
                if scn.users:
                    users_csv = os.path.join(tmp, "users-%s.csv" % scn.name)
                    write_users(users_csv, args.users)
                active = []
                for srv in servers:
                    try:
                        srv.prepare(scn, tmp, users_csv)
                    except (HarnessError, subprocess.TimeoutExpired) as e:
                        log("%s: left out of %s: %s" % (srv.name, scn.name, e))
                        continue
                    s = Search(scn, srv, args)
                    searches.append(s)
                    active.append(s)
                # the servers take turns, one step each, until every search is done
                while active:
                    for s in list(active):
                        if time.time() > end:
                            budget_hit = True
                            s.cut = s.cut or "time budget"
                            active.remove(s)
                            continue
                        rate = s.next_rate()
                        if rate is None:
                            active.remove(s)
                            continue
                        index += 1
                        secs = args.cpu_seconds if rate == args.cpu_rate else args.seconds
                        try:
                            res = run_step(args, scn, s.server, rate, secs, stepsdir, users_csv,
                                           index)
                        except HarnessError as e:
                            log("%s: %s: left out of %s" % (s.server.name, e, scn.name))
                            s.cut = "error, see the log"
                            active.remove(s)
                            continue
                        if not res["pass"] and time.time() < end and (
                                res["others_cores"] > args.noise or
                                res["steal_pct"] > args.max_steal or
                                max(res["server_core_pct"], res["sipp_core_pct"]) <
                                args.suspect_core):
                            log("failed with other processes at %.2f cores, steal %.1f %%, "
                                "server core %.0f %%, SIPp core %.0f %%: once more" %
                                (res["others_cores"], res["steal_pct"],
                                 res["server_core_pct"], res["sipp_core_pct"]))
                            res["run_again"] = True  # kept in the raw file, not counted
                            rawf.write(json.dumps(res) + "\n")
                            index += 1
                            res = run_step(args, scn, s.server, rate, secs, stepsdir, users_csv,
                                           index)
                        s.record(res)
                        rawf.write(json.dumps(res) + "\n")
                        rawf.flush()
                        log("%-13s %-8s %6d/s %s: ok %d/%d, retrans %.2f %%, achieved %.0f/s, "
                            "server %.2f s CPU = %s ms/1000 (%.0f %% core), sipp %.0f %% core, "
                            "others %.2f cores, steal %.1f %%, udp drops %d%s" % (
                                scn.name, s.server.name, rate, "PASS" if res["pass"] else "FAIL",
                                res["successful"], res["calls"], res["retrans_pct"],
                                res["achieved"], res["server_cpu_s"],
                                fmt(res["cpu_ms_per_1000"]), res["server_core_pct"],
                                res["sipp_core_pct"], res["others_cores"], res["steal_pct"],
                                res["udp_rcvbuf_errors"],
                                "" if res["pass"] else " (%s%s)" % (
                                    res["why"], "; SIPp: " + res["sipp_first_error"]
                                    if res.get("sipp_first_error") else "")))
                # Both servers again at Kamailio's highest passed rate, in turn (Kamailio,
                # then csipd), --equal-repeats times: CPU per call near saturation at one
                # rate, as medians (one step there is as noisy as one at --cpu-rate).
                kam = next((x for x in searches if x.scn is scn and
                            x.server.name == "kamailio"), None)
                mine = next((x for x in searches if x.scn is scn and
                             x.server.name == "csipd"), None)
                if kam and mine and kam.best and mine.best >= kam.best and \
                        kam.best != args.cpu_rate:
                    kam.equal_steps = [kam.top()]
                    mine.equal_steps = mine.passed(kam.best)[-1:]
                    t_rep = time.time()
                    for rep in range(args.equal_repeats):
                        for srch in (kam, mine):
                            index += 1
                            try:
                                res = run_step(args, scn, srch.server, kam.best, args.seconds,
                                               stepsdir, users_csv, index)
                            except HarnessError as e:
                                log("%s at Kamailio's rate: %s" % (srch.server.name, e))
                                continue
                            res["equal_rate"] = True
                            res["equal_pair"] = rep
                            rawf.write(json.dumps(res) + "\n")
                            rawf.flush()
                            srch.equal_steps.append(res)
                            log("%-13s %-8s %6d/s %s (at Kamailio's highest, %d of %d): "
                                "%s ms/1000 (%.0f %% core)" % (
                                    scn.name, srch.server.name, kam.best,
                                    "PASS" if res["pass"] else "FAIL", rep + 1,
                                    args.equal_repeats, fmt(res["cpu_ms_per_1000"]),
                                    res["server_core_pct"]))
                    repeats_s += time.time() - t_rep
    except KeyboardInterrupt:
        log("interrupted")
        interrupted = True
        return 130
    except HarnessError as e:
        log("error: %s" % e)
        return 1
    finally:
        if args.keep:
            log("temporary files kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        if searches:
            table = report(searches, args, started, budget_hit)
            if interrupted:
                table += "\nNote: the run was interrupted; these are the steps done until then."
            with open(os.path.join(args.out, "results-%s.txt" % stamp), "w") as f:
                f.write(table + "\n")
            print(table)
            print("raw results: %s" % raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
