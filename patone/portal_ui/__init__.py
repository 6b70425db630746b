"""The customer portal, branded per tenant (`/`)."""
