"""The thesis's case studies, built only on brickwork's public API."""
