"""Where the project's shared fixtures are: ``shared/data`` beside the checkout (as in CI).

``$A3D_SHARED_DATA`` overrides the search. Tests that need the files skip, saying so, when
neither is found.
"""

import os
from pathlib import Path


def _find_shared_data() -> Path:
    explicit = os.environ.get("A3D_SHARED_DATA")
    if explicit:
        return Path(explicit)
    for folder in Path(__file__).resolve().parents:
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data"
    return Path(__file__).resolve().parents[2] / "shared" / "data"


SHARED_DATA = _find_shared_data()
MESHES = SHARED_DATA / "meshes"
COCOAPI = SHARED_DATA / "cocoapi"
