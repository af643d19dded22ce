"""Fast Django migrations: cached migration states instead of replaying the plan."""

__version__ = "0.1.0"
