"""Where the OpenL3 reference folder (official openl3 0.4.2 outputs) lives.

``$AVSCENE_OPENL3_REFERENCE`` overrides the workplace default; tests that need the folder skip
with a reason naming the path when it is absent."""

import os
import pathlib

REFERENCE_DIR = pathlib.Path(os.environ.get("AVSCENE_OPENL3_REFERENCE",
                                            "/work/shared/openl3-reference"))
