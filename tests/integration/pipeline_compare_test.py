"""The comparer of sockd.netbed_pipeline must be able to fail: a flow where
sockd logged another rule (the hook-before-race drift of issue 9: the first
permitted address's rule instead of the winner's), another reply, another
egress, or no line at all is reported, each with its shape."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline_compare import compare  # noqa: E402
from sockd_harness import check, finish  # noqa: E402

SIM = {"request_line": 7, "verdict": "permit", "reply": 0, "route": "198.51.100.254",
       "log": "verdict=permit rule=conf/sockd.conf:5 addr=198.51.100.7:8002"}
LIVE = {"request_line": 7, "egress": "198.51.100.254",
        "log": "time=x event=terminated client=192.0.2.10:4000 version=socks5 "
               "rule=/tmp/nb/sockd.conf:5 verdict=permit reply=0 reason=eof"}

check(compare([SIM], [LIVE]) == [], "the same decision: no difference")

drift = dict(LIVE, log=LIVE["log"].replace("sockd.conf:5", "sockd.conf:6"))
check(compare([SIM], [drift]) ==
      ["flow at line 7: rule: simulate says 'sockd.conf:5', sockd did 'sockd.conf:6'"],
      "another rule in sockd's log line is a difference")

refused = dict(LIVE, egress=None,
               log='time=x event=refused rule=/tmp/nb/sockd.conf:2 verdict=deny reply=2 '
                   'reason="denied by rule"')
d = compare([SIM], [refused])
check("flow at line 7: verdict: simulate says 'permit', sockd did 'deny'" in d and
      "flow at line 7: reply: simulate says 0, sockd did 2" in d and
      "flow at line 7: route: simulate says '198.51.100.254', sockd did None" in d,
      "a denial where simulate permits: verdict, reply and route differ (%s)" % d)

other_egress = dict(LIVE, egress="198.51.100.1")
check(compare([SIM], [other_egress]) ==
      ["flow at line 7: route: simulate says '198.51.100.254', sockd did '198.51.100.1'"],
      "another egress is a difference")

check(compare([SIM], []) == ["flow at line 7: no live result"], "a missing live flow fails")
check(compare([], [LIVE]) == ["flow at line 7: no simulated result"],
      "a live flow without a simulation fails")

unresolved_sim = {"request_line": 3, "verdict": "deny", "reply": 4, "route": None,
                  "log": 'event=refused verdict=- rule=- reason="cannot resolve: x"'}
unresolved_live = {"request_line": 3, "egress": None,
                   "log": 'time=x event=refused verdict=- reply=4 reason="cannot resolve: y"'}
check(compare([unresolved_sim], [unresolved_live]) == [],
      "no verdict and no rule on both sides: equal (the reason text is not compared)")
finish()
