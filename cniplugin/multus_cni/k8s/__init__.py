"""Kubernetes mode of the plugin: pods pick their networks from network objects.

`resolve` turns the pod named in CNI_ARGS into delegate networks (seed `Network`
objects or NPWG `NetworkAttachmentDefinition`s), `status` reports what was attached
back to the pod. Everything here imports only the standard library (PyYAML only for a
kubeconfig beyond the YAML subset kubectl writes), and nothing on the DEL path talks to
the API.
"""
