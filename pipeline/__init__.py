"""policy-topics: Japanese government meeting minutes -> topics, policy themes and reports."""

__version__ = "0.1.0"
