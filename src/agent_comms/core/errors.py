"""The project's error types: an `AgentCommsError` becomes a one-line exit in the CLI."""


class AgentCommsError(Exception):
    """A failure the user can fix; its message names what failed, the value and the fix."""


class ConfigError(AgentCommsError):
    """A setting is missing or invalid."""


class DeliveryError(AgentCommsError):
    """Something could not be delivered before a deadline (e.g. `publish --once` left lines pending)."""
