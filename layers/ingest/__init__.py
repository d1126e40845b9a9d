"""Writing layers: reading files safely, preparing them, loading them whole or not at all, publishing in place."""
