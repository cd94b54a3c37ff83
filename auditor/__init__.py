"""posthog-auditor: a read-only audit of a PostHog project that gates the handover of a customer."""

__version__ = "0.1.0"
