"""What the cluster's autoscaler is doing, as `raysemble status` shows it: resource demands that wait
(trials' placement groups, tasks, actors) and the nodes being launched for them.

Read from the dashboard's /api/cluster_status (the text `ray status` prints), since a jobs client only
has the dashboard's address. Only literals are read from it (ast.literal_eval of the resource dicts).
"""
from __future__ import annotations

import ast
import re

_DEMAND = re.compile(r"^\s*(?P<shape>.+?):\s*(?P<count>\d+)\+ pending (?P<kind>tasks/actors|placement groups)\s*$")
_LAUNCHING = re.compile(r"^\s*(?P<type>[^\s,:]+), (?P<count>\d+) launching\s*$")
_SETTING_UP = re.compile(r"^\s*[^\s:]+: (?P<type>[^\s,]+), (?P<state>[a-z_ -]+)\s*$")
_BUNDLE = re.compile(r"\{[^{}]*\}")


def parse_status(text: str) -> dict:
    """{"demands": [{"resources": {...}, "count": n, "kind": ...}], "launching": {node_type: n}} from the
    autoscaler's status text; sections it lacks give empty results."""
    demands, launching = [], {}
    for line in _section(text, "Pending Demands:"):
        m = _DEMAND.match(line)
        if not m:
            continue
        for bundle in _BUNDLE.findall(m["shape"]):
            try:
                resources = ast.literal_eval(bundle)
            except (ValueError, SyntaxError):
                continue
            if isinstance(resources, dict):
                demands.append({"resources": {str(k): float(v) for k, v in resources.items()
                                              if isinstance(v, (int, float))},
                                "count": int(m["count"]), "kind": m["kind"]})
    for line in _section(text, "Pending:"):
        m = _LAUNCHING.match(line) or _SETTING_UP.match(line)
        if m:
            count = int(m.groupdict().get("count") or 1)
            launching[m["type"]] = launching.get(m["type"], 0) + count
    return {"demands": demands, "launching": launching}


def _section(text: str, header: str) -> list[str]:
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == header)
    except StopIteration:
        return []
    out = []
    for line in lines[start + 1:]:
        if not line.startswith(" "):  # the next header
            break
        out.append(line)
    return out


def cluster_scaling(client) -> dict | None:
    """parse_status of the cluster a JobSubmissionClient talks to; None where it cannot be read (an
    older dashboard, no autoscaler): status then simply says nothing about scaling."""
    try:
        r = client._do_request("GET", "/api/cluster_status?format=1")
        text = r.json()["data"]["clusterStatus"]
    except Exception:  # the answer is optional: the job's state still stands without it
        return None
    return parse_status(text) if isinstance(text, str) else None


def describe_scaling(scaling: dict | None) -> str | None:
    """One line: "pending: 2 × {GPU: 1, CPU: 0.5} — scaling up (launching 1 × gpu_1x_a10g)"; None when
    nothing waits."""
    if not scaling or not scaling["demands"]:
        return None
    shapes = ", ".join(f"{d['count']} × {_shape(d['resources'])}" for d in scaling["demands"])
    if scaling["launching"]:
        nodes = ", ".join(f"{n} × {t}" for t, n in sorted(scaling["launching"].items()))
        return f"pending: {shapes} — scaling up (launching {nodes})"
    return f"pending: {shapes} — waiting for resources (no node launching)"


def _shape(resources: dict) -> str:
    order = sorted(resources, key=lambda k: (k not in ("GPU", "CPU"), k != "GPU", k))
    return "{" + ", ".join(f"{k}: {resources[k]:g}" for k in order) + "}"
