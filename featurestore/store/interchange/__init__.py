"""Moving a store in and out: zip archives, HDF5 files, all-or-nothing builds."""
