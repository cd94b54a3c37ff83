"""Third-party checks used by the plugin tests (loaded through fake entry points)."""

from auditor.model import Finding, Severity, Status, check


@check(id="platform.custom-plugin-check", title="A plugin check passes", failure_title="A plugin check fails",
       description="Registered by a third-party package.", severity=Severity.MINOR,
       docs_url="https://posthog.com/docs", requires=("project",))
def custom(facts, t):
    return Finding(Status.PASS, "Plugin ran.")


def broken_factory():
    raise RuntimeError("plugin exploded on import")


# Same id as a built-in: must be refused, not silently replace it.
collision = check(id="platform.reverse-proxy", title="x", failure_title="y", description="z",
                  severity=Severity.MINOR, docs_url="https://posthog.com/docs")(lambda facts, t: None)
