"""The registry of trained modules (thesis §5.3): content-addressed safetensors blobs,
JSON cards per version, aliases, a SQLite index (rebuildable), search by signature.

Example:
    >>> import tempfile
    >>> from brickwork.modules import And
    >>> reg = Registry(tempfile.mkdtemp())
    >>> _ = reg.put("And.min-v1", And.min("b n"))
    >>> reg.names()
    ['And.min-v1']
    >>> reg.put("And.min-v1", And.min("b n"), metrics={"acc": 1.0}).ref
    'And.min-v1@2'
"""

from brickwork.registry.card import ModelCard
from brickwork.registry.location import ENV_VAR, default_registry_path
from brickwork.registry.names import module_name_to_tag, parse_ref, validate_alias, validate_name
from brickwork.registry.registry import (
    MAX_CONFIG_BYTES,
    MAX_README_BYTES,
    MAX_WEIGHTS_BYTES,
    Entry,
    Problem,
    Registry,
    ReindexReport,
)

__all__ = [
    "ENV_VAR",
    "MAX_CONFIG_BYTES",
    "MAX_README_BYTES",
    "MAX_WEIGHTS_BYTES",
    "Entry",
    "ModelCard",
    "Problem",
    "Registry",
    "ReindexReport",
    "default_registry_path",
    "module_name_to_tag",
    "parse_ref",
    "validate_alias",
    "validate_name",
]
