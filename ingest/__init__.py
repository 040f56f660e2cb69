"""Ingestion: load course files, chunk them along their structure, embed and sync into the index."""
