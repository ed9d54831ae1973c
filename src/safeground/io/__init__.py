"""Getting data in and out of a register: mapped imports, layer exports, full dumps.

Real data never matches the register's fields, so every import goes through a small YAML
mapping (``safeground.io.mapping``); shipped mappings live in ``safeground/io/mappings``.
"""
