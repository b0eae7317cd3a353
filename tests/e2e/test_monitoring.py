"""What Prometheus users get: the alert rules in deploy/prometheus/ pass
`promtool check rules` and their cases (`promtool test rules`, Debian's
prometheus package), the Grafana dashboard in deploy/grafana/ has what
Grafana needs to import it (Grafana is not packaged: its JSON is checked
here against the dashboard schema's essentials), and every metric either
of them names exists in the /metrics of a real server -- one that
refreshes from the Feishu double and has a sink that fails -- whose text
`promtool check metrics` accepts."""
import json
import os
import re
import shutil
import subprocess
import unittest

import harness
from feishu_env import PUSH_KEY, FeishuEnv
from harness import ROOT, TestCase, make_record

RULES = os.path.join(ROOT, "deploy", "prometheus", "tokendist-rules.yml")
RULE_TESTS = os.path.join(ROOT, "tests", "prometheus", "tokendist-rules.test.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "tokendist.json")
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
METRIC = re.compile(r"\btokendist_[a-z0-9_]+")
PANEL_TYPES = {"row", "stat", "timeseries", "bargauge", "gauge", "table", "text"}


def promtool(*args, input=None):
    return subprocess.run([PROMTOOL] + list(args), input=input, capture_output=True, text=True, timeout=120)


def rule_exprs():
    """The expressions of the rules file (its `expr:` values; a block
    scalar runs to the next key)."""
    exprs, cur = [], None
    with open(RULES, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^(\s*)expr:\s*(.*)$", line)
            if m:
                cur = [m.group(2).lstrip("|").strip()]
                exprs.append(cur)
            elif cur is not None and re.match(r"^\s*(for|labels|annotations|- alert):", line):
                cur = None
            elif cur is not None:
                cur.append(line.strip())
    return [" ".join(e).strip() for e in exprs]


def dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def dashboard_exprs(d):
    out = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    out += [v["definition"] for v in d.get("templating", {}).get("list", []) if "definition" in v]
    return out


class MonitoringTest(FeishuEnv, TestCase):
    def setUp(self):
        super().setUp()
        if not os.path.exists(PROMTOOL):
            self.fail("promtool is not installed: scripts/bootstrap --test installs Debian's prometheus package")

    def test_rules_check_and_their_cases_pass(self):
        r = promtool("check", "rules", RULES)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: 4 rules found", r.stdout)
        r = promtool("test", "rules", RULE_TESTS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)
        # Every alert has a case that fires and one that stays silent.
        with open(RULE_TESTS, encoding="utf-8") as f:
            cases = f.read()
        for alert in re.findall(r"- alert: (\w+)", open(RULES, encoding="utf-8").read()):
            blocks = re.findall(r"alertname: %s\n\s*exp_alerts:( \[\]|\n\s*- exp_labels)" % alert, cases)
            self.assertIn(" []", blocks, "%s: no case where it stays silent" % alert)
            self.assertTrue(any(b != " []" for b in blocks), "%s: no case where it fires" % alert)

    def test_dashboard_has_the_schema_essentials(self):
        d = dashboard()
        for key, kind in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list),
                          ("time", dict), ("templating", dict)):
            self.assertIsInstance(d.get(key), kind, key)
        self.assertGreaterEqual(d["schemaVersion"], 36)
        inputs = {i["name"]: i for i in d["__inputs"]}
        self.assertEqual((inputs["DS_PROMETHEUS"]["type"], inputs["DS_PROMETHEUS"]["pluginId"]),
                         ("datasource", "prometheus"))
        ids, cells = set(), set()
        for p in d["panels"]:
            ctx = "panel %r" % p.get("title")
            self.assertIsInstance(p.get("id"), int, ctx)
            self.assertNotIn(p["id"], ids, ctx + ": id used twice")
            ids.add(p["id"])
            self.assertIn(p.get("type"), PANEL_TYPES, ctx)
            self.assertTrue(p.get("title"), ctx)
            g = p["gridPos"]
            for k in ("x", "y", "w", "h"):
                self.assertIsInstance(g[k], int, ctx)
            self.assertTrue(0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, ctx + ": outside the 24-column grid")
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            self.assertFalse(mine & cells, ctx + ": overlaps another panel")
            cells |= mine
            if p["type"] == "row":
                continue
            self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, ctx)
            self.assertTrue(p.get("targets"), ctx + ": no query")
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), ctx + ": refId used twice")
            for t in p["targets"]:
                self.assertTrue(METRIC.search(t.get("expr", "")), ctx + ": a target without a tokendist metric")
                self.assertEqual(t["datasource"], p["datasource"], ctx)
        for v in d["templating"]["list"]:
            self.assertEqual(v["datasource"], {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, v["name"])

    def test_every_named_metric_exists_in_a_live_server(self):
        self.start_feishu()
        down = "http://127.0.0.1:%d/release/get-token" % harness.free_port()
        s = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY,
                             **self.feishu_env(TENCENT_CLOUD_API_URL=down, TENCENT_CLOUD_API_KEY=PUSH_KEY)}).start()
        self.wait_log(s, "腾讯云函数连接失败")
        self.assertEqual(s.post("/v1/tokens/wx", make_record("wx-token-monitoring-0123456789", provider="wechat"),
                                key=PUSH_KEY).status, 200)
        s.get("/v1/tokens/default")
        text = s.get("/metrics").body.decode()
        live = set(re.findall(r"(?m)^(tokendist_[a-z0-9_]+)[{ ]", text))
        named = {m for e in rule_exprs() + dashboard_exprs(dashboard()) for m in METRIC.findall(e)}
        self.assertGreaterEqual(len(named), 15, named)
        self.assertEqual(sorted(named - live), [], "named in deploy/ but not in /metrics")
        # The series the rules join on carry what they should.
        self.assertRegex(text, r'(?m)^tokendist_token_renew_window_seconds\{name="default"\} 1800$')
        self.assertRegex(text, r'(?m)^tokendist_token_renew_window_seconds\{name="wx"\} 300$')
        self.assertRegex(text, r'(?m)^tokendist_refresh_lease_held\{name="default"\} 1$')
        self.assertRegex(text, r'(?m)^tokendist_refresh_failures_in_a_row\{name="default"\} 0$')
        self.assertRegex(text, r'(?m)^tokendist_sink_failures_in_a_row\{name="default",sink="local"\} 0$')
        self.assertRegex(text, r'(?m)^tokendist_sink_failures_in_a_row\{name="default",sink="endpoint"\} [1-9]\d*$')
        self.assertRegex(text, r'(?m)^tokendist_sink_last_success_timestamp_seconds\{name="default",sink="endpoint"\} 0$')
        self.assertRegex(text, r'(?m)^tokendist_refresh_last_success_timestamp_seconds\{name="default"\} [1-9]\d*$')
        r = promtool("check", "metrics", input=text)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
