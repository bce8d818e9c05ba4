"""The configuration schema, its loading from TOML and its cross-field checks."""
