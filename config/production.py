"""Production: every server comes from the environment (MONGO_URL, REDIS_URL, JWT_SECRET)."""

host = "0.0.0.0"
