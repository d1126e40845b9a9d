"""Helpers the tests share: scratch clusters, live servers, test layers and tokens. Shared fixtures live in
conftest.py; a fixture only one module needs stays in that module."""
