"""Test support: servers, proxies, simulators, marker tools; and their own tests."""
