"""The jobs a user runs: generate, convert, calibrate, train.

Each pipeline is a generator function taking one frozen request dataclass; it yields events of the one
schema in :mod:`ctstudio.jobs`, checks one cancel token between steps and *returns* its result (a
:class:`~ctstudio.volume.Volume` with provenance, or a run summary). Device choice and model loading live
here once. The command line drives them with a progress bar (``commands/``), the window through
``app/workers.py``.
"""
