"""Shared fixtures: real CalDAV servers (server_fixtures), the CLI harness (harness), the
Microsoft Graph simulator (graph_sim), and a run with the date moved (clock_shift)."""

pytest_plugins = ["tests.support.clock_shift", "tests.support.server_fixtures",
                  "tests.support.harness", "tests.support.graph_sim"]
