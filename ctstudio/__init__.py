"""ctstudio: a desktop workbench for synthetic CT.

The core (everything but :mod:`ctstudio.app`) runs headless; only ``ctstudio.app`` touches Qt.
"""

__version__ = "0.1.0"
