"""Where the registry lives: ``--registry PATH``, else ``$BRICKWORK_REGISTRY``, else the
user data dir.

Example:
    >>> import os
    >>> str(default_registry_path({"BRICKWORK_REGISTRY": "/tmp/reg"}))
    '/tmp/reg'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_VAR = "BRICKWORK_REGISTRY"


def default_registry_path(environ: Mapping[str, str] | None = None) -> Path:
    """The registry folder used when none is given explicitly."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR):
        return Path(env[ENV_VAR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("brickwork")) / "registry"
