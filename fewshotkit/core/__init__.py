"""Core utilities: errors, atomic writes, stop requests, user input, console, devices, seeding, option types."""
