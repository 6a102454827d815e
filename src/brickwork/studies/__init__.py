"""The thesis's case studies, built only on brickwork's public API: ``sorting`` (§3.2)
and ``clevr`` (§4.3)."""
