"""Method composition: method specs, overrides, presets, the composed method and its losses."""
