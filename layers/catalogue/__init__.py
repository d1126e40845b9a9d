"""The catalogue: layer records, the registry and visibility, manifests, the server's own tables and migrations."""
