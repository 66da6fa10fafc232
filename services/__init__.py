"""The process entry points, one module each, installed as cocode.services."""
