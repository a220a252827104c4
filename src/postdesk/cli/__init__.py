"""The `postdesk` operator commands: one interface over every app, like the web and the API.

Each command parses its arguments, calls one service or selector, and prints the result;
`base` holds the contract every command keeps with scripts. The commands live here rather
than in each app because a command often reads more than one app (`billing estimate DOMAIN`
finds a mail domain; `dataplane collect-usage` runs a workflow): in an app's package it
would import upwards (docs/architecture.md).
"""
