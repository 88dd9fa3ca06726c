"""Credentials that the operator mounts as files: bearer tokens and TLS certificates, reloaded when they change."""
