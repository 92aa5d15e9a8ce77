"""Background work: the worker process, retries with back-off, and leases that expire."""
