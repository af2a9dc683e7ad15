"""Which namespaces a pod may take network objects from (Multus v4's
`namespaceIsolation`), and where the seed looks a Network up."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection

# The seed looked a Network up in the pod's namespace, then in this one.
SEED_FALLBACK_NAMESPACE = "default"


def may_use(
    pod_namespace: str, namespace: str, isolation: bool, global_namespaces: Collection[str]
) -> bool:
    """With isolation on, a pod uses objects of its own namespace and the global ones."""
    return not isolation or namespace == pod_namespace or namespace in global_namespaces


def refusal(
    pod: str, pod_namespace: str, network: str, namespace: str, global_namespaces: Collection[str]
) -> str:
    """Why `pod` may not use `network`: names both namespaces and what is allowed."""
    allowed = ", ".join(global_namespaces) or "none"
    return (
        f"namespace isolation: pod {pod} in namespace {pod_namespace!r} may not use network "
        f"{network} from namespace {namespace!r} (allowed: its own namespace and {allowed})"
    )


def seed_lookup(pod_namespace: str) -> tuple[str, ...]:
    """The namespaces a seed `networks` entry is looked up in, in order."""
    return tuple(dict.fromkeys((pod_namespace, SEED_FALLBACK_NAMESPACE)))
