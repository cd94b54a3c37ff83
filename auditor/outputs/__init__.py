"""What an audit produces from its RunResult: the reports (HTML, JSON, Markdown; for the owner or the customer),
the history, Vitally traits and notes, the new owner's allocation, and opt-in telemetry. They read the RunResult
only."""
