"""HDF5 slice stores: one file per dataset, one chunk per slice (see docs/store-format.md)."""
