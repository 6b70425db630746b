"""What every service is built from, inside one company: who acts and what they may do
(`Actor`, roles, permissions), the activity log of what they did, rows and pages of rows, and
input parsing with clear errors."""
