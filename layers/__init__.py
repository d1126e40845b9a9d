"""Layers: what data exists, who may see it, how it is stored, loaded and queried. No HTTP here."""
