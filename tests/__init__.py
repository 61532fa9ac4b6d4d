"""The test suite: unit/, integration/, support/."""
