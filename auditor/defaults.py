"""What the command line's flags default to and choose from, defined once: the settings, the renderers and the help
text all read them from here. Nothing else lives here, so `posthog-auditor --help` loads nothing heavy."""

DEFAULT_API_KEY_ENV = "POSTHOG_PERSONAL_API_KEY"
# Requests in flight per audit: every fact's first request fits in one round.
DEFAULT_CONCURRENCY = 24
MAX_CONCURRENCY = 64
FORMATS = ("html", "json", "md")  # report formats
AUDIENCES = ("internal", "customer")  # whom a report is for (auditor/outputs/audience.py)
