"""Reading layers: items (filters, CQL2, CRS), near me and what's here, downloads, the DCAT catalogue."""
