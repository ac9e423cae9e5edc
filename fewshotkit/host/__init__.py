"""The plugin host: hook specifications, the pluggy manager, the component registry, provenance and contracts."""
