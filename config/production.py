"""Production: every server comes from the environment (MONGO_URL, REDIS_URL, JWT_SECRET)."""

host = "0.0.0.0"
# /metrics only with a token (KDK_METRICS__TOKEN) or on its own address (KDK_METRICS__BIND).
metrics = {"public": False}
