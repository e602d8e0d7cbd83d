#!/usr/bin/env python3
"""Tests of the csip command-line tool (standard library only).

Runs the built `csip` on the RFC 4475 torture messages and checks its JSON
output and exit codes.

    test_cli.py --csip build/apps/csip/csip --data tests/data/rfc4475 [CASE ...]

Without CASE every case runs. Exit status 0 when all pass.
"""

import argparse
import json
import os
import subprocess
import sys

CSIP = None
DATA = None


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def run(args, stdin=None):
    """Runs csip; returns (exit code, stdout bytes, stderr text)."""
    p = subprocess.run([CSIP] + args, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def load_json(out):
    """csip must print strict UTF-8 JSON, whatever bytes the message holds."""
    text = out.decode("utf-8")  # raises on a raw non-UTF-8 byte
    return json.loads(text)


def data(name):
    with open(os.path.join(DATA, name + ".dat"), "rb") as f:
        return f.read()


def parse(name, *opts, expect_rc=None):
    rc, out, err = run(["parse"] + list(opts) + [os.path.join(DATA, name + ".dat")])
    if expect_rc is not None:
        check(rc == expect_rc, "%s %s: exit %d, expected %d; stdout %r stderr %r"
              % (name, " ".join(opts), rc, expect_rc, out[:400], err))
    return rc, load_json(out)


def headers(msg, name):
    """The header objects whose canonical id (or, for unknown ones, name) is name."""
    return [h for h in msg["headers"] if (h["id"] or h["name"]) == name]


def one(msg, name):
    hs = headers(msg, name)
    check(len(hs) == 1, "expected one %s header, got %d" % (name, len(hs)))
    return hs[0]


# ---------------------------------------------------------------------------
# parse

def case_parse_wsinv():
    _, m = parse("wsinv", expect_rc=0)
    check(m["type"] == "request", "type")
    check(m["method"] == "INVITE", "method")
    check(m["version"] == "SIP/2.0", "version")
    ruri = m["request_uri"]
    check(ruri["scheme"] == "sip" and ruri["user"] == "vivekg", "request_uri %r" % ruri)
    check(ruri["host"] == "chair-dnrc.example.com", "request_uri host")
    check({"name": "unknownparam", "value": None} in ruri["params"], "request_uri params")

    check(one(m, "Max-Forwards")["parsed"] == 68, "Max-Forwards 0068 -> 68")
    cseq = one(m, "CSeq")
    check(cseq["name"] == "cseq", "CSeq name as written")
    check(cseq["parsed"] == {"number": 9, "method": "INVITE"}, "CSeq %r" % cseq.get("parsed"))
    to = one(m, "To")
    check(to["name"] == "TO", "To name as written")
    check(to["parsed"]["tag"] == "1918181833n", "To tag %r" % to.get("parsed"))
    check(to["parsed"]["uri"]["user"] == "vivekg", "To URI")
    frm = one(m, "From")
    check(frm["parsed"]["tag"] == "98asjd8", "From tag")
    check(one(m, "Call-ID")["parsed"] == "wsinv.ndaksdj@192.0.2.1", "Call-ID")
    check(one(m, "Content-Length")["parsed"] == 150, "Content-Length")
    ct = one(m, "Content-Type")["parsed"]
    check(ct["type"] == "application" and ct["subtype"] == "sdp", "Content-Type")

    # Unknown headers: kept verbatim, id null.
    unk = one(m, "UnknownHeaderWithUnusualValue")
    check(unk["id"] is None, "unknown header id")
    check(unk["value"] == ";;,,;;,;", "unknown header value %r" % unk["value"])
    check("parsed" not in unk, "no typed value for an unknown header")
    nf = one(m, "NewFangledHeader")
    check(nf["value"] == "newfangled value\r\n continued newfangled value",
          "folded value kept as written: %r" % nf["value"])

    # Via: two lines, the second ("v:") with two values.
    vias = headers(m, "Via")
    check(len(vias) == 2, "two Via lines")
    check(vias[1]["name"] == "v", "compact form kept")
    values = [v for h in vias for v in h["parsed"]]
    check(len(values) == 3, "three Via values")
    check(values[0]["transport"] == "UDP" and values[0]["host"] == "192.0.2.2", "Via 1")
    check(values[0]["branch"] == "390skdjuw", "Via 1 branch")
    check(values[1]["transport"] == "TCP" and values[1]["branch"] == "z9hG4bK9ikj8", "Via 2")
    check(values[2]["host"] == "192.168.255.111" and values[2]["branch"] == "z9hG4bK30239",
          "Via 3")

    contact = one(m, "Contact")
    check(len(contact["parsed"]) == 1, "one Contact value")
    c = contact["parsed"][0]
    check(c["q"] == 0.33, "Contact q %r" % c.get("q"))
    check(c["uri"]["user"] == "jdrosen", "Contact URI")
    names = [p["name"] for p in c["params"]]
    check("newparam" in names and "secondparam" in names, "Contact params %r" % names)

    route = one(m, "Route")["parsed"]
    check(len(route) == 1 and route[0]["uri"]["host"] == "services.example.com", "Route")
    check(one(m, "Subject")["value"] == "", "empty Subject")
    check(m["body_length"] == 150, "body_length")
    check(m["ignored_octets"] == 0, "ignored_octets")


def case_parse_badvers():
    _, e = parse("badvers", expect_rc=1)
    check(e["status"] == 505, "status %r" % e.get("status"))
    for key in ("error", "message", "offset", "line", "column", "header", "reason"):
        check(key in e, "error object has %s" % key)
    check(isinstance(e["error"], str) and e["error"], "error name")
    check(e["line"] >= 1 and e["column"] >= 1, "position")


def case_parse_bext01_uas():
    _, e = parse("bext01", "--role", "uas", expect_rc=1)
    check(e["error"] == "ROLE_CHECK", "error %r" % e.get("error"))
    check(e["status"] == 420, "status %r" % e.get("status"))
    check(e["unsupported"] == ["nothingSupportsThis", "nothingSupportsThisEither"],
          "unsupported %r" % e.get("unsupported"))
    check(e["header"] == "Require", "header %r" % e.get("header"))
    check(e["role"] == "uas", "role")
    # A proxy looks at Proxy-Require instead.
    _, e = parse("bext01", "--role=proxy", expect_rc=1)
    check(e["status"] == 420, "proxy status %r" % e.get("status"))
    check(e["unsupported"] == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"],
          "proxy unsupported %r" % e.get("unsupported"))
    # Without a role the message is well formed.
    _, m = parse("bext01", expect_rc=0)
    check(one(m, "Require")["parsed"] == ["nothingSupportsThis", "nothingSupportsThisEither"],
          "Require tokens")


def case_parse_role_precedence():
    """A 400 from validation keeps its details; other role answers win over it."""
    msg = (b"FOO sip:a@example.com SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
           b"From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n"
           b"Call-ID: x1\r\nCSeq: 1 BAR\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    rc, out, _ = run(["parse"], stdin=msg)
    e = load_json(out)
    check(rc == 1 and e["error"] == "PARSE_CSEQ_MISMATCH" and e["status"] == 400, "%r" % e)
    check(e["header"] == "CSeq" and e["line"] == 6, "position of the fault")
    rc, out, _ = run(["parse", "--role", "uas"], stdin=msg)
    e = load_json(out)
    check(rc == 1 and e["error"] == "ROLE_CHECK" and e["status"] == 501, "unknown method: %r" % e)
    # A known method with a CSeq mismatch: the validation error, with its position.
    _, e = parse("mismatch01", "--role", "uas", expect_rc=1)
    check(e["error"] == "PARSE_CSEQ_MISMATCH" and e["status"] == 400, "%r" % e)
    check(e["line"] >= 1 and e["header"] == "CSeq", "details kept")
    # Responses are only validated.
    _, m = parse("noreason", "--role", "proxy", expect_rc=0)
    check(m["type"] == "response" and m["reason"] == "", "response with --role")


def case_parse_zeromf_proxy():
    _, e = parse("zeromf", "--role", "proxy", expect_rc=1)
    check(e["error"] == "ROLE_CHECK" and e["status"] == 483, "proxy: %r" % e)


def case_parse_zeromf_uas():
    _, m = parse("zeromf", "--role", "uas", expect_rc=0)
    check(one(m, "Max-Forwards")["parsed"] == 0, "Max-Forwards 0")


def stream_of(*names, sep=b"\r\n\r\n"):
    return sep + sep.join(data(n) for n in names) + b"\r\n"


def case_parse_stream():
    inp = stream_of("zeromf", "bext01")
    rc, out, err = run(["parse", "--stream", "-"], stdin=inp)
    check(rc == 0, "exit %d: %s %s" % (rc, out[:300], err))
    arr = load_json(out)
    check(isinstance(arr, list) and len(arr) == 2, "two objects: %r" % out[:300])
    check(one(arr[0], "Call-ID")["parsed"].startswith("zeromf."), "first message")
    check(one(arr[1], "Call-ID")["parsed"].startswith("bext01."), "second message")
    check(arr[0]["message_offset"] == 4, "first message after the CRLFCRLF keep-alive")
    check(inp[arr[1]["message_offset"]:].startswith(b"OPTIONS "), "second message offset")
    # Same from a file, with --role: the second message is refused and ends the array.
    rc, out, _ = run(["parse", "--stream", "--role", "uas", "-"], stdin=inp)
    arr = load_json(out)
    check(rc == 1 and len(arr) == 2, "role refusal in stream")
    check(arr[1]["error"] == "ROLE_CHECK" and arr[1]["status"] == 420, "420 in stream")
    # Only keep-alives: no message, no error.
    rc, out, _ = run(["parse", "--stream"], stdin=b"\r\n\r\n\r\n")
    check(rc == 0 and load_json(out) == [], "keep-alives only")


def case_parse_stream_incomplete():
    second = data("zeromf")
    inp = data("bext01") + b"\r\n" + second[:len(second) // 2]
    rc, out, _ = run(["parse", "--stream"], stdin=inp)
    arr = load_json(out)
    check(rc == 1, "exit %d" % rc)
    check(len(arr) == 2, "a message then the error: %r" % arr)
    check(arr[0]["type"] == "request", "first message parsed")
    check(arr[1]["error"] == "INCOMPLETE", "INCOMPLETE: %r" % arr[1])
    check(arr[1]["message_offset"] == len(data("bext01")) + 2, "offset of the cut message")
    # A message after an invalid one is not read.
    inp = data("badvers") + data("zeromf")
    rc, out, _ = run(["parse", "--stream"], stdin=inp)
    arr = load_json(out)
    check(rc == 1 and len(arr) == 1 and arr[0]["status"] == 505, "stop at the first error")


def dat_files():
    return sorted(f[:-4] for f in os.listdir(DATA) if f.endswith(".dat"))


def case_parse_all_files():
    """Every torture message, in both modes: exit 0 or 1 and well-formed JSON."""
    for name in dat_files():
        for opts in ([], ["--stream"], ["--role", "uas"], ["--role", "proxy", "--pretty"]):
            rc, out, err = run(["parse"] + opts + [os.path.join(DATA, name + ".dat")])
            check(rc in (0, 1), "%s %s: exit %d (%s)" % (name, opts, rc, err))
            check(err == "", "%s %s: stderr %r" % (name, opts, err))
            try:
                v = load_json(out)
            except (ValueError, UnicodeDecodeError) as e:
                raise Failure("%s %s: not JSON (%s): %r" % (name, opts, e, out[:200]))
            objs = v if "--stream" in opts else [v]
            check(isinstance(objs, list), "%s: stream output is an array" % name)
            for o in objs:
                check(("error" in o) or ("headers" in o), "%s: object kind" % name)
            check(rc == 0 or "error" in objs[-1], "%s %s: exit 1 ends with an error" % (name, opts))


def case_parse_valid_accepted():
    """The messages RFC 4475 calls valid are accepted without a role."""
    with open(os.path.join(DATA, "manifest.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    bad = []
    for row in rows:
        name, expectation = row[0], row[3]
        if not expectation.startswith("valid"):
            continue
        rc, out, _ = run(["parse", os.path.join(DATA, name + ".dat")])
        if rc != 0:
            bad.append("%s: %s" % (name, out.decode("utf-8", "replace").strip()))
    check(not bad, "valid messages refused:\n  " + "\n  ".join(bad))


TYPED = (
    b"NOTIFY sip:a@192.0.2.1:5070;transport=tcp SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bKx;rport;maddr=224.2.0.1;ttl=16"
    b";received=192.0.2.9\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKy;rport=5066, SIP/2.0/SCTP h.example.com\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:b@example.com>;tag=1\r\n"
    b"To: <sip:a@example.com>;tag=2\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 5 NOTIFY\r\n"
    b"Event: dialog;id=abc;foo=bar\r\n"
    b"Subscription-State: terminated;reason=timeout;retry-after=30\r\n"
    b"RAck: 776656 1 INVITE\r\n"
    b"RSeq: 988789\r\n"
    b"Retry-After: 18000 (in a meeting);duration=3600\r\n"
    b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
    b"Timestamp: 54.2 0.5\r\n"
    b"Allow: INVITE, ACK,BYE\r\n"
    b"Allow: OPTIONS\r\n"
    b"Allow-Events: presence, dialog.winfo\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Record-Route: <sip:p3.example.com;lr>\r\n"
    b"P-Asserted-Identity: \"Bob\" <sip:bob@example.com>, <tel:+15551234567;ext=12>\r\n"
    b"WWW-Authenticate: Digest realm=\"atlanta.com\", qop=\"auth,auth-int\", nonce=\"84a4\"\r\n"
    b"Expires: 60\r\n"
    b"Refer-To: <sip:c@example.com?Replaces=x%3By>\r\n"
    b"Reply-To: Bob <sip:bob@example.com>\r\n"
    b"Contact: *\r\n"
    b"Content-Type: text/plain;charset=UTF-8\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"hello")


def case_parse_typed_headers():
    rc, out, err = run(["parse", "-"], stdin=TYPED)
    check(rc == 0, "exit %d: %s %s" % (rc, out[:300], err))
    m = load_json(out)
    p = {}
    for h in m["headers"]:
        check("parse_error" not in h, "%s: %r" % (h["name"], h.get("parse_error")))
        p.setdefault(h["id"], []).append(h.get("parsed"))
    via = p["Via"]
    check(len(via) == 2 and len(via[0]) == 1 and len(via[1]) == 2, "Via values per line")
    v = via[0][0]
    check(v["host"] == "[2001:db8::1]" and v["port"] == 5061 and v["transport"] == "TLS", "Via")
    check(v["rport"] is True and v["maddr"] == "224.2.0.1" and v["ttl"] == "16", "Via params")
    check(v["received"] == "192.0.2.9", "received")
    check(via[1][0]["rport"] == 5066 and via[1][1]["transport"] == "SCTP", "second Via line")
    check(p["Event"][0]["package"] == "dialog" and p["Event"][0]["id"] == "abc", "Event")
    ss = p["Subscription-State"][0]
    check(ss["state"] == "terminated" and ss["reason"] == "timeout" and ss["retry_after"] == 30,
          "Subscription-State %r" % ss)
    check(p["RAck"][0] == {"rseq": 776656, "cseq": 1, "method": "INVITE"}, "RAck")
    check(p["RSeq"][0] == 988789, "RSeq")
    ra = p["Retry-After"][0]
    check(ra["seconds"] == 18000 and ra["comment"] == "in a meeting" and ra["duration"] == 3600,
          "Retry-After %r" % ra)
    check(p["Date"][0]["epoch"] == 1289690940 and p["Date"][0]["weekday"] == "Sat", "Date")
    check(p["Timestamp"][0] == {"value": "54.2", "delay": "0.5"}, "Timestamp")
    check(p["Allow"] == [["INVITE", "ACK", "BYE"], ["OPTIONS"]], "Allow per line")
    check(p["Allow-Events"] == [["presence", "dialog.winfo"]], "Allow-Events")
    rr = p["Record-Route"]
    check([[a["uri"]["host"] for a in line] for line in rr]
          == [["p1.example.com", "p2.example.com"], ["p3.example.com"]], "Record-Route")
    pai = p["P-Asserted-Identity"][0]
    check(pai[0]["display"] == "\"Bob\"" and pai[1]["uri"]["scheme"] == "tel", "PAI")
    check(pai[1]["uri"]["number"] == "+15551234567", "tel number")
    auth = p["WWW-Authenticate"][0]
    check(auth["scheme"] == "Digest", "auth scheme")
    check({"name": "qop", "value": "auth,auth-int"} in auth["params"], "auth params unquoted")
    check(p["Expires"][0] == 60, "Expires")
    rt = p["Refer-To"][0]["uri"]
    check(rt["headers"] == [{"name": "Replaces", "value": "x%3By"}], "URI headers %r" % rt)
    check(p["Reply-To"][0]["display"] == "Bob", "Reply-To")
    check(p["Contact"][0] == [{"star": True}], "Contact *")
    ct = p["Content-Type"][0]
    check(ct["params"] == [{"name": "charset", "value": "UTF-8"}], "Content-Type params")
    check(m["body_length"] == 5, "body_length")


def case_parse_json_escaping():
    base = data("zeromf").replace(b"Content-Length: 0\r\n",
                                  b"X-Latin: caf\xe9 \xc3\xa9t\xc3\xa9 \"q\" \\ \x7f\r\n"
                                  b"Content-Length: 0\r\n")
    rc, out, _ = run(["parse", "-"], stdin=base)
    check(rc == 0, "exit %d: %r" % (rc, out[:300]))
    text = out.decode("utf-8")
    check("caf\\u00e9" in text, "a lone 0xE9 byte is written \\u00e9")
    check("\u00e9t\u00e9" in text, "well-formed UTF-8 is copied as is")
    check("\\u007f" in text, "DEL escaped")
    m = json.loads(text)
    check(one(m, "X-Latin")["value"] == "caf\u00e9 \u00e9t\u00e9 \"q\" \\ \x7f", "round trip")
    # A NUL in a quoted display name (intmeth) must come out escaped, never raw.
    rc, out, _ = run(["parse", os.path.join(DATA, "intmeth.dat")])
    check(b"\x00" not in out, "no raw NUL in the output")
    load_json(out)
    # Error objects too: a start line with a raw control byte.
    rc, out, _ = run(["parse"], stdin=b"INV\x01ITE sip:a@b SIP/2.0\r\n\r\n")
    check(rc == 1 and "error" in load_json(out), "error object")


# ---------------------------------------------------------------------------
# status

def case_status_486():
    rc, out, err = run(["status", "486"])
    text = out.decode()
    check(rc == 0 and err == "", "exit %d %r" % (rc, err))
    lines = text.splitlines()
    check(lines[0].split() == ["code:", "486"], "code line %r" % lines[0])
    check("Busy Here" in lines[1], "reason line %r" % lines[1])
    check(lines[2].startswith("class:") and "4xx" in lines[2], "class line %r" % lines[2])
    check("RFC 3261" in text, "RFC")
    check(any(l.startswith("meaning:") and len(l) > 12 for l in lines), "meaning")


def case_status_unregistered():
    rc, out, _ = run(["status", "499"])
    text = out.decode()
    check(rc == 0, "exit %d" % rc)
    check("unregistered" in text and "400 Bad Request" in text and "8.1.3.2" in text, text)
    rc, out, _ = run(["status", "699"])
    check(rc == 0 and "600" in out.decode(), "699 acts as 600")


def case_status_out_of_range():
    for arg in ("700", "99", "0", "-1", "abc", "4861", "", "486x", "99999999999"):
        rc, out, err = run(["status", arg])
        check(rc == 2, "status %r: exit %d" % (arg, rc))
        check(out == b"" and err != "", "status %r: message on stderr only" % arg)
    rc, _, _ = run(["status", "100", "200"])
    check(rc == 2, "two codes")


def case_status_table():
    rc, out, _ = run(["status"])
    lines = out.decode().splitlines()
    check(rc == 0 and len(lines) > 40, "table of %d lines" % len(lines))
    col = lines[0].index("RFC")
    check(lines[0].startswith("CODE"), "header row")
    codes = []
    for line in lines[1:]:
        codes.append(int(line[:3]))
        check(line[col:col + 3] == "RFC", "aligned RFC column: %r" % line)
    check(codes == sorted(codes) and 100 in codes and 486 in codes and 606 in codes, "codes")
    check(any(l.startswith("486 ") and "Busy Here" in l for l in lines), "486 row")


# ---------------------------------------------------------------------------
# usage

def case_usage():
    for args in ([], ["--help"], ["-h"], ["help"]):
        rc, out, _ = run(args)
        text = out.decode()
        check(rc == 0 and "parse" in text and "status" in text, "usage for %r" % args)
    rc, out, _ = run(["--version"])
    check(rc == 0 and out.decode().startswith("csip "), "version")
    rc, out, err = run(["frobnicate"])
    check(rc == 2 and out == b"" and "usage" in err, "unknown command")
    for args in (["parse", "--bogus"], ["parse", "--role", "b2bua"], ["parse", "--role"],
                 ["parse", "a", "b"], ["parse", "/nonexistent/x.sip"]):
        rc, out, err = run(args)
        check(rc == 2 and out == b"" and err != "", "%r: exit %d" % (args, rc))
    rc, out, _ = run(["parse", "--help"])
    check(rc == 0 and b"--stream" in out, "parse --help")
    rc, out, _ = run(["status", "--help"])
    check(rc == 0 and b"CODE" in out, "status --help")
    rc, out, _ = run(["parse"], stdin=b"")
    check(rc == 1 and "error" in load_json(out), "empty input is an error object")


CASES = {name[len("case_"):]: fn for name, fn in sorted(globals().items())
         if name.startswith("case_")}


def main():
    global CSIP, DATA
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csip", required=True, help="path of the csip binary")
    ap.add_argument("--data", required=True, help="the tests/data/rfc4475 directory")
    ap.add_argument("cases", nargs="*", help="cases to run (default: all)")
    a = ap.parse_args()
    CSIP, DATA = os.path.abspath(a.csip), a.data
    names = a.cases or list(CASES)
    failed = 0
    for name in names:
        fn = CASES.get(name)
        if fn is None:
            print("unknown case %s (known: %s)" % (name, ", ".join(CASES)))
            return 2
        try:
            fn()
            print("PASS %s" % name)
        except Failure as e:
            failed += 1
            print("FAIL %s: %s" % (name, e))
        except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as e:
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
    print("%d/%d passed" % (len(names) - failed, len(names)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
