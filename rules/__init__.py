"""The support policy as pure functions over frozen dataclasses.

Nothing in this package does IO or reads the clock: the connector passes in the time, the
policy (built from the configuration) and the facts it loaded. It imports the standard library
only; ``tests/rules/test_purity.py`` enforces that.
"""

from __future__ import annotations
