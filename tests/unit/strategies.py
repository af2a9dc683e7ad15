"""Hand-written hypothesis strategies for CNI input (hypothesis-jsonschema does not work
with our hypothesis pin): arbitrary JSON, and multus-conf-shaped documents whose fields
are sometimes right, sometimes plausible-but-wrong, sometimes of a random type."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

PATH_KEYS = ("cniDir", "confDir", "binDir", "logFile", "readinessindicatorfile", "kubeconfig")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually `good` (so that most documents get past the first check and the deeper
    ones are exercised), now and then `bad`, now and then any JSON value at all."""
    return st.integers(0, 9).flatmap(
        lambda roll: good if roll < 8 else (bad if roll == 8 else json_values)
    )


def optional_fields(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


def good_or_bad(good: list[Any], bad: list[Any]) -> st.SearchStrategy[Any]:
    return mostly(st.sampled_from(good), st.sampled_from(bad))


versions = good_or_bad(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"], ["0.1.0", "2.0.0", "", "1.0"])
names = good_or_bad(["net", "mib-net", "a.b_c-d", "N0"], ["../x", "a/b", "", " x", "é", "-x"])
plugin_types = good_or_bad(
    ["fake", "bridge", "host-local"], ["../x", "/bin/sh", ".", "..", "", "a\x00", "sh ", "a\\b"]
)
ifnames = good_or_bad(["net5", "data0"], ["eth0", "x" * 16, "a/b", "..", "a b", ""])
booleans = mostly(st.booleans(), st.sampled_from(["true", 1, None]))
capabilities = st.dictionaries(
    st.sampled_from(["portMappings", "bandwidth", "ips", "mac", "dns", "deviceID"]),
    booleans,
    max_size=3,
)
plugin_confs = st.fixed_dictionaries(
    {"type": plugin_types},
    optional={
        "name": names,
        "cniVersion": versions,
        "masterplugin": booleans,
        "if0name": ifnames,
        "ipam": mostly(
            st.fixed_dictionaries({"type": plugin_types}, optional={"subnet": json_values}),
            st.sampled_from(["host-local", [], {}]),
        ),
        "capabilities": mostly(capabilities, st.just([])),
        "prevResult": json_values,
        "runtimeConfig": json_values,
        "vendor": json_values,
    },
)
conf_lists = st.fixed_dictionaries(
    {"plugins": mostly(st.lists(plugin_confs, min_size=1, max_size=3), st.just([]))},
    optional={"name": names, "cniVersion": versions, "masterplugin": booleans},
)
delegates = mostly(plugin_confs | conf_lists, st.sampled_from(["bridge", [], None]))
conf_paths = good_or_bad(["/abs/x.conf", "/abs", "rel.conf"], ["", "rel"])
multus_confs = st.fixed_dictionaries(
    {
        "name": names,
        "cniVersion": versions,
        "delegates": mostly(st.lists(delegates, min_size=1, max_size=4), st.just([])),
    },
    optional={
        "type": st.just("multus"),
        "clusterNetwork": conf_paths,
        "defaultNetworks": mostly(st.lists(conf_paths, max_size=2), st.just("x")),
        "confDir": conf_paths,
        "cniDir": conf_paths,
        "binDir": conf_paths,
        "logFile": conf_paths,
        "logLevel": good_or_bad(["debug", "verbose", "error", "panic", "DEBUG"], ["loud", ""]),
        "delegateTimeout": good_or_bad([0.5, 5, 3600], [0, -1, 3601, True, "5"]),
        "readinessTimeout": good_or_bad([1, 2.5], [0, 1e9]),
        "readinessindicatorfile": conf_paths,
        "runtimeConfig": mostly(
            st.dictionaries(st.sampled_from(["portMappings", "ips", "mac"]), json_values),
            st.just([]),
        ),
        "kubeconfig": conf_paths,
        "disableCheck": booleans,
    },
)


def confine(doc: Any, root: str) -> Any:
    """Keep a generated conf from touching the machine: every absolute path it names
    is moved under `root`, and the conf dir (default /etc/cni/net.d) is `root` too."""
    if not isinstance(doc, dict):
        return doc
    doc = dict(doc)

    def inside(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("/"):
            return os.path.join(root, value.lstrip("/").replace("..", "_"))
        return value

    for key in (*PATH_KEYS, "clusterNetwork"):
        if key in doc:
            doc[key] = inside(doc[key])
    if isinstance(doc.get("defaultNetworks"), list):
        doc["defaultNetworks"] = [inside(v) for v in doc["defaultNetworks"]]
    if "confDir" not in doc:
        doc["confDir"] = root
    return doc


def add_env(root: Path) -> dict[str, str]:
    """ADD into a netns that does not exist under the confined `root` (whose `bin` is
    CNI_PATH): whatever the fuzzed conf, no delegate can run."""
    return {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "mib-fuzz",
        "CNI_NETNS": str(root / "no-such-netns"),
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(root / "bin"),
    }


def encoded(doc: Any) -> bytes:
    return json.dumps(doc).encode()
