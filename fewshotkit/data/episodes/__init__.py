"""Episodes: fold splits over scans, setting-2 slice filters and seeded episode samplers."""
