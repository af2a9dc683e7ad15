"""JSON as the plugin reads and writes it: the rulebook's `multus_rules.cnijson`.

The parser lives in the rulebook because what counts as JSON (no NaN, no Infinity, no
byte order mark, bounded nesting) is a rule the operator must apply to network objects
exactly as the plugin does; the plugin's modules keep importing it under this name.
"""

from __future__ import annotations

from multus_rules.cnijson import MAX_DEPTH, RECORD_DEPTH, TooDeep, dumps, loads, type_name

__all__ = ["MAX_DEPTH", "RECORD_DEPTH", "TooDeep", "dumps", "loads", "type_name"]
