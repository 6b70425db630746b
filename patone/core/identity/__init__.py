"""Who is calling: staff and customer sign-in, passwords and two-factor, sessions, access and
refresh tokens and the keys that sign them, revocation, partner API clients, rate limits."""
