"""Workflows that span apps: a client's provisioning, suspension and termination
(`clients`), and the usage collector's runs (`usage`).

Thin on purpose: each step is a service of the app that owns what it writes, called in one
transaction here. Nothing below imports this package (docs/architecture.md).
"""
