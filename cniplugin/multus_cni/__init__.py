"""The Multus CNI meta-plugin: runs delegate CNI plugins for one pod, in order.

The modules here are on the per-pod hot path (kubelet execs the plugin for every
pod), so they import only the standard library; heavier dependencies belong in the
node daemon.
"""

__version__ = "0.1.0"
