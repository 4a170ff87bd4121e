"""Who writes a store: leases per block, processes of this machine, temporary files."""
