"""jitctl: a command-line client for the jitaccess API (standard library only).

Run it as ``python -m jitctl`` or ``bin/jitctl``; docs/JITCTL.md describes every command.
"""

__version__ = "1.0"
