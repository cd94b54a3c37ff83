"""The API clients: PostHog (read-only: GET, and POST to the HogQL query endpoint) and Vitally, each with its
retries, rate limits and same-origin rule; `waits` says what a long rate-limit wait is for."""
