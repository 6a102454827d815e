"""The registry of trained modules (thesis §5.3): content-addressed safetensors blobs,
JSON cards, a SQLite index, search by signature.

Example:
    >>> import tempfile
    >>> from brickwork.modules import And
    >>> reg = Registry(tempfile.mkdtemp())
    >>> _ = reg.put("And.min-v1", And.min("b n"))
    >>> reg.names()
    ['And.min-v1']
"""

from brickwork.registry.names import module_name_to_tag, validate_name
from brickwork.registry.location import ENV_VAR, default_registry_path
from brickwork.registry.card import ModelCard
from brickwork.registry.registry import Problem, Registry

__all__ = [
    "ENV_VAR",
    "ModelCard",
    "Problem",
    "Registry",
    "default_registry_path",
    "module_name_to_tag",
    "validate_name",
]
