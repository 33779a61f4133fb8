"""Entry point of the standalone bundle: the same ``ctstudio`` command line as ``.venv/bin/ctstudio``.

* ``freeze_support`` lets the DICOM reader's worker processes (forkserver / spawn) start inside the
  frozen executable.
* The app starts its training child as ``sys.executable -m ctstudio.cli train ...``; in a bundle
  ``sys.executable`` is this program, so a leading ``-m ctstudio.cli`` is accepted and dropped, and the
  child runs ``ctstudio train ...`` from the same bundle.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from ctstudio.cli import main

    argv = sys.argv[1:]
    if argv[:2] == ["-m", "ctstudio.cli"]:
        argv = argv[2:]
    sys.exit(main(argv))
