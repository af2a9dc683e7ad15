"""multus-operator: checks network objects, reports status conditions, renders node ConfigMaps.

Pure parts (`validation`, `rendering`, `conditions`) are shared with multusctl; I/O
lives in `kubeapi` (writes), `handlers` (kopf) and `reconciling` (the write loop).
"""
