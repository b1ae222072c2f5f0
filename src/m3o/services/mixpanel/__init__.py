"""The mixpanel service: every customers and requests event forwarded to Mixpanel, in batches."""
