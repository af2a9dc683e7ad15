"""Telling Kubernetes what was attached: the `k8s.v1.cni.cncf.io/network-status`
annotation and one `AddedInterface` Event per attachment.

Each status entry carries NPWG's fields: `name` (`ns/name` for network objects, the
network's own name for a conf-file delegate), `interface`, `ips` (bare addresses),
`mac`, `mtu`, `default` (the cluster network), `dns`, `gateway`, `device-info`
where known; plus one extra field of ours, `ips-with-prefix`, the same addresses
with their prefix lengths (`10.1.2.3/24`), which NPWG's `ips` drops.

The annotation is written in one merge-patch of `pods/<name>/status` (what a node's
credentials may change), retried on 409; a pod deleted meanwhile is tolerated. Any
other failure raises, and the engine rolls the delegates back. Events are best effort.
"""

from __future__ import annotations

import os
import time

from .. import cnijson
from ..errors import CniError
from ..logs import log
from .client import Client

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
CONFLICT_RETRIES = 5


def _interface_index(result: dict[str, Any], ifname: str) -> int | None:
    interfaces = result.get("interfaces") or []
    fallback = None
    for index, iface in enumerate(interfaces):
        if not isinstance(iface, dict) or not iface.get("sandbox"):
            continue
        if iface.get("name") == ifname:
            return index
        if fallback is None:
            fallback = index
    return fallback


def status_entry(
    name: str,
    ifname: str,
    result: dict[str, Any],
    *,
    default: bool,
    gateways: list[str],
) -> dict[str, Any]:
    """One network-status element from a delegate network's CNI result."""
    entry: dict[str, Any] = {"name": name, "interface": ifname}
    index = _interface_index(result, ifname)
    with_prefix: list[str] = []
    for ip in result.get("ips") or []:
        if not isinstance(ip, dict) or not isinstance(ip.get("address"), str):
            continue
        owner = ip.get("interface")
        if owner is not None and index is not None and owner != index:
            continue
        with_prefix.append(ip["address"])
    entry["ips"] = [address.split("/", 1)[0] for address in with_prefix]
    entry["ips-with-prefix"] = with_prefix
    if index is not None:
        iface = result["interfaces"][index]
        if iface.get("mac"):
            entry["mac"] = iface["mac"]
        if isinstance(iface.get("mtu"), int) and iface["mtu"] > 0:
            entry["mtu"] = iface["mtu"]
    if default:
        entry["default"] = True
    dns = result.get("dns")
    if isinstance(dns, dict) and any(dns.values()):
        entry["dns"] = dns
    if gateways:
        entry["gateway"] = gateways
    device_info = result.get("deviceInfo") or result.get("device-info")
    if isinstance(device_info, dict):
        entry["device-info"] = device_info
    return entry


def result_gateways(result: dict[str, Any], families: set[str]) -> list[str]:
    """Gateways of a result that has a default route, for the given families ("4"/"6")."""
    routes = result.get("routes") or []
    default_families = {
        "6" if ":" in str(r.get("dst", "")) else "4"
        for r in routes
        if isinstance(r, dict) and str(r.get("dst", "")) in ("0.0.0.0/0", "::/0")
    }
    out: list[str] = []
    for ip in result.get("ips") or []:
        if not isinstance(ip, dict) or not isinstance(ip.get("gateway"), str):
            continue
        fam = "6" if ":" in ip["gateway"] else "4"
        if fam in families and fam in default_families:
            out.append(ip["gateway"])
    return out


def write_network_status(
    client: Client, namespace: str, pod: str, entries: list[dict[str, Any]]
) -> bool:
    """One PATCH of the annotation; False when the pod is gone (tolerated)."""
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/status"
    body = {"metadata": {"annotations": {STATUS_ANNOTATION: cnijson.dumps(entries)}}}
    for attempt in range(CONFLICT_RETRIES):
        if attempt:
            time.sleep(0.05 * attempt)
        status, doc = client.request("PATCH", path, body, "application/merge-patch+json")
        if 200 <= status < 300:
            return True
        if status == 404:
            log.error(f"pod {namespace}/{pod} is gone; its network-status was not written")
            return False
        if status == 409:
            log.verbose(f"network-status of {namespace}/{pod}: conflict, retrying")
            continue
        Client.raise_for(status, doc, "PATCH", path)
    raise CniError(
        f"network-status of pod {namespace}/{pod}: still conflicting after "
        f"{CONFLICT_RETRIES} attempts"
    )


def post_added_events(client: Client, pod: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """An `AddedInterface` Event per attachment; failures are logged, never raised, and
    after a timeout or refused connection the remaining Events are skipped."""
    meta = pod.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for entry in entries:
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{os.urandom(8).hex()}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": namespace,
                "name": name,
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": "AddedInterface",
            "message": f"Add {entry['interface']} {entry.get('ips-with-prefix', [])} "
            f"from {entry['name']}",
            "type": "Normal",
            "source": {"component": "multus"},
            "reportingComponent": "multus",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            status, _ = client.request(
                "POST", f"/api/v1/namespaces/{namespace}/events", event, attempts=1
            )
        except CniError as exc:
            # The API is struggling: do not make the pod wait for the other Events too.
            log.error(f"AddedInterface events for {namespace}/{name} skipped: {exc.msg}")
            return
        if not 200 <= status < 300:
            log.error(f"AddedInterface event for {namespace}/{name}: HTTP {status}")
