"""Configuration: the values (``Endpoint``, ``Pool``, ``Route``, limits), the table and TOML
readers, the provider catalog (``catalog.toml``) and the proxy's defaults. No I/O but
reading the config file; imports only the error tree."""
