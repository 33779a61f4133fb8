"""Entry point of the standalone bundle: the same ``ctstudio`` command line as ``.venv/bin/ctstudio``.

``freeze_support`` lets the DICOM reader's worker processes (forkserver / spawn) start inside the
frozen executable.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from ctstudio.cli import main

    sys.exit(main())
