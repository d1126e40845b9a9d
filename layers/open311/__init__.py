"""Open311 GeoReport v2: the service catalogue (a manifest in the repository), requests and public measures.

No HTTP here: `geoserver/routes/open311.py` parses requests and shapes GeoReport JSON and XML; this package checks
submissions against the catalogue, stores them (the public part in the 311 layer, the requester apart, never
published) and reads them back at the precision each service code allows.
"""
