"""One hook per vendor, all on :class:`airflow_vendorauth.hooks.base.VendorHook`."""
