"""Helpers the tests share: scratch clusters, live servers, test layers. Fixtures live in conftest.py."""
